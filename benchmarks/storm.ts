// Scenario: a cold-start storm as a node sees it. 110 pod addresses (a full node) each
// start 3 processes at once that fetch credentials through the iptables DNAT rule, with
// the connection patterns of the JS v3 SDK (a new connection per request) and botocore
// (one kept-alive connection): 330 fetches and 770 connections in one burst, well past
// the 100-connection burst of kube2iam #253. The proxy and the kube2iam-equivalent Go
// peer face the same storms in turn (the rule is swapped between them); the metadata
// service for the peer's token requests is a fixed-answer stand-in on 169.254.169.254.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { IMAGE_NODE_OPTIONS } from '../test/harness/environment.js';
import { MotoServer } from '../test/harness/moto.js';
import { createNodeTopology, METADATA_IP, metadataDnat } from '../test/harness/netns.js';
import type { Fetch } from './clients/sdk-storm.js';
import { podsFileText } from '../test/reliability/program.js';
import { BenchServer, pinned, quantile, type Section } from './harness.js';
import { goPeer } from './peers.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('./clients/sdk-storm.js', import.meta.url));
const FIXED = fileURLToPath(new URL('./servers/fixed-response.js', import.meta.url));
const ROLE = 'arn:aws:iam::123456789012:role/bench-role';
const LOAD_CPU = '1';

export interface StormOptions {
  addresses: number;
  processesPerAddress: number;
  /** Storms per contender, alternating. */
  rounds: number;
}

interface Figures {
  fetches: number;
  failures: number;
  p50: number;
  p99: number;
  max: number;
  firstError: string | undefined;
}

function figures(fetches: Fetch[]): Figures {
  const sorted = fetches.map((f) => f.ms).sort((a, b) => a - b);
  const failed = fetches.filter((f) => !f.ok);
  return {
    fetches: fetches.length,
    failures: failed.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1) ?? NaN,
    firstError: failed[0]?.error,
  };
}

export async function stormScenario(options: StormOptions): Promise<Section> {
  const topology = await createNodeTopology(1);
  const node = topology.node;
  const pod = topology.pods[0] as (typeof topology.pods)[number];
  const addresses = Array.from({ length: options.addresses }, (_, n) => `10.200.0.${11 + n}`);
  const servers: BenchServer[] = [];
  let moto: MotoServer | null = null;
  const results = new Map<string, Fetch[]>();
  /** CPU ms each server spent per storm. */
  const cpu = new Map<string, number[]>();
  const peer = goPeer();
  try {
    for (const address of addresses.slice(1)) await pod.ns.ip('addr', 'add', `${address}/24`, 'dev', 'eth0');
    moto = await MotoServer.start({ prefix: node.prefix });
    const dir = mkdtempSync(join(tmpdir(), 'k2i-bench-storm-'));
    writeFileSync(join(dir, 'pods.json'), podsFileText(addresses.map((ip, n) => ({ name: `app-${n}`, ip, role: ROLE }))));
    servers.push(await BenchServer.start('metadata', FIXED, ['floor'], { netns: node.name, port: 80, env: { ...process.env, HOST: METADATA_IP } }));
    const env = { ...process.env, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' };
    const contenders: BenchServer[] = [
      await BenchServer.run(
        'this proxy',
        process.execPath,
        [...IMAGE_NODE_OPTIONS, PROGRAM, '--pods-file', join(dir, 'pods.json'), '--metadata-addr', `${METADATA_IP}:80`, '--stats-interval', '0', '--app-port'],
        { netns: node.name, env, ready: /msg="listening on port/ },
      ),
    ];
    if ('binary' in peer) {
      contenders.push(
        await BenchServer.run(
          'kube2iam-equivalent Go peer',
          peer.binary,
          ['-ip', addresses.join(','), '-role', ROLE, '-host', topology.nodeIp, '-metadata', `${METADATA_IP}:80`, '-port'],
          {
            netns: node.name,
          },
        ),
      );
    }
    servers.push(...contenders);

    const storm = async (server: BenchServer): Promise<Fetch[]> => {
      await node.exec('iptables', metadataDnat(topology, server.port, '-A'));
      try {
        const [command, args] = pinned(LOAD_CPU, process.execPath, [CLIENT, JSON.stringify({ addresses, processesPerAddress: options.processesPerAddress })]);
        const out = spawnSync('ip', ['netns', 'exec', pod.ns.name, command, ...args], { encoding: 'utf8', timeout: 120_000 });
        if (out.status !== 0) throw new Error(`the storm's client failed: ${out.stderr}`);
        return JSON.parse(out.stdout) as Fetch[];
      } finally {
        await node.exec('iptables', metadataDnat(topology, server.port, '-D'));
      }
    };
    // The proxy prefetches the role when it reads the pods; wait until it serves it.
    const deadline = Date.now() + 30_000;
    while (!(await storm(contenders[0] as BenchServer).then((f) => f.every((x) => x.ok)))) {
      if (Date.now() > deadline) throw new Error('the proxy serves no credentials to the storm');
      await sleep(500);
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const server of contenders) {
        const before = server.cpuMs();
        const fetches = await storm(server);
        const used = server.cpuMs() - before;
        results.set(server.name, [...(results.get(server.name) ?? []), ...fetches]);
        cpu.set(server.name, [...(cpu.get(server.name) ?? []), used]);
        const f = figures(fetches);
        process.stderr.write(
          `  storm round ${round + 1} ${server.name}: p50 ${f.p50.toFixed(1)} ms, p99 ${f.p99.toFixed(1)} ms, max ${f.max.toFixed(1)} ms, ${f.failures} failed, ${used} ms CPU\n`,
        );
        await sleep(1000); // connections of the last storm gone from the tables
      }
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await moto?.stop();
    await topology.delete();
  }

  const rows: string[] = [];
  const summary: Array<{ name: string; sdk: string; cpuMs: number } & Figures> = [];
  for (const [name, fetches] of results) {
    const cpuMs = quantile(
      [...(cpu.get(name) ?? [])].sort((a, b) => a - b),
      0.5,
    );
    for (const sdk of ['all', 'js-v3', 'botocore'] as const) {
      const f = figures(sdk === 'all' ? fetches : fetches.filter((x) => x.sdk === sdk));
      summary.push({ name, sdk, cpuMs, ...f });
      rows.push(
        `| ${name} | ${sdk === 'all' ? 'every fetch' : sdk === 'js-v3' ? 'JS v3 SDK pattern' : 'botocore pattern'} | ${f.fetches} | ${f.p50.toFixed(1)} | ${f.p99.toFixed(1)} | ${f.max.toFixed(1)} | ${f.failures} | ${sdk === 'all' ? cpuMs.toFixed(0) : ''} |`,
      );
    }
  }
  const ours = summary.find((s) => s.name === 'this proxy' && s.sdk === 'all');
  const theirs = summary.find((s) => s.name !== 'this proxy' && s.sdk === 'all');
  const connections = options.addresses * (options.processesPerAddress * 3 - Math.floor((options.processesPerAddress + 1) / 3) * 2);
  const markdown = [
    `${options.addresses} pod addresses in a pod network namespace, each starting ${options.processesPerAddress} processes at once (${options.addresses * options.processesPerAddress} fetches, ${connections} connections per storm), through the DNAT rule on the node's bridge to the proxy, then to the Go peer; ${options.rounds} storms each, alternating. A fetch is token, role listing and credential document, timed from the process's start; each request has the SDKs' 1 s timeout. The load generator is one process on the other core, making the SDKs' requests with their connection patterns.`,
    '',
    '| Server | fetches | count | p50 ms | p99 ms | max ms | failed | server CPU ms per storm |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    ours === undefined
      ? ''
      : `Target: p99 at most 50 ms and no failures (measured ${ours.p99.toFixed(1)} ms and ${ours.failures}: ${ours.p99 <= 50 && ours.failures === 0 ? 'met' : 'NOT met'})${theirs === undefined ? '' : `; p99 vs the Go peer ${(ours.p99 / theirs.p99).toFixed(2)}x`}.${ours.firstError === undefined ? '' : ` First failure: ${ours.firstError}.`}`,
    ours === undefined
      ? ''
      : `The whole storm is one burst on a server with one core: the proxy spent ${ours.cpuMs.toFixed(0)} ms of CPU on each, so its last fetch cannot finish sooner than that, and the p99 of a burst this size follows the server's CPU per storm.`,
    'skipped' in peer ? `The Go peer's rows are missing: ${peer.skipped}.` : '',
  ].join('\n');
  return {
    id: 'storm',
    title: 'Cold-start storm through the DNAT rule',
    markdown,
    raw: { options, summary, fetches: Object.fromEntries([...results].map(([name, f]) => [name, f.map((x) => Math.round(x.ms * 1000) / 1000)])) },
  };
}
