// Scenario: the pod index against a real kube-apiserver. 10,000 pods are listed, then
// pods change at 200 events per second; measured: the proxy's RSS, the lag from the API
// server's answer to the index having the change, and the cost of a caller lookup.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubernetesControlPlane } from '../test/harness/kubernetes.js';
import { MotoServer } from '../test/harness/moto.js';
import { IMAGE_NODE_OPTIONS } from '../test/harness/environment.js';
import { footprint } from '../test/harness/processes.js';
import { ClusterLoader, paced, rssMb } from './cluster.js';
import { freePort } from '../test/harness/ports.js';
import { CLUSTER_PROXY_FLAGS, cpuMs, median, type Section } from './harness.js';

const PROXY = fileURLToPath(new URL('./servers/pod-index.js', import.meta.url));
const ipOf = (n: number): string => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

export interface PodIndexOptions {
  pods: number;
  roles: number;
  eventsPerSecond: number;
  seconds: number;
}

export async function podIndexScenario(options: PodIndexOptions): Promise<Section> {
  const plane = await KubernetesControlPlane.start();
  const moto = await MotoServer.start();
  try {
    const cluster = new ClusterLoader(plane);
    const loadStarted = Date.now();
    await cluster.createPods(0, options.pods, options.roles, ipOf);
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    process.stderr.write(`  pod-index: ${options.pods} pods created in ${loadSeconds.toFixed(0)} s\n`);

    const port = await freePort();
    const child = spawn(
      process.execPath,
      [...IMAGE_NODE_OPTIONS, PROXY, ...plane.programConnection(), '--app-port', String(port), ...CLUSTER_PROXY_FLAGS, '--stats-interval', '0'],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'AKIDBENCH', AWS_SECRET_ACCESS_KEY: 'bench' },
      },
    );
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const seen = new Map<string, number>();
    let syncLine = '';
    let lookupLine = '';
    let memoryLine = '';
    lines.on('line', (line) => {
      if (line.startsWith('synced ')) syncLine = line;
      else if (line.startsWith('lookup ')) lookupLine = line;
      else if (line.startsWith('memory ')) memoryLine = line;
      else {
        const [name, ip, at] = line.split(' ');
        seen.set(`${name} ${ip}`, Number(at));
      }
    });
    // The proxy's answers come as lines; a proxy that died must fail the run, not hang it.
    const line = async (get: () => string, timeoutMs: number): Promise<string> => {
      const deadline = Date.now() + timeoutMs;
      while (get() === '') {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the proxy exited (${child.exitCode ?? child.signalCode})`);
        if (Date.now() > deadline) throw new Error('the proxy did not answer in time');
        await sleep(20);
      }
      return get();
    };
    try {
      await line(() => syncLine, 300_000);
      const [, syncMs, , prefetchedMs] = syncLine.split(' ');
      const rssAtList = rssMb(child.pid as number);

      // Churn: each event moves one pod to a new IP; the index must follow.
      const sent: Array<{ key: string; start: number; end: number }> = [];
      const cpuBefore = cpuMs(child.pid as number);
      const rssSamples: number[] = [];
      const n = await paced(options.eventsPerSecond, options.seconds, async (event) => {
        const pod = (event * 7919) % options.pods;
        const ip = ipOf(options.pods + event);
        const start = Date.now();
        if (event % options.eventsPerSecond === 0) rssSamples.push(rssMb(child.pid as number));
        await cluster.setIp(pod, ip);
        sent.push({ key: `pod-${pod} ${ip}`, start, end: Date.now() });
      });
      const cpuPerEventUs = ((cpuMs(child.pid as number) - cpuBefore) * 1000) / Math.max(1, n);
      const achieved = sent.length / options.seconds;
      await sleep(1000);
      child.stdin?.write('lookup\n');
      await line(() => lookupLine, 60_000);
      child.stdin?.write('memory\n');
      await line(() => memoryLine, 10_000);
      const rssAfter = rssMb(child.pid as number);
      const fileMb = footprint(child.pid as number).fileKb / 1024;

      const lagFromAnswer: number[] = [];
      const lagFromRequest: number[] = [];
      let missing = 0;
      for (const s of sent) {
        const at = seen.get(s.key);
        if (at === undefined) {
          missing++;
          continue;
        }
        lagFromAnswer.push(Math.max(0, at - s.end));
        lagFromRequest.push(at - s.start);
      }
      const p = (values: number[], q: number): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? NaN;
      const lookupNs = Number(lookupLine.split(' ')[1]);
      const rssMax = Math.max(rssAtList, rssAfter, ...rssSamples);
      const markdown = [
        `${options.pods} pods (${options.roles} roles) listed from kube-apiserver, then ${achieved.toFixed(0)} pod events/s for ${options.seconds} s, each moving a pod to a new IP.`,
        '',
        '| Measure | Value | Target |',
        '|---|---:|---:|',
        `| RSS after the list of ${options.pods} pods | ${rssAtList.toFixed(0)} MB | at most 100 MB |`,
        `| RSS during and after the churn (max) | ${rssMax.toFixed(0)} MB | at most 100 MB |`,
        `| lag p50 / p99 / max, from the API server's answer to the index | ${p(lagFromAnswer, 0.5)} / ${p(lagFromAnswer, 0.99)} / ${p(lagFromAnswer, 1)} ms | p99 at most 50 ms |`,
        `| lag p99 from the start of the API request (upper bound) | ${p(lagFromRequest, 0.99)} ms | |`,
        `| events the index never saw | ${missing} of ${sent.length} | 0 |`,
        `| caller lookup (IP to pod to assignment) | ${lookupNs.toFixed(0)} ns | |`,
        `| proxy CPU per pod event (user + system) | ${cpuPerEventUs.toFixed(0)} µs | |`,
        `| time from start to synced (${options.pods} pods listed) | ${syncMs} ms | |`,
        `| time from start to every role's credentials fetched (${options.roles} roles, --sts-rate-limit 100) | ${prefetchedMs} ms | |`,
        '',
        `Of the RSS, ${fileMb.toFixed(0)} MB are pages mapped from files (the Node binary's, shared and reclaimable); the program holds the rest. Proxy memory at the end (MB): ${memoryLine.slice('memory '.length)}. The proxy runs with the container image's Node options: \`${IMAGE_NODE_OPTIONS.join(' ')}\`.`,
      ].join('\n');
      return {
        id: 'pod-index',
        title: 'Pod index: 10,000 pods and churn through a real API server',
        markdown,
        raw: {
          options,
          cpuPerEventUs,
          loadSeconds,
          syncMs: Number(syncMs),
          rssAtList,
          rssAfter,
          rssSamples,
          achieved,
          missing,
          lookupNs,
          lagMedian: median(lagFromAnswer),
          lagP99: p(lagFromAnswer, 0.99),
          lagFromRequestP99: p(lagFromRequest, 0.99),
        },
      };
    } finally {
      await cluster.close();
      child.kill('SIGTERM');
      await sleep(500);
      child.kill('SIGKILL');
    }
  } finally {
    await moto.stop();
    await plane.stop();
  }
}
