// Scenario: pod churn through a real kube-apiserver while the real program serves load.
// A few pods at loopback addresses ask for their credentials at a steady rate; first
// alone (the baseline), then while other pods move to new addresses at 200 events per
// second. Every answer is checked: a load pod must get 200 and its own role. Each moved
// pod asks from its new address as soon as the API server has accepted the move; the
// program holds an unknown caller briefly for its pod to appear, so the time to a right
// answer is the lag from the API server to the proxy serving the pod.

import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { KubernetesControlPlane } from '../test/harness/kubernetes.js';
import { get } from '../test/harness/pod-client.js';
import { MotoServer } from '../test/harness/moto.js';
import { IMAGE_NODE_OPTIONS } from '../test/harness/environment.js';
import { ClusterLoader, paced, rssMb } from './cluster.js';
import { BenchServer, CLUSTER_PROXY_FLAGS, fromLoadCore, onLoadCore, quantile, type Section } from './harness.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const LISTING = '/latest/meta-data/iam/security-credentials/';
const LOAD_PODS = 8;
const CONNECTIONS_PER_POD = 4;
const STATS_SECONDS = 2;

export interface ChurnOptions {
  /** Pods that move (besides the load pods). */
  pods: number;
  roles: number;
  eventsPerSecond: number;
  seconds: number;
  /** Credential requests per second from the load pods together. */
  loadPerSecond: number;
}

interface LoadFigures {
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Not 200, or not the pod's own role. */
  errors: number;
}

/**
 * Load pod `k` is pod `pods + k` at 127.0.1.(k+1); the moving pods start on addresses no
 * one asks from and move to 127.2.x.y, one fresh address per event.
 */
const ipOf =
  (pods: number) =>
  (n: number): string =>
    n >= pods ? `127.0.1.${n - pods + 1}` : `10.9.${(n >> 8) & 255}.${n & 255}`;
const movedTo = (event: number): string => `127.2.${(event >> 8) & 255}.${event & 255}`;

/** Steady load from the load pods for `seconds`: listing and document in turn, every answer checked. */
async function serveLoad(port: number, options: ChurnOptions, seconds: number): Promise<LoadFigures> {
  const latencies: number[] = [];
  let errors = 0;
  const workers = LOAD_PODS * CONNECTIONS_PER_POD;
  const intervalMs = (1000 * workers) / options.loadPerSecond; // each worker's share of the rate
  const started = performance.now();
  const until = started + seconds * 1000;
  const pools = Array.from(
    { length: LOAD_PODS },
    (_, k) => new Pool(`http://127.0.0.1:${port}`, { connections: CONNECTIONS_PER_POD, localAddress: `127.0.1.${k + 1}` }),
  );
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const k = w % LOAD_PODS;
      const pool = pools[k] as Pool;
      const role = `role-${(options.pods + k) % options.roles}`;
      let next = started + (w * intervalMs) / workers;
      for (let i = 0; next < until; i++, next += intervalMs) {
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        const path = i % 2 === 0 ? LISTING : LISTING + role;
        const sent = performance.now();
        try {
          const response = await pool.request({ method: 'GET', path });
          const body = await response.body.text();
          latencies.push(performance.now() - sent);
          if (response.statusCode !== 200 || (path === LISTING ? body !== role : (JSON.parse(body) as { Code?: string }).Code !== 'Success')) errors++;
        } catch {
          latencies.push(performance.now() - sent);
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(pools.map((p) => p.close()));
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    perSecond: latencies.length / elapsed,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? NaN,
    errors,
  };
}

interface LoopDelay {
  p99: number;
  max: number;
}

interface StatsLine {
  loopDelayMs: LoopDelay;
  sts: { calls: number };
  store: { reused: number; dropped: number };
}

/**
 * The proxy's stats lines over a stretch of its output: the event loop delay (the worst
 * interval's p99, and the maximum) and the STS calls and credential keys dropped in it.
 */
function statsOver(output: string): { loop: LoopDelay; stsCalls: number; keysDropped: number } {
  const lines = output
    .split('\n')
    .filter((line) => line.includes('"msg":"stats"'))
    .map((line) => JSON.parse(line) as StatsLine);
  const sum = (of: (l: StatsLine) => number): number => lines.reduce((total, l) => total + of(l), 0);
  return {
    loop: { p99: Math.max(0, ...lines.map((l) => l.loopDelayMs.p99)), max: Math.max(0, ...lines.map((l) => l.loopDelayMs.max)) },
    stsCalls: sum((l) => l.sts.calls),
    keysDropped: sum((l) => l.store.dropped),
  };
}

/**
 * The program has a core to itself; the API server, etcd and this process (the pods'
 * load and the churn) share the other, as on a node the control plane is elsewhere.
 */
export function churnScenario(options: ChurnOptions): Promise<Section> {
  return fromLoadCore(() => measureChurn(options));
}

async function measureChurn(options: ChurnOptions): Promise<Section> {
  const plane = await KubernetesControlPlane.start({ prefix: onLoadCore() });
  const moto = await MotoServer.start();
  const cluster = new ClusterLoader(plane);
  let proxy: BenchServer | undefined;
  try {
    await cluster.createPods(0, options.pods + LOAD_PODS, options.roles, ipOf(options.pods));
    const env = {
      ...process.env,
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_STS: moto.endpoint,
      AWS_ACCESS_KEY_ID: 'AKIDBENCH',
      AWS_SECRET_ACCESS_KEY: 'bench',
    };
    proxy = await BenchServer.run(
      'this proxy',
      process.execPath,
      [
        ...IMAGE_NODE_OPTIONS,
        PROGRAM,
        ...plane.programConnection(),
        ...CLUSTER_PROXY_FLAGS,
        '--stats-interval',
        `${STATS_SECONDS}s`,
        '--log-format',
        'json',
        '--app-port',
      ],
      { env, ready: /"msg":"listening on port/ },
    );
    const port = proxy.port;
    // Every load pod has its credentials before the clock starts.
    const deadline = Date.now() + 120_000;
    for (let k = 0; k < LOAD_PODS; k++) {
      while ((await get(port, `127.0.1.${k + 1}`, `${LISTING}role-${(options.pods + k) % options.roles}`)).status !== 200) {
        if (Date.now() > deadline) throw new Error('the load pods are not served');
        await sleep(100);
      }
    }
    await serveLoad(port, options, Math.min(2, options.seconds)); // warm-up (JIT)

    const quietFrom = proxy.log().length;
    const quiet = await serveLoad(port, options, options.seconds);
    const quietLoop = statsOver(proxy.log().slice(quietFrom)).loop;
    const busyFrom = proxy.log().length;
    const cpuBefore = proxy.cpuMs();
    const lags: number[] = [];
    let wrongRole = 0;
    let unserved = 0;
    let events = 0;
    const load = serveLoad(port, options, options.seconds);
    const churnStarted = Date.now();
    await paced(options.eventsPerSecond, options.seconds, async (n) => {
      events++;
      const pod = (n * 7919) % options.pods;
      const ip = movedTo(n);
      await cluster.setIp(pod, ip);
      const accepted = performance.now();
      // A pod asks again after a 404, as SDKs retry; three tries of the program's wait.
      for (let attempt = 0; attempt < 3; attempt++) {
        const answer = await get(port, ip, LISTING);
        if (answer.status === 200) {
          if (answer.body === `role-${pod % options.roles}`) lags.push(performance.now() - accepted);
          else wrongRole++;
          return;
        }
      }
      unserved++;
    });
    const churnSeconds = (Date.now() - churnStarted) / 1000;
    const busy = await load;
    const busyStats = statsOver(proxy.log().slice(busyFrom));
    const busyLoop = busyStats.loop;
    const cpuPerEventUs = ((proxy.cpuMs() - cpuBefore) * 1000) / Math.max(1, events);
    const rss = rssMb(proxy.pid);
    lags.sort((a, b) => a - b);
    const lag = { p50: quantile(lags, 0.5), p99: quantile(lags, 0.99), max: lags.at(-1) ?? NaN };
    const ms = (v: number): string => v.toFixed(2);
    const row = (name: string, f: LoadFigures, loop: LoopDelay): string =>
      `| ${name} | ${f.perSecond.toFixed(0)} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} | ${ms(f.maxMs)} | ${f.errors} of ${f.requests} | ${ms(loop.p99)} / ${ms(loop.max)} |`;
    const markdown = [
      `The real program against a real kube-apiserver holding ${options.pods + LOAD_PODS} pods (${options.roles} roles). ${LOAD_PODS} load pods at their own loopback addresses ask for their credentials (listing, then document) ${options.loadPerSecond} times a second together, for ${options.seconds} s without churn, then for ${options.seconds} s while ${(events / churnSeconds).toFixed(0)} pod events/s move other pods to new addresses. Every answer is checked against the pod's own role.`,
      '',
      '| Load | answers/s | p50 ms | p99 ms | max ms | errors or wrong role | proxy event loop delay p99 / max ms |',
      '|---|---:|---:|---:|---:|---:|---:|',
      row('without churn (baseline)', quiet, quietLoop),
      row(`with ${options.eventsPerSecond} pod events/s`, busy, busyLoop),
      '',
      `p99 with churn vs without: ${(busy.p99Ms / quiet.p99Ms).toFixed(2)}x. Latencies are measured by the load pods, whose core the API server and etcd share; the proxy's own event loop delay (the worst ${STATS_SECONDS}-second interval's p99, and the maximum, from its stats line) shows what the churn costs the proxy itself.`,
      '',
      '| Moved pods | Value |',
      '|---|---:|',
      `| events | ${events} |`,
      `| lag p50 / p99 / max, from the API server accepting the move to the pod served at its new address | ${ms(lag.p50)} / ${ms(lag.p99)} / ${ms(lag.max)} ms |`,
      `| answered with another pod's role | ${wrongRole} |`,
      `| not served after three tries | ${unserved} |`,
      `| proxy CPU per event, load included (user + system) | ${cpuPerEventUs.toFixed(0)} µs |`,
      `| proxy RSS at the end | ${rss.toFixed(0)} MB |`,
      `| STS calls during the churn, from the stats lines | ${busyStats.stsCalls} |`,
      `| credential keys dropped during the churn | ${busyStats.keysDropped} |`,
      '',
      `Target: no errors (measured ${busy.errors + wrongRole + unserved}: ${busy.errors + wrongRole + unserved === 0 ? 'met' : 'NOT met'}). STS calls follow keys, not pod events: a moved pod keeps its key, no key is new and none reaches its renewal point within the run, so none are expected (measured ${busyStats.stsCalls}: ${busyStats.stsCalls === 0 ? 'met' : 'NOT met'}).`,
    ].join('\n');
    return {
      id: 'churn',
      title: 'Churn while serving load',
      markdown,
      raw: {
        options,
        quiet,
        busy,
        quietLoop,
        busyLoop,
        busyStsCalls: busyStats.stsCalls,
        busyKeysDropped: busyStats.keysDropped,
        events,
        churnSeconds,
        lag,
        wrongRole,
        unserved,
        cpuPerEventUs,
        rss,
      },
    };
  } finally {
    await proxy?.stop();
    await cluster.close();
    await moto.stop();
    await plane.stop();
  }
}
