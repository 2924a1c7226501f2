// Shared pieces of the benchmark scenarios: servers in child processes pinned to one
// core, wrk pinned to the other, on loopback only.

import { freePort } from '../test/harness/ports.js';

/** The flags every benchmark runs the proxy with against a cluster: a base ARN, STS at 100 calls/s, and no metadata service (a closed loopback port). */
export const CLUSTER_PROXY_FLAGS = ['--base-role-arn', 'arn:aws:iam::123456789012:role/', '--sts-rate-limit', '100', '--metadata-addr', '127.0.0.1:9'];
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Cores for the server under test and the load generator, when the machine has two. */
const PIN = availableParallelism() >= 2 && spawnSync('taskset', ['-V']).status === 0;
const SERVER_CPU = '0';
const LOAD_CPU = '1';

export function pinned(cpu: string, command: string, args: string[]): [string, string[]] {
  return PIN ? ['taskset', ['-c', cpu, command, ...args]] : [command, args];
}

/** The command prefix that runs a program beside the load generator, off the server's core. */
export function onLoadCore(): string[] {
  return PIN ? ['taskset', '-c', LOAD_CPU] : [];
}

/** Runs `work` with this process moved to the load generator's core, so it never takes the server's. */
export async function fromLoadCore<T>(work: () => Promise<T>): Promise<T> {
  if (!PIN) return work();
  spawnSync('taskset', ['-a', '-p', '-c', LOAD_CPU, String(process.pid)]);
  try {
    return await work();
  } finally {
    spawnSync('taskset', ['-a', '-p', '-c', `${SERVER_CPU},${LOAD_CPU}`, String(process.pid)]);
  }
}

/** CPU time (user + system) process `pid` has used so far, in ms, from /proc. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat; after the ") " split they are at 11 and 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

export interface ServerOptions {
  /** Run inside this network namespace. */
  netns?: string;
  env?: NodeJS.ProcessEnv;
  port?: number;
  /** What the server prints once it serves (default /ready/). */
  ready?: RegExp;
  /** The server logs every request: its output is dropped and readiness is a TCP connect. */
  discardOutput?: boolean;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export class BenchServer {
  readonly name: string;
  readonly port: number;
  private readonly child: ChildProcess;
  /** What the server has printed so far ('' when its output is discarded). */
  readonly log: () => string;

  private constructor(name: string, port: number, child: ChildProcess, log: () => string) {
    this.name = name;
    this.port = port;
    this.child = child;
    this.log = log;
  }

  /**
   * Starts `node script ...args PORT` on the server core and waits for `ready` in its
   * output; inside the network namespace `netns` when given.
   */
  static start(name: string, script: string, args: string[], options: ServerOptions = {}): Promise<BenchServer> {
    return BenchServer.run(name, process.execPath, [script, ...args], options);
  }

  /**
   * As `start`, for any program: `command ...args PORT`. Its output goes to a log file,
   * never a pipe: the runner blocks while wrk runs, and a server that writes to a full
   * pipe would stall. With `discardOutput` (a server that logs every request) it goes to
   * /dev/null and readiness is a TCP connect.
   */
  static async run(name: string, program: string, args: string[], options: ServerOptions = {}): Promise<BenchServer> {
    const port = options.port ?? (await freePort());
    const [serverCommand, serverArgs] = pinned(SERVER_CPU, program, [...args, String(port)]);
    const [command, argv] = options.netns === undefined ? [serverCommand, serverArgs] : ['ip', ['netns', 'exec', options.netns, serverCommand, ...serverArgs]];
    const logFile = join(mkdtempSync(join(tmpdir(), 'k2i-bench-server-')), 'output.log');
    const fd = options.discardOutput === true ? 'ignore' : openSync(logFile, 'a');
    const child = spawn(command, argv, { stdio: ['ignore', fd, fd], env: options.env ?? process.env });
    if (typeof fd === 'number') closeSync(fd);
    const log = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
    const ready = options.discardOutput === true ? () => connects(port) : async () => (options.ready ?? /ready/).test(log());
    const deadline = Date.now() + 60_000;
    while (!(await ready())) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log().slice(-2000)}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${name} not ready in 60 s:\n${log().slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return new BenchServer(name, port, child, log);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** CPU time (user + system) the server has used so far, in ms, from /proc. */
  cpuMs(): number {
    return cpuMs(this.pid);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGKILL');
    await once(this.child, 'exit');
  }
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** wrk's latency distribution: ms at the 50th, 75th, 90th and 99th percentile. */
  percentilesMs: Record<string, number>;
  errors: number;
}

export const WRK_PERCENTILES = ['50', '75', '90', '99'];

/** The value at quantile `q` (0..1) of ascending `sorted` values. */
export function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function toMs(value: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(value.trim());
  if (m === null) throw new Error(`cannot read wrk latency ${value}`);
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

/**
 * wrk with keep-alive connections for `seconds`: against a loopback URL, or from inside
 * a network namespace the benchmark created (`netns`), where any address is its own.
 */
export function wrk(url: string, connections: number, seconds: number, options: { netns?: string; headers?: string[] } = {}): LoadResult {
  const netns = options.netns;
  if (netns === undefined && !/^http:\/\/127\.0\.0\.1:\d+\//.test(url)) throw new Error(`load tests target loopback only: ${url}`);
  const headers = (options.headers ?? []).flatMap((header) => ['-H', header]);
  const [loadCommand, loadArgs] = pinned(LOAD_CPU, 'wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...headers, url]);
  const [command, args] = netns === undefined ? [loadCommand, loadArgs] : ['ip', ['netns', 'exec', netns, loadCommand, ...loadArgs]];
  const run = spawnSync(command, args, { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr || run.error?.message}`);
  const out = run.stdout;
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const latency = WRK_PERCENTILES.map((p) => new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)?.[1]);
  if (rps === null || latency.includes(undefined)) throw new Error(`cannot read wrk output:\n${out}`);
  const percentilesMs = Object.fromEntries(WRK_PERCENTILES.map((p, n) => [p, toMs(latency[n] as string)]));
  const errors = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrorCount = socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0);
  const requests = /(\d+) requests in/.exec(out);
  return {
    requests: Number(requests?.[1] ?? 0),
    requestsPerSecond: Number(rps[1]),
    p50Ms: percentilesMs['50'] as number,
    p99Ms: percentilesMs['99'] as number,
    percentilesMs,
    errors: Number(errors?.[1] ?? 0) + socketErrorCount,
  };
}

export type MeasuredLoad = LoadResult & { cpuUsPerRequest: number };

/** The medians of several runs of one server, and their errors summed. */
export function summarize(results: readonly MeasuredLoad[]): Omit<MeasuredLoad, 'requests'> {
  return {
    percentilesMs: Object.fromEntries(WRK_PERCENTILES.map((p) => [p, median(results.map((r) => r.percentilesMs[p] as number))])),
    requestsPerSecond: median(results.map((r) => r.requestsPerSecond)),
    p50Ms: median(results.map((r) => r.p50Ms)),
    p99Ms: median(results.map((r) => r.p99Ms)),
    cpuUsPerRequest: median(results.map((r) => r.cpuUsPerRequest)),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
  };
}

/** One server under load in an alternating comparison. */
export interface Contender {
  name: string;
  server: BenchServer;
  url: string;
  /** wrk runs inside this network namespace. */
  netns?: string;
}

/**
 * Loads each contender in turn, `rounds` times, rotating the order each round so no one
 * always runs first or last; a 2 s warm-up first (JIT). Results by contender name.
 */
export function alternate(
  label: string,
  contenders: readonly Contender[],
  options: { rounds: number; seconds: number; connections: number; headers?: string[] },
): Map<string, MeasuredLoad[]> {
  const runs = new Map<string, MeasuredLoad[]>(contenders.map((c) => [c.name, []]));
  for (const c of contenders) wrk(c.url, options.connections, Math.min(2, options.seconds), { netns: c.netns, headers: options.headers });
  for (let round = 0; round < options.rounds; round++) {
    for (let n = 0; n < contenders.length; n++) {
      const c = contenders[(n + round) % contenders.length] as Contender;
      const cpuBefore = c.server.cpuMs();
      const load = wrk(c.url, options.connections, options.seconds, { netns: c.netns, headers: options.headers });
      const result = { ...load, cpuUsPerRequest: ((c.server.cpuMs() - cpuBefore) * 1000) / Math.max(1, load.requests) };
      runs.get(c.name)?.push(result);
      process.stderr.write(
        `  ${label} round ${round + 1} ${c.name}: ${result.requestsPerSecond.toFixed(0)} req/s, p99 ${result.p99Ms} ms, ${result.cpuUsPerRequest.toFixed(2)} us CPU/request, ${result.errors} errors\n`,
      );
    }
  }
  return runs;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** One scenario's part of RESULTS.md and of the raw JSON. */
export interface Section {
  id: string;
  title: string;
  markdown: string;
  raw: unknown;
}
