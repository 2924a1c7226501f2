// Scenario: start-up and memory of the real program against a real kube-apiserver: with
// no pods (idle), then with 1,000 pods of 500 roles. Measured from process start: the
// time to a 200 from /healthz (pods listed) and to the first credentials of the last pod
// created; then RSS once settled. Pod IPs are loopback addresses, so credentials are
// asked for from each pod's own address. The 10,000-pod figures are the pod-index
// scenario's.

import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubernetesControlPlane } from '../test/harness/kubernetes.js';
import { MotoServer } from '../test/harness/moto.js';
import { get } from '../test/harness/pod-client.js';
import { IMAGE_NODE_OPTIONS } from '../test/harness/environment.js';
import { footprint } from '../test/harness/processes.js';
import { ClusterLoader } from './cluster.js';
import { freePort } from '../test/harness/ports.js';
import { CLUSTER_PROXY_FLAGS, type Section } from './harness.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const ipOf = (n: number): string => `127.1.${(n >> 8) & 255}.${n & 255}`;
const FULL_NODE = 110;

export interface FootprintOptions {
  pods: number;
  roles: number;
}

interface Measure {
  pods: number;
  healthzMs: number;
  credentialsMs: number | null;
  rssMb: number;
  /** Of the RSS, pages mapped from files (the Node binary's code, mostly). */
  fileMb: number;
  /** The live heap, from the program's own stats line. */
  heapUsedMb: number;
}

/** What one part costs loaded alone in a Node process with the image's options, after a full collection. */
function componentCost(imports: string[]): { rssMb: number; heapUsedMb: number } {
  const script = `${imports.map((m) => `await import(${JSON.stringify(m)});`).join(' ')}
    globalThis.gc(); await new Promise((r) => setTimeout(r, 500)); globalThis.gc();
    const m = process.memoryUsage(); console.log(JSON.stringify({ rssMb: m.rss / 1048576, heapUsedMb: m.heapUsed / 1048576 }));`;
  const out = execFileSync(process.execPath, [...IMAGE_NODE_OPTIONS, '--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  return JSON.parse(out) as { rssMb: number; heapUsedMb: number };
}

const COMPONENTS: Array<[string, string[]]> = [
  ['Node alone', []],
  ['undici (its Pool, lib/undici.ts)', [new URL('../lib/undici.js', import.meta.url).href]],
  ['undici (the whole package, as before)', ['undici']],
  ['@aws-sdk/client-sts', ['@aws-sdk/client-sts']],
  ['pino', ['pino']],
  ['yargs', ['yargs']],
  ['lru-cache', ['lru-cache']],
  ['@kubernetes/client-node (only with --kubeconfig now)', ['@kubernetes/client-node']],
  ['the program’s modules, all loaded (no pods, not started)', [new URL('../lib/app.js', import.meta.url).href, 'yargs']],
];

async function measure(plane: KubernetesControlPlane, moto: MotoServer, pods: number, roles: number): Promise<Measure> {
  const port = await freePort();
  const started = Date.now();
  const args = [
    ...IMAGE_NODE_OPTIONS,
    PROGRAM,
    ...plane.programConnection(),
    '--node',
    'node-1',
    '--app-port',
    String(port),
    ...CLUSTER_PROXY_FLAGS,
    '--stats-interval',
    '1s',
    '--log-format',
    'json',
    '--log-level',
    'warn',
  ];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'AKIDBENCH', AWS_SECRET_ACCESS_KEY: 'bench' },
  });
  let heapUsedMb = NaN;
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const heap = (JSON.parse(line) as { memoryMb?: { heapUsed?: number } }).memoryMb?.heapUsed;
      if (heap !== undefined) heapUsedMb = heap;
    }
  });
  try {
    const until = async (check: () => Promise<boolean>, what: string): Promise<number> => {
      const deadline = Date.now() + 120_000;
      while (!(await check())) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the proxy exited (${child.exitCode ?? child.signalCode})`);
        if (Date.now() > deadline) throw new Error(`no ${what} within 120 s`);
        await sleep(10);
      }
      return Date.now() - started;
    };
    const healthzMs = await until(async () => (await get(port, '127.0.0.1', '/healthz', 1000)).status === 200, '/healthz');
    const last = pods - 1;
    const credentialsMs =
      pods === 0
        ? null
        : await until(
            async () => (await get(port, ipOf(last), `/latest/meta-data/iam/security-credentials/role-${last % roles}`, 1000)).status === 200,
            'credentials',
          );
    await sleep(2500); // settled: the start-up garbage collected, a stats line since
    const memory = footprint(child.pid as number);
    return { pods, healthzMs, credentialsMs, rssMb: memory.rssKb / 1024, fileMb: memory.fileKb / 1024, heapUsedMb };
  } finally {
    child.kill('SIGKILL');
  }
}

export async function footprintScenario(options: FootprintOptions): Promise<Section> {
  const plane = await KubernetesControlPlane.start();
  const moto = await MotoServer.start();
  const cluster = new ClusterLoader(plane);
  const results: Measure[] = [];
  try {
    results.push(await measure(plane, moto, 0, options.roles));
    // A full node (110 pods, the kubelet's default maximum), then a thousand.
    await cluster.createPods(0, FULL_NODE, options.roles, ipOf);
    results.push(await measure(plane, moto, FULL_NODE, options.roles));
    await cluster.createPods(FULL_NODE, options.pods, options.roles, ipOf);
    results.push(await measure(plane, moto, options.pods, options.roles));
  } finally {
    await cluster.close();
    await moto.stop();
    await plane.stop();
  }
  const rows = results.map(
    (r) =>
      `| ${r.pods === 0 ? 'idle (no pods)' : `${r.pods} pods, ${Math.min(r.pods, options.roles)} roles`} | ${r.healthzMs} | ${r.credentialsMs ?? '–'} | ${r.rssMb.toFixed(0)} | ${r.fileMb.toFixed(0)} | ${r.heapUsedMb} |`,
  );
  const components = COMPONENTS.map(([name, imports]) => ({ name, ...componentCost(imports) }));
  const alone = components[0] as { rssMb: number; heapUsedMb: number };
  const componentRows = components.map(
    (c, i) =>
      `| ${c.name} | ${c.rssMb.toFixed(1)} | ${i === 0 ? '–' : `+${(c.rssMb - alone.rssMb).toFixed(1)}`} | ${c.heapUsedMb.toFixed(1)} | ${i === 0 ? '–' : `+${(c.heapUsedMb - alone.heapUsedMb).toFixed(1)}`} |`,
  );
  const idle = results[0] as Measure;
  const full = results[1] as Measure;
  const loaded = results[2] as Measure;
  const perThousand = (loaded.heapUsedMb - idle.heapUsedMb) / (options.pods / 1000);
  const markdown = [
    `The built program started against a real kube-apiserver (\`--node\`, the image's Node options \`${IMAGE_NODE_OPTIONS.join(' ')}\`, \`--sts-rate-limit 100\`, moto as STS); times from process start.`,
    '',
    '| Pods | to /healthz 200 (pods listed), ms | to the last pod’s credentials, ms | RSS settled, MB | of it mapped from files, MB | live heap, MB |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    `Targets: RSS at most 80 MB idle (measured ${idle.rssMb.toFixed(0)}: ${idle.rssMb <= 80 ? 'met' : 'NOT met'}), 85 MB with ${FULL_NODE} pods (measured ${full.rssMb.toFixed(0)}: ${full.rssMb <= 85 ? 'met' : 'NOT met'}); of these, ${idle.fileMb.toFixed(0)} and ${full.fileMb.toFixed(0)} MB are pages mapped from files, the Node binary's mostly, which the kernel shares and may reclaim: the memory the program itself holds is ${(idle.rssMb - idle.fileMb).toFixed(0)} and ${(full.rssMb - full.fileMb).toFixed(0)} MB. RSS with 10,000 pods: see the pod-index scenario. The live heap of the pods and their credentials: ${perThousand.toFixed(1)} MB per 1,000 pods (with ${options.roles / (options.pods / 1000)} roles per 1,000).`,
    '',
    'Memory by component: each loaded alone in a Node process with the same options, after a full garbage collection (RSS counts the pages of the Node binary each one touches: about half of it is that file, shared and reclaimable).',
    '',
    '| Component | RSS MB | RSS vs Node alone | live heap MB | heap vs Node alone |',
    '|---|---:|---:|---:|---:|',
    ...componentRows,
  ].join('\n');
  return { id: 'footprint', title: 'Start-up and memory', markdown, raw: { options, results, components } };
}
