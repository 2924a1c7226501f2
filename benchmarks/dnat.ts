// Scenario: credential requests from pod network namespaces through the iptables DNAT
// rule, as on a node. Pod 1's traffic for 169.254.169.254:80 goes to the full proxy (the
// built program: pod lookup, prefetched credentials); pod 2's, by a second rule matching
// its source, to a proxy that only passes requests through to the metadata service. The
// metadata service is a fixed-answer server on 169.254.169.254 in the node namespace, so
// the baseline measures the pass-through path rather than a slow stand-in. Both proxies
// are pinned to one core, wrk to the other; runs alternate.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MotoServer } from '../test/harness/moto.js';
import { curlIn } from '../test/harness/curl.js';
import { createNodeTopology, METADATA_IP, metadataDnat } from '../test/harness/netns.js';
import { alternate, BenchServer, summarize, type MeasuredLoad, type Section } from './harness.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const PASS_THROUGH = fileURLToPath(new URL('./servers/pass-through.js', import.meta.url));
const FIXED = fileURLToPath(new URL('./servers/fixed-response.js', import.meta.url));
const PATH = '/latest/meta-data/iam/security-credentials/bench-role';

export interface DnatOptions {
  rounds: number;
  seconds: number;
  connections: number;
}

export async function dnatScenario(options: DnatOptions): Promise<Section> {
  const topology = await createNodeTopology(2);
  const node = topology.node;
  const servers: BenchServer[] = [];
  let moto: MotoServer | null = null;
  let runs = new Map<string, MeasuredLoad[]>();
  try {
    moto = await MotoServer.start({ prefix: node.prefix });
    const dir = mkdtempSync(join(tmpdir(), 'k2i-bench-dnat-'));
    const pods = topology.pods.map((pod, n) => ({
      kind: 'Pod',
      metadata: { name: `bench-${n}`, namespace: 'bench', annotations: { 'iam.amazonaws.com/role': 'bench-role' } },
      status: { phase: 'Running', podIP: pod.ip },
    }));
    writeFileSync(join(dir, 'pods.json'), JSON.stringify({ kind: 'List', items: pods }));

    servers.push(await BenchServer.start('metadata', FIXED, ['floor'], { netns: node.name, port: 80, env: { ...process.env, HOST: METADATA_IP } }));
    const env = { ...process.env, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' };
    const full = await BenchServer.start(
      'full proxy',
      PROGRAM,
      [
        '--pods-file',
        join(dir, 'pods.json'),
        '--base-role-arn',
        'arn:aws:iam::123456789012:role/',
        '--metadata-addr',
        `${METADATA_IP}:80`,
        '--stats-interval',
        '0',
        '--log-level',
        'info',
        '--app-port',
      ],
      { netns: node.name, env, ready: /msg="listening on port/ },
    );
    servers.push(full);
    const passThrough = await BenchServer.start('pass-through proxy', PASS_THROUGH, [topology.nodeIp, `${METADATA_IP}:80`], { netns: node.name });
    servers.push(passThrough);

    const [pod1, pod2] = topology.pods as [(typeof topology.pods)[0], (typeof topology.pods)[0]];
    for (const [pod, server] of [
      [pod1, full],
      [pod2, passThrough],
    ] as const) {
      await node.exec('iptables', metadataDnat(topology, server.port, '-A', pod.ip));
    }
    // The credentials are prefetched when the pods are read; wait until they are served.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { status } = await curlIn(['ip', 'netns', 'exec', pod1.ns.name], `http://${METADATA_IP}${PATH}`);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`the full proxy serves no credentials (last status ${status})`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    runs = alternate(
      'dnat',
      [
        { name: full.name, server: full, url: `http://${METADATA_IP}${PATH}`, netns: pod1.ns.name },
        { name: passThrough.name, server: passThrough, url: `http://${METADATA_IP}${PATH}`, netns: pod2.ns.name },
      ],
      options,
    );
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await moto?.stop();
    await topology.delete();
  }

  const summary = [...runs].map(([name, results]) => ({ name, ...summarize(results) }));
  const baseline = summary[1] as (typeof summary)[0];
  const rows = summary.map(
    (s) =>
      `| ${s.name} | ${s.requestsPerSecond.toFixed(0)} | ${s.p50Ms.toFixed(3)} | ${s.p99Ms.toFixed(3)} | ${s.cpuUsPerRequest.toFixed(2)} | ${(s.requestsPerSecond / baseline.requestsPerSecond).toFixed(2)}x | ${s.errors} |`,
  );
  const markdown = [
    `\`GET ${PATH}\` from a pod network namespace to 169.254.169.254:80, DNATed by iptables on the node's bridge; keep-alive, ${options.connections} connections, wrk -t1, ${options.rounds} alternating rounds of ${options.seconds} s (median shown).`,
    'The full proxy answers from prefetched credentials; the pass-through proxy forwards the same request to a fixed-answer metadata stand-in in the node namespace.',
    '',
    '| Proxy | req/s | p50 ms | p99 ms | proxy CPU µs/request | req/s vs pass-through | errors |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
  return { id: 'dnat', title: 'Credentials through the iptables DNAT rule', markdown, raw: { options, runs: Object.fromEntries(runs), summary } };
}
