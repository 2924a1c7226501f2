// The fleet simulation: many real proxy processes on this machine, one per simulated
// node, each with its own pods file, all calling one STS (moto) through the fault
// injector in its account-limit mode: one token bucket for the whole account, and STS's
// own `Throttling` answer past it (a named fault injector: moto does not throttle).
//
// Scale. The account limit is 100 calls/s for a 5,000-node fleet, scaled to the
// simulated fleet (N/5,000 of it) and run `speedup` times faster: credentials are
// granted for `lifetimeSeconds` (the injector cuts STS's Expiration), so a renewal
// period of 90 s stands for kube2iam's 15 minutes, and the start-up window is given in
// the same time. The proxy's own constants (back-off, the rate's doubling time, a pod's
// 1 s wait) are not scaled: the simulation is stricter than the fleet it stands for.
//
// Each design runs the same timeline on a fresh fleet, with the same seeded pods and
// the same pod requests:
// 1. all nodes start together; every pod asks for credentials within 10 s of its node;
//    then the fleet is started again, one node at a time over a renewal period (as a
//    fleet grows), so that what follows runs in steady state, not in the cold start's
//    echo (its renewals come bunched as its fetches were);
// 2. the renewal steady state, one renewal period, with each pod asking once;
// 3. a new Deployment of 1,000 replicas lands across the fleet, each replica asking;
// 4. a rolling restart, 10% of the nodes at a time, the next batch when the last is
//    ready (/readyz), as the DaemonSet controller does; the restarted nodes' pods keep
//    running and ask at the times their SDKs refresh (over one renewal period).
// Pods ask as SDKs do: a new connection per request, 1 s timeout, again 1 s after a
// failure. "Waited past 1 s" counts pods whose first answer with credentials came more
// than 1 s after they first asked.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IMAGE_NODE_OPTIONS, REPO } from '../test/harness/environment.js';
import { MotoServer } from '../test/harness/moto.js';
import { type FilePod, podsFile } from '../test/harness/pods-file.js';
import { freePort } from '../test/harness/ports.js';
import { Random } from '../test/harness/random.js';
import { type StsCall, StsFaultInjector } from '../test/harness/sts-faults.js';
import { HANDOVER_CHECK_SPREAD_MS } from '../lib/credentials/store.js';
import type { Section } from './harness.js';

/** The proxy as it was before this design (issue 18): every key at once, a fixed 20/s per node, the SDK retrying throttled calls. */
const BEFORE_COMMIT = '0f1638a';
const MODEL_NODES = 5000;
const BASE_ARN = 'arn:aws:iam::123456789012:role/';
const LISTING = '/latest/meta-data/iam/security-credentials/';
const DAEMONSETS = ['logs', 'metrics', 'csi'];
const DEPLOYMENTS = 40;
const NEW_REPLICAS = 1000;
const ASK_TIMEOUT_MS = 1000;
const COLD_START = 'all nodes start';

export interface FleetOptions {
  nodes: number;
  /** The account's limit for a 5,000-node fleet, calls/s (scaled to the simulated fleet). */
  accountLimit: number;
  speedup: number;
  /** STS grants credentials for this long (renewed at half). */
  lifetimeSeconds: number;
  /** Pods' SDKs refresh their credentials once over this long (the steady phase's length); half the lifetime, a renewal period, unless shortened (the smoke run). */
  refreshSeconds: number;
  /** Longest a phase may take (a design that never serves every pod still ends). */
  phaseCapSeconds: number;
  /** Also measure the build before this design (built from git in the run). */
  before: boolean;
  /** Only these designs (`before`, `demand`, `window`); all when empty. */
  designs: string[];
  /** Writes every STS call and pod ask of each design to `<trace>-<design>.json` (to see why a figure is what it is). */
  trace: string | null;
  /** Every node starting at once again this many times for on demand and the window, alternating: the phase whose comparison one run leaves to chance. */
  coldRepeats: number;
}

interface Design {
  /** `before`, `demand` or `window` (BENCH_FLEET_DESIGNS). */
  id: string;
  name: string;
  program: string;
  flags: string[];
  /** Over how long a restarted node's fetches are spread, in real seconds; null: over the pods' refresh (on demand). */
  spreadSeconds: number | null;
  /** Each node's proxy hands its credentials to the next (--handover-file); the sim's SIGKILLs leave nothing, its rolling restart's SIGTERMs do. */
  handover: boolean;
}

interface SimNode {
  index: number;
  port: number;
  accessKeyId: string;
  pods: FilePod[];
  file: string;
  proxy: ChildProcess | null;
}

interface Ask {
  node: SimNode;
  pod: FilePod;
  at: number;
}

interface AskOutcome {
  node: number;
  key: string;
  askedAt: number;
  servedAt: number | null;
  failures: number;
}

interface PhaseResult {
  phase: string;
  design: string;
  seconds: number;
  calls: number;
  throttled: number;
  peakPerSecond: number;
  /** A storm starts in the first second over the account's limit: the busiest second from 10 s after it (null: never over). */
  stormPeakAfter10s: number | null;
  /** The same over 5 s: the highest mean of 5 seconds in a row from 10 s into the storm (the rate, without the noise of single seconds that the account's 1 s burst absorbs). */
  stormRateAfter10s: number | null;
  /** Calls the account throttled from 10 s into the storm: the fleet over the limit (the 5 s mean may pass it by the account's burst without one). */
  stormThrottledAfter10s: number | null;
  /** Seconds of the phase over the account's limit. */
  secondsOver: number;
  /** Calls (throttled included) in each second of the phase. */
  perSecond: number[];
  meanPerSecond: number;
  pods: number;
  failed: number;
  waitedPast1s: number;
  /** The longest a pod waited for its first answer with credentials, seconds (null: one never had it). */
  longestWaitSeconds: number | null;
  /** Seconds from the phase's start until every pod that asked had credentials. */
  allServedSeconds: number | null;
  /** Restarted nodes (the rolling restart): STS calls each made until it held all its keys again, and how long that took. */
  refill?: Refill;
}

interface Refill {
  callsPerNode: number;
  medianSeconds: number;
  maxSeconds: number;
}

/** A node's restart in the rolling restart: when it was stopped, what its proxy handed over (keys), when the new one was started and ready. */
interface Restart {
  stoppedAt: number;
  handedOver: Set<string>;
  startedAt: number;
  readyAt: number;
}

/**
 * How the restarted nodes refilled: until each held every key its pods use (from STS, or
 * handed over by its previous proxy once it started) and was ready, the calls it made
 * (throttled included), and the time it took.
 */
function refillOf(nodes: SimNode[], restarts: Map<number, Restart>, calls: StsCall[]): Refill {
  const counts: number[] = [];
  const times: number[] = [];
  for (const node of nodes) {
    const restart = restarts.get(node.index) as Restart;
    const missing = new Set(node.pods.filter((p) => p.role !== undefined && !restart.handedOver.has(keyOf(p))).map(keyOf));
    let heldAt = missing.size === 0 ? restart.startedAt : Infinity;
    let made = 0;
    for (const call of calls) {
      if (call.accessKeyId !== node.accessKeyId || call.at < restart.stoppedAt) continue;
      if (call.at > Math.max(heldAt, restart.readyAt)) break;
      made++;
      if (call.outcome === 'passed' && missing.delete(keyOfCall(call)) && missing.size === 0) heldAt = call.at;
    }
    if (Number.isFinite(heldAt)) times.push((Math.max(heldAt, restart.readyAt) - restart.stoppedAt) / 1000);
    counts.push(made);
  }
  const sorted = [...times].sort((a, b) => a - b);
  return {
    callsPerNode: counts.reduce((sum, n) => sum + n, 0) / nodes.length,
    medianSeconds: sorted[sorted.length >> 1] ?? NaN,
    maxSeconds: times.length === nodes.length ? (sorted.at(-1) as number) : NaN,
  };
}

/**
 * Node `n`'s pods: three DaemonSet pods and a node-local agent (a role of its own), then
 * replicas of one to six Deployments (a few popular across the fleet, many rare) and
 * pods with no role: about 7.5 credential keys per node.
 */
export function nodePods(n: number, random: Random): FilePod[] {
  const ip = (k: number): string => `127.${20 + (n >> 8)}.${n & 0xff}.${k + 1}`;
  const pods: FilePod[] = DAEMONSETS.map((ds, k) => ({ name: `${ds}-n${n}`, namespace: 'kube-system', role: `ds-${ds}`, ip: ip(k), deployment: `ds-${ds}` }));
  pods.push({ name: `agent-n${n}`, namespace: 'node-local', role: `agent-n${n}`, ip: ip(pods.length) });
  const hosted = Array.from({ length: 1 + random.int(6) }, () => Math.floor(DEPLOYMENTS * random.next() ** 2));
  const count = 20 + random.int(91);
  while (pods.length < count) {
    const k = pods.length;
    if (random.next() < 0.6) pods.push({ name: `system-${n}-${k}`, namespace: 'kube-system', ip: ip(k) });
    else {
      const d = random.pick(hosted);
      pods.push({ name: `svc${d}-${n}-${k}`, namespace: `team${d % 8}`, role: `svc-${d}`, ip: ip(k), deployment: `svc-${d}` });
    }
  }
  return pods;
}

/** A pod's credential key as the proxy forms it: role and session name (namespace and workload). */
function keyOf(pod: FilePod): string {
  return `${pod.role}|${pod.namespace}.${pod.deployment ?? pod.name}`;
}

/** The key of an STS call, or of credentials handed over, in `keyOf`'s form. */
function keyOfCall(call: { roleArn: string; sessionName: string }): string {
  return `${call.roleArn.slice(BASE_ARN.length)}|${call.sessionName}`;
}

/** The distinct credential keys (role, session) a node's pods use. */
export function keysOf(pods: FilePod[]): number {
  return new Set(pods.filter((p) => p.role !== undefined).map(keyOf)).size;
}

/** A free port none of `taken` is: the kernel may hand a just-freed port out again, and two proxies on one port leave one node answered by another's proxy. */
async function distinctPort(taken: number[]): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (!taken.includes(port)) return port;
  }
}

/** Builds commit `commit` of this repository into a temporary folder; returns its program. */
function buildCommit(commit: string): string {
  const dir = mkdtempSync(join(tmpdir(), `k2i-bench-${commit}-`));
  const archive = spawnSync('bash', ['-c', `git -C '${REPO}' archive ${commit} | tar -x -C '${dir}'`], { encoding: 'utf8' });
  if (archive.status !== 0) throw new Error(`cannot check out ${commit}: ${archive.stderr}`);
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  const build = spawnSync(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`cannot build ${commit}: ${build.stdout}${build.stderr}`);
  return join(dir, 'dist', 'bin', 'kube2iam.js');
}

function get(port: number, localAddress: string, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress, agent: false, timeout: ASK_TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

class Fleet {
  readonly nodes: SimNode[];
  private readonly design: Design;
  private readonly injector: StsFaultInjector;
  private readonly dir: string;

  constructor(nodes: SimNode[], design: Design, injector: StsFaultInjector, dir: string) {
    this.nodes = nodes;
    this.design = design;
    this.injector = injector;
    this.dir = dir;
  }

  /** Starts node `node`'s proxy; resolves once it accepts connections. */
  async start(node: SimNode): Promise<void> {
    const log = openSync(join(this.dir, `node-${node.index}.log`), 'a');
    node.proxy = spawn(
      process.execPath,
      [
        ...IMAGE_NODE_OPTIONS,
        this.design.program,
        '--pods-file',
        node.file,
        '--app-port',
        String(node.port),
        '--base-role-arn',
        BASE_ARN,
        '--metadata-addr',
        '127.0.0.1:9',
        '--stats-interval',
        '0',
        ...this.design.flags,
        ...(this.design.handover ? ['--handover-file', this.handoverFile(node)] : []),
      ],
      {
        stdio: ['ignore', log, log],
        env: {
          ...process.env,
          AWS_REGION: 'us-east-1',
          AWS_ENDPOINT_URL_STS: this.injector.endpoint,
          AWS_ACCESS_KEY_ID: node.accessKeyId,
          AWS_SECRET_ACCESS_KEY: 'fleet',
          AWS_EC2_METADATA_DISABLED: 'true',
        },
      },
    );
    closeSync(log);
    const deadline = Date.now() + 60_000;
    while ((await get(node.port, '127.0.0.1', '/healthz')) !== 200) {
      if (node.proxy.exitCode !== null || Date.now() > deadline) throw new Error(`node ${node.index}'s proxy did not start (log in ${this.dir})`);
      await sleep(50);
    }
    await sleep(200);
    if (node.proxy.exitCode !== null) throw new Error(`node ${node.index}'s proxy exited after it started (log in ${this.dir})`);
  }

  handoverFile(node: SimNode): string {
    return join(this.dir, `node-${node.index}`, 'handover.json');
  }

  /** The keys (role name, session name) node's stopped proxy left for its next (none without the handover). */
  handedOver(node: SimNode): Set<string> {
    if (!existsSync(this.handoverFile(node))) return new Set();
    const left = JSON.parse(readFileSync(this.handoverFile(node), 'utf8')) as { credentials: Array<{ roleArn: string; sessionName: string }> };
    return new Set(left.credentials.map(keyOfCall));
  }

  async ready(node: SimNode): Promise<void> {
    while ((await get(node.port, '127.0.0.1', '/readyz')) !== 200) await sleep(100);
  }

  /** As the kubelet stops a pod: SIGTERM, then SIGKILL after a grace period. */
  async stop(node: SimNode, graceMs = 0): Promise<void> {
    const proxy = node.proxy;
    node.proxy = null;
    if (proxy === null || proxy.exitCode !== null) return;
    proxy.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const kill = setTimeout(() => proxy.kill('SIGKILL'), graceMs);
    await once(proxy, 'exit');
    clearTimeout(kill);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.stop(node)));
  }
}

/** Each pod asks until it has credentials (or the deadline passes). */
async function askUntilServed(ask: Ask, deadline: number): Promise<AskOutcome> {
  const wait = ask.at - Date.now();
  if (wait > 0) await sleep(wait);
  const outcome: AskOutcome = {
    node: ask.node.index,
    key: keyOf(ask.pod),
    askedAt: Date.now(),
    servedAt: null,
    failures: 0,
  };
  const path = `${LISTING}${ask.pod.role}`;
  while (Date.now() < deadline) {
    if ((await get(ask.node.port, ask.pod.ip, path)) === 200) {
      outcome.servedAt = Date.now();
      return outcome;
    }
    outcome.failures++;
    await sleep(1000);
  }
  return outcome;
}

function phaseResult(
  phase: string,
  design: string,
  started: number,
  ended: number,
  calls: StsCall[],
  outcomes: AskOutcome[],
  limitPerSecond: number,
): PhaseResult {
  const inPhase = calls.filter((c) => c.at >= started && c.at < ended);
  const seconds = Math.max(1, Math.ceil((ended - started) / 1000));
  const perSecond = new Array<number>(seconds).fill(0);
  const throttledPerSecond = new Array<number>(seconds).fill(0);
  for (const c of inPhase) {
    const bin = Math.floor((c.at - started) / 1000);
    perSecond[bin] = (perSecond[bin] as number) + 1;
    if (c.outcome === 'throttled') throttledPerSecond[bin] = (throttledPerSecond[bin] as number) + 1;
  }
  const served = outcomes.filter((o) => o.servedAt !== null);
  const stormStart = perSecond.findIndex((n) => n > limitPerSecond);
  return {
    phase,
    design,
    seconds: (ended - started) / 1000,
    calls: inPhase.length,
    throttled: inPhase.filter((c) => c.outcome === 'throttled').length,
    peakPerSecond: Math.max(0, ...perSecond),
    stormPeakAfter10s: stormStart < 0 ? null : Math.max(0, ...perSecond.slice(stormStart + 10)),
    stormRateAfter10s: stormStart < 0 ? null : peakMean(perSecond.slice(stormStart + 10), 5),
    stormThrottledAfter10s: stormStart < 0 ? null : throttledPerSecond.slice(stormStart + 10).reduce((sum, n) => sum + n, 0),
    secondsOver: perSecond.filter((n) => n > limitPerSecond).length,
    perSecond,
    meanPerSecond: inPhase.length / ((ended - started) / 1000),
    pods: outcomes.length,
    failed: outcomes.reduce((sum, o) => sum + o.failures, 0),
    waitedPast1s: outcomes.filter((o) => o.servedAt === null || o.servedAt - o.askedAt > 1000).length,
    longestWaitSeconds: served.length === outcomes.length ? Math.max(0, ...served.map((o) => (o.servedAt as number) - o.askedAt)) / 1000 : null,
    allServedSeconds: served.length === outcomes.length ? (Math.max(...served.map((o) => o.servedAt as number)) - started) / 1000 : null,
  };
}

/** The highest mean of `width` values in a row (of all of them when fewer). */
export function peakMean(values: number[], width: number): number {
  if (values.length <= width) return values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
  let sum = values.slice(0, width).reduce((a, v) => a + v, 0);
  let peak = sum;
  for (let i = width; i < values.length; i++) {
    sum += (values[i] as number) - (values[i - width] as number);
    peak = Math.max(peak, sum);
  }
  return peak / width;
}

/** When each pod asks, in each phase: drawn once, the same for every design. */
interface AskPlan {
  start: number[][];
  steady: number[][];
  replicas: number[];
  rolling: number[][];
  /** The new Deployment's replicas in the rolling restart, by replica. */
  replicasRolling: number[];
}

function askPlan(fleet: FilePod[][], random: Random, refreshMs: number): AskPlan {
  const each = (spread: number, offset = 0): number[][] => fleet.map((pods) => pods.map(() => offset + random.next() * spread));
  return {
    start: each(10_000),
    steady: each(refreshMs),
    replicas: Array.from({ length: NEW_REPLICAS }, () => 500 + random.next() * 4500),
    rolling: each(refreshMs),
    replicasRolling: Array.from({ length: NEW_REPLICAS }, () => random.next() * refreshMs),
  };
}

/** A fleet's pods, drawn from a fixed seed: the same for every design. */
function fleetPods(nodes: number): { pods: FilePod[][]; random: Random } {
  const random = new Random(18);
  return { pods: Array.from({ length: nodes }, (_, n) => nodePods(n, random)), random };
}

/** Runs the four phases on a fresh fleet for one design; with `coldOnly`, only the first (every node starting at once). */
async function runDesign(design: Design, options: FleetOptions, moto: MotoServer, limitPerSecond: number, coldOnly = false): Promise<PhaseResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'k2i-bench-fleet-'));
  const injector = await StsFaultInjector.start(
    { host: '127.0.0.1', port: moto.port },
    { lifetimeSeconds: options.lifetimeSeconds, accountLimit: { perSecond: limitPerSecond, burst: limitPerSecond } },
  );
  const { pods: drawn, random } = fleetPods(options.nodes);
  const plan = askPlan(drawn, random, options.refreshSeconds * 1000);
  const nodes: SimNode[] = [];
  for (const [n, pods] of drawn.entries()) {
    nodes.push({
      index: n,
      port: await distinctPort(nodes.map((n) => n.port)),
      accessKeyId: `AKIDNODE${String(n).padStart(4, '0')}`,
      pods,
      file: podsFile(dir, `node-${n}`, pods),
      proxy: null,
    });
  }
  const fleet = new Fleet(nodes, design, injector, dir);
  const replicas = Math.min(NEW_REPLICAS, 250 * nodes.length);
  const results: PhaseResult[] = [];
  // A node's pods, then the Deployment's replicas r = node, node + N, ... (in the rolling restart).
  const asksOf = (node: SimNode, offsets: number[][], from: number): Ask[] =>
    node.pods.flatMap((pod, k) => {
      const own = offsets[node.index] as number[];
      const offset = k < own.length ? own[k] : plan.replicasRolling[node.index + (k - own.length) * nodes.length];
      return pod.role === undefined ? [] : [{ node, pod, at: from + (offset as number) }];
    });
  const traced: Array<{ phase: string; started: number; ended: number; asks: AskOutcome[] }> = [];
  const record = (phase: string, started: number, ended: number, outcomes: AskOutcome[]): void => {
    const r = phaseResult(phase, design.name, started, ended, injector.calls, outcomes, limitPerSecond);
    results.push(r);
    traced.push({ phase, started, ended, asks: outcomes });
    process.stderr.write(
      `  fleet, ${design.name}, ${phase}: ${r.calls} STS calls (${r.throttled} throttled), peak ${r.peakPerSecond}/s, ${r.failed} failed asks, ${r.waitedPast1s} waited past 1 s, all served after ${r.allServedSeconds ?? 'never'} s\n    calls/s: ${r.perSecond.join(' ')}\n`,
    );
  };
  /** The phase's pods ask until served; it lasts at least `minimumMs`, at most the cap. */
  const measure = async (phase: string, started: number, asks: Array<Promise<AskOutcome>>, minimumMs: number): Promise<void> => {
    const outcomes = await Promise.all(asks);
    const end = Math.min(started + options.phaseCapSeconds * 1000, Math.max(started + minimumMs, Date.now()));
    if (end > Date.now()) await sleep(end - Date.now());
    record(phase, started, end, outcomes);
  };
  const capFrom = (started: number): number => started + options.phaseCapSeconds * 1000;
  try {
    // 1. Every node starts together; each pod asks within 10 s of its node.
    let started = Date.now();
    const starting: Array<Promise<AskOutcome>> = [];
    await Promise.all(
      nodes.map(async (node) => {
        await fleet.start(node);
        for (const ask of asksOf(node, plan.start, Date.now())) starting.push(askUntilServed(ask, capFrom(started)));
      }),
    );
    await measure(COLD_START, started, starting, 0);
    if (coldOnly) return results;

    // The cold start leaves its renewals bunched as its fetches were. A fleet in steady
    // state grew node by node: started again, one node at a time over a renewal period,
    // its pods asking as they start (so that fetching on demand has its keys too).
    await fleet.stopAll();
    const warmUp = Date.now();
    const warmUpEnd = warmUp + options.refreshSeconds * 1000;
    const warming: Array<Promise<AskOutcome>> = [];
    for (const node of nodes) {
      const slot = warmUp + (node.index * options.refreshSeconds * 1000) / nodes.length;
      if (slot > Date.now()) await sleep(slot - Date.now());
      await fleet.start(node);
      for (const ask of asksOf(node, plan.start, Date.now())) warming.push(askUntilServed(ask, warmUpEnd + 30_000));
    }
    await Promise.all(warming);
    await sleep(Math.max(0, warmUpEnd - Date.now()));

    // 2. The renewal steady state; each pod's SDK refreshes once.
    started = Date.now();
    const steady = nodes.flatMap((node) => asksOf(node, plan.steady, started).map((ask) => askUntilServed(ask, capFrom(started))));
    await measure('renewal steady state', started, steady, options.refreshSeconds * 1000);

    // 3. A new Deployment's replicas land across the fleet at once.
    started = Date.now();
    const landing: Array<Promise<AskOutcome>> = [];
    for (let r = 0; r < replicas; r++) {
      const node = nodes[r % nodes.length] as SimNode;
      // A block of its own: a small fleet (the smoke run) has up to 250 replicas a node.
      const ip = `127.${120 + (node.index >> 8)}.${node.index & 0xff}.${1 + Math.floor(r / nodes.length)}`;
      const pod: FilePod = { name: `checkout-${r}`, namespace: 'shop', role: 'checkout', ip, deployment: 'checkout' };
      node.pods.push(pod);
      landing.push(askUntilServed({ node, pod, at: started + (plan.replicas[r] as number) }, capFrom(started)));
    }
    for (const node of nodes) podsFile(dir, `node-${node.index}`, node.pods);
    await measure(`a Deployment of ${replicas.toLocaleString('en-US')} replicas lands`, started, landing, 0);

    // 4. A rolling restart, 10% at a time, the next batch when the last is ready.
    started = Date.now();
    const batch = Math.max(1, Math.round(nodes.length / 10));
    const rolling: Array<Promise<AskOutcome>> = [];
    const restarts = new Map<number, Restart>();
    for (let first = 0; first < nodes.length; first += batch) {
      const restarted = nodes.slice(first, first + batch);
      await Promise.all(restarted.map((node) => fleet.stop(node, 5000)));
      const stoppedAt = Date.now();
      for (const node of restarted) restarts.set(node.index, { stoppedAt, handedOver: fleet.handedOver(node), startedAt: NaN, readyAt: NaN });
      await Promise.all(
        restarted.map(async (node) => {
          const restart = restarts.get(node.index) as Restart;
          await fleet.start(node);
          restart.startedAt = Date.now();
          for (const ask of asksOf(node, plan.rolling, restart.startedAt)) rolling.push(askUntilServed(ask, capFrom(started)));
          await fleet.ready(node);
          restart.readyAt = Date.now();
        }),
      );
    }
    await measure('rolling restart, 10% at a time', started, rolling, 0);
    (results.at(-1) as PhaseResult).refill = refillOf(nodes, restarts, injector.calls);
    if (options.trace !== null)
      writeFileSync(
        `${options.trace}-${design.id}.json`,
        JSON.stringify({
          design: design.name,
          nodes: nodes.map((n) => n.accessKeyId),
          restarts: [...restarts].map(([n, r]) => [n, { ...r, handedOver: r.handedOver.size }]),
          phases: traced,
          calls: injector.calls,
        }),
      );
  } finally {
    await fleet.stopAll();
    await injector.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/**
 * The README's rule for --prefetch-window: after a rollout every key of the fleet is
 * fetched once more, spread over the window, on top of the renewals, all within 80% of
 * the account's limit (the rest for pods' own requests and new pods).
 */
export function windowFor(fleet: { nodes: number; keysPerNode: number; limitPerSecond: number; renewalSeconds: number }): number {
  const keys = fleet.nodes * fleet.keysPerNode;
  const room = 0.8 * fleet.limitPerSecond - keys / fleet.renewalSeconds;
  return room <= 0 ? Infinity : Math.ceil(keys / room);
}

/** A design's part of the model: what a restarted node does, measured, and over how long its design spreads it. */
export interface ModelRow {
  design: string;
  /** STS calls a restarted node made until it held every key again (measured). */
  refillCalls: number;
  /** Over how long a node's refill is spread, in real seconds: at once before; the window now; the pods' refresh period on demand. */
  spreadSeconds: number;
  /** Renewal calls per node per real second (measured in the steady phase, time scaled back). */
  renewalPerNode: number;
}

/**
 * The 5,000-node figures, by a model whose inputs are per-node behaviour measured in
 * the simulation. A 10% rolling restart restarts 500 nodes every `batchSeconds` (their
 * pods restarting and turning ready); the refills of every node restarted within one
 * spread overlap, and renewals go on beside them.
 */
export function fleetModel(rows: ModelRow[], limits: number[], batchSeconds = 30): string {
  const batch = MODEL_NODES / 10;
  const lines = rows.map((row) => {
    const overlapping = Math.min(MODEL_NODES, batch * Math.ceil(row.spreadSeconds / batchSeconds));
    const refill = (overlapping * row.refillCalls) / row.spreadSeconds;
    const renewals = MODEL_NODES * row.renewalPerNode;
    const total = refill + renewals;
    const against = limits.map((limit) => (total <= limit ? `under (${Math.round((100 * total) / limit)}%)` : `${(total / limit).toFixed(1)}x over`));
    return `| ${row.design} | ${row.refillCalls.toFixed(1)} | ${row.spreadSeconds.toLocaleString('en-US')} s | ${refill.toFixed(0)} + ${renewals.toFixed(0)} = ${total.toFixed(0)}/s | ${against.join(' | ')} |`;
  });
  return [
    `**Scaled to ${MODEL_NODES.toLocaleString('en-US')} nodes** by a model, not measured: a rolling restart of 10% at a time restarts ${batch} nodes every ${batchSeconds} s; each makes the refill calls a restarted node made in the simulation, spread as its design spreads them, and renewals go on at the rate measured per node in the steady phase.`,
    '',
    `| Design | refill calls per restarted node (measured) | spread over | STS calls/s during the rollout: refills + renewals | ${limits.map((l) => `against ${l}/s`).join(' | ')} |`,
    `|---|---:|---:|---:|${limits.map(() => '---|').join('')}`,
    ...lines,
  ].join('\n');
}

export async function fleetScenario(options: FleetOptions): Promise<Section> {
  const limitPerSecond = (options.accountLimit * options.nodes * options.speedup) / MODEL_NODES;
  const current = join(REPO, 'dist', 'bin', 'kube2iam.js');
  const drawn = fleetPods(options.nodes).pods;
  const keysPerNode = drawn.reduce((sum, pods) => sum + keysOf(pods), 0) / drawn.length;
  const windowSeconds = windowFor({ nodes: options.nodes, keysPerNode, limitPerSecond, renewalSeconds: options.lifetimeSeconds / 2 });
  if (!Number.isFinite(windowSeconds)) throw new Error('the simulated fleet cannot renew its keys under the account limit');
  const wanted = (id: string): boolean => options.designs.length === 0 || options.designs.includes(id);
  const designs: Design[] = [
    ...(options.before && wanted('before')
      ? [{ id: 'before', name: `before (${BEFORE_COMMIT})`, program: buildCommit(BEFORE_COMMIT), flags: [], spreadSeconds: 1, handover: false }]
      : []),
    { id: 'demand', name: 'on demand', program: current, flags: ['--prefetch-window', '24h'], spreadSeconds: null, handover: false },
    ...[false, true].map((handover) => ({
      id: handover ? 'handover' : 'window',
      name: `this design, window ${windowSeconds} s${handover ? ', handover' : ''}`,
      program: current,
      flags: ['--prefetch-window', `${windowSeconds}s`],
      // With the handover a restarted node's one call (for readiness) comes within a constant of the proxy, not scaled.
      spreadSeconds: handover ? HANDOVER_CHECK_SPREAD_MS / 1000 : windowSeconds * options.speedup,
      handover,
    })),
  ].filter((design) => wanted(design.id));
  const moto = await MotoServer.start();
  const results: PhaseResult[] = [];
  const coldStarts: PhaseResult[] = [];
  try {
    for (const design of designs) results.push(...(await runDesign(design, options, moto, limitPerSecond)));
    const compared = designs.filter((d) => d.id === 'demand' || d.id === 'window');
    // Each one's cold start of the full run counts too.
    coldStarts.push(...results.filter((r) => r.phase === COLD_START && compared.some((d) => d.name === r.design)));
    for (let n = 0; n < options.coldRepeats; n++)
      for (const design of compared) coldStarts.push(...(await runDesign(design, { ...options, trace: null }, moto, limitPerSecond, true)));
  } finally {
    await moto.stop();
  }
  const phases = [...new Set(results.map((r) => r.phase))];
  const table = phases.flatMap((phase) => [
    '',
    `**${phase}**`,
    '',
    '| Design | STS calls | throttled | peak calls/s | peak second, from 10 s into the storm | peak 5 s mean, from 10 s into the storm | throttled from 10 s into the storm | seconds over the limit | mean calls/s | pods asking | failed asks | waited past 1 s | longest wait | every pod served after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results
      .filter((r) => r.phase === phase)
      .map(
        (r) =>
          `| ${r.design} | ${r.calls} | ${r.throttled} | ${r.peakPerSecond} | ${r.stormPeakAfter10s ?? 'no storm'} | ${r.stormRateAfter10s === null ? 'no storm' : r.stormRateAfter10s.toFixed(1)} | ${r.stormThrottledAfter10s ?? 'no storm'} | ${r.secondsOver} | ${r.meanPerSecond.toFixed(1)} | ${r.pods} | ${r.failed} | ${r.waitedPast1s} | ${seconds(r.longestWaitSeconds)} | ${seconds(r.allServedSeconds)} |`,
      ),
  ]);
  const refills = results.filter((r) => r.refill !== undefined);
  const refillTable = [
    '',
    'The restarted nodes, until each held every key it held before its restart:',
    '',
    '| Design | STS calls per restarted node (throttled included) | median time | slowest node |',
    '|---|---:|---:|---:|',
    ...refills.map((r) => {
      const refill = r.refill as Refill;
      return `| ${r.design} | ${refill.callsPerNode.toFixed(1)} | ${seconds(refill.medianSeconds)} | ${seconds(refill.maxSeconds)} |`;
    }),
  ];
  const refreshSeconds = (options.lifetimeSeconds / 2) * options.speedup;
  const model = fleetModel(
    designs.map((design) => {
      const of = (phase: string): PhaseResult | undefined => results.find((r) => r.design === design.name && r.phase.startsWith(phase));
      const steady = of('renewal');
      return {
        design: design.name,
        refillCalls: of('rolling')?.refill?.callsPerNode ?? NaN,
        spreadSeconds: design.spreadSeconds ?? refreshSeconds,
        renewalPerNode: steady === undefined ? NaN : steady.calls / options.nodes / (steady.seconds * options.speedup),
      };
    }),
    [100, 600],
  );
  const repeated = coldStartTable(coldStarts);
  const markdown = [
    `${options.nodes} proxy processes (one per simulated node, ${keysPerNode.toFixed(1)} credential keys per node on average, 20-110 pods each), one STS (moto) behind an account limit of ${limitPerSecond.toFixed(1)} calls/s: ${options.accountLimit}/s for ${MODEL_NODES.toLocaleString('en-US')} nodes scaled to ${options.nodes}, and time run ${options.speedup} times faster (a ${options.lifetimeSeconds / 2} s renewal period stands for 15 minutes, the window of ${windowSeconds} s for ${((windowSeconds * options.speedup) / 60).toFixed(1)} minutes).`,
    '',
    `Calls per second are counted at the account limit (throttled calls included) in 1 s bins. A storm starts in the first second over the limit (${limitPerSecond.toFixed(1)} calls/s); from 10 s into it the table shows the busiest second and the busiest 5 s (their mean). A failed ask is a pod request answered without credentials or not within 1 s; the pod asks again 1 s later.`,
    ...table,
    ...refillTable,
    '',
    model,
    ...repeated,
  ].join('\n');
  return {
    id: 'fleet',
    title: 'Fleet: STS load of a DaemonSet rollout against one account limit',
    markdown,
    raw: { options, limitPerSecond, results, coldStarts },
  };
}

/** A time in a table: null or NaN when the run never reached it. */
function seconds(value: number | null): string {
  return value === null || Number.isNaN(value) ? 'not in the run' : `${value.toFixed(1)} s`;
}

/** The repeated cold starts: each design's runs, their median and range. */
function coldStartTable(runs: PhaseResult[]): string[] {
  const designs = [...new Set(runs.map((r) => r.design))];
  const each = Math.min(...designs.map((design) => runs.filter((r) => r.design === design).length));
  if (each < 2) return [];
  const stats = (values: number[]): string => {
    const sorted = [...values].sort((a, b) => a - b);
    const median = ((sorted[(sorted.length - 1) >> 1] as number) + (sorted[sorted.length >> 1] as number)) / 2;
    return `${median.toFixed(1)} (${(sorted[0] as number).toFixed(1)}–${(sorted.at(-1) as number).toFixed(1)})`;
  };
  return [
    '',
    `**Every node starting at once, ${each} runs each** (the full run's, then on demand and this design alternating, each on a fresh fleet): one run's order of these two is left to chance, so the target (every pod served no later than on demand) is read off the medians (range in brackets).`,
    '',
    '| Design | every pod served after, s | longest wait, s | peak 5 s mean from 10 s into the storm, calls/s | throttled from 10 s into the storm | STS calls | pods that waited past 1 s |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...designs.map((design) => {
      const of = runs.filter((r) => r.design === design);
      return `| ${design} | ${stats(of.map((r) => r.allServedSeconds ?? Number.NaN))} | ${stats(of.map((r) => r.longestWaitSeconds ?? Number.NaN))} | ${stats(of.map((r) => r.stormRateAfter10s ?? 0))} | ${stats(of.map((r) => r.stormThrottledAfter10s ?? 0))} | ${stats(of.map((r) => r.calls))} | ${stats(of.map((r) => r.waitedPast1s))} |`;
    }),
  ];
}
