// Reliability harness: the built program in a child process (so its RSS and open file
// descriptors can be read from /proc), legitimate pods that keep asking for their own
// credentials as an SDK would, and a named fake metadata service that can misbehave.
// Loopback only: the program's --metadata-addr is always a loopback address.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../harness/ports.js';
import { shippedProgram } from '../harness/environment.js';
import { footprint, TestProcess } from '../harness/processes.js';
import { get } from '../harness/pod-client.js';

export const LISTING = '/latest/meta-data/iam/security-credentials/';

export interface Pod {
  name: string;
  ip: string;
  role: string;
}

export interface Program {
  proc: TestProcess;
  port: number;
  pid: number;
  /** The pods file the program runs on and reloads when it changes. */
  podsFile: string;
}

/** The pods file's text: the pods, in namespace `apps`, and any other items (namespaces, more pods). */
export function podsFileText(pods: Pod[], items: object[] = []): string {
  return JSON.stringify({
    kind: 'List',
    items: [
      ...pods.map((pod) => ({
        kind: 'Pod',
        metadata: { name: pod.name, namespace: 'apps', annotations: { 'iam.amazonaws.com/role': pod.role } },
        status: { phase: 'Running', podIP: pod.ip },
      })),
      ...items,
    ],
  });
}

/** The program's command, arguments and environment: on `port`, the pods file, STS at `stsEndpoint`, the metadata service at `metadataAddr`. */
export function programCommand(
  port: number,
  podsFile: string,
  stsEndpoint: string,
  metadataAddr: string,
  extra: string[] = [],
): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const flags = [
    '--app-port',
    String(port),
    '--pods-file',
    podsFile,
    '--base-role-arn',
    'arn:aws:iam::123456789012:role/',
    '--metadata-addr',
    metadataAddr,
    '--stats-interval',
    '0',
    '--log-level',
    'error',
    ...extra,
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_STS: stsEndpoint,
    AWS_ACCESS_KEY_ID: 'AKIDNODE',
    AWS_SECRET_ACCESS_KEY: 'node',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const [command, args] = shippedProgram(flags);
  return { command, args, env };
}

/** Starts dist/bin/kube2iam.js on loopback with these pods, STS at `stsEndpoint`, the metadata service at `metadataAddr`. */
export async function startProgram(pods: Pod[], stsEndpoint: string, metadataAddr: string, extra: string[] = [], items: object[] = []): Promise<Program> {
  const dir = mkdtempSync(join(tmpdir(), 'k2i-reliability-'));
  const podsFile = join(dir, 'pods.json');
  writeFileSync(podsFile, podsFileText(pods, items));
  const port = await freePort();
  const { command, args, env } = programCommand(port, podsFile, stsEndpoint, metadataAddr, extra);
  const first = pods[0] as Pod;
  const proc = await TestProcess.start(command, args, {
    name: 'kube2iam',
    env,
    // Ready once the first pod's credentials are served: pods listed, STS answered.
    ready: async () => (await credentialsFor(port, first, 1000)).ok,
  });
  return { proc, port, pid: proc.pid, podsFile };
}

export interface PodAnswer {
  ok: boolean;
  ms: number;
  problem: string;
  accessKeyId: string;
}

/**
 * One credential fetch as botocore makes it: the listing, then the role, each on a new
 * connection from the pod's address, the whole within `timeoutMs`.
 */
export async function credentialsFor(port: number, pod: Pod, timeoutMs: number): Promise<PodAnswer> {
  const started = performance.now();
  const fail = (problem: string): PodAnswer => ({ ok: false, ms: performance.now() - started, problem, accessKeyId: '' });
  const listing = await get(port, pod.ip, LISTING, timeoutMs);
  if (listing.status !== 200 || listing.body !== pod.role) return fail(`listing: ${listing.status} ${(listing.error ?? listing.body).slice(0, 80)}`);
  const left = timeoutMs - (performance.now() - started);
  const document = await get(port, pod.ip, LISTING + pod.role, Math.max(1, left));
  if (document.status !== 200) return fail(`credentials: ${document.status} ${(document.error ?? document.body).slice(0, 80)}`);
  let accessKeyId = '';
  try {
    accessKeyId = (JSON.parse(document.body) as { AccessKeyId: string }).AccessKeyId;
  } catch {
    return fail(`credentials: not JSON: ${document.body.slice(0, 80)}`);
  }
  const ms = performance.now() - started;
  return ms > timeoutMs ? fail(`took ${ms.toFixed(0)} ms`) : { ok: true, ms, problem: '', accessKeyId };
}

/** Legitimate pods asking for their own credentials in a loop, counted. */
export class LegitPods {
  requests = 0;
  failures: string[] = [];
  maxMs = 0;
  private running = false;
  /** While paused the pods do not ask (for an attack whose point is that nobody is served). */
  private paused = false;
  private inFlight = 0;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly port: number,
    private readonly pods: Pod[],
    /** Each pod's AccessKeyId, so an answer with another pod's credentials is caught. */
    private readonly keys: Map<string, string>,
    private readonly timeoutMs = 1000,
  ) {}

  start(): void {
    this.requests = 0;
    this.failures = [];
    this.maxMs = 0;
    this.running = true;
    this.paused = false;
    this.loops = this.pods.map((pod) => this.loop(pod));
  }

  /** Resolves once no fetch is in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    while (this.inFlight > 0) await sleep(5);
  }

  resume(): void {
    this.paused = false;
  }

  async stop(): Promise<{ requests: number; failures: string[]; maxMs: number }> {
    this.running = false;
    await Promise.all(this.loops);
    return { requests: this.requests, failures: this.failures, maxMs: Math.round(this.maxMs) };
  }

  private async loop(pod: Pod): Promise<void> {
    while (this.running) {
      if (this.paused) {
        await sleep(25);
        continue;
      }
      this.inFlight++;
      const answer = await credentialsFor(this.port, pod, this.timeoutMs);
      this.inFlight--;
      this.requests++;
      this.maxMs = Math.max(this.maxMs, answer.ms);
      if (!answer.ok) this.failures.push(`${pod.ip}: ${answer.problem}`);
      else if (answer.accessKeyId !== this.keys.get(pod.ip)) this.failures.push(`${pod.ip}: got AccessKeyId ${answer.accessKeyId}, not its own`);
      await sleep(25); // a steady trickle: the attack, not the pods, should load the machine
    }
  }
}

export interface ProcessFigures {
  rssMb: number;
  fds: number;
}

/** RSS (MB) and open file descriptors of a running process. */
export function figures(pid: number): ProcessFigures {
  const { rssKb, fds } = footprint(pid);
  return { rssMb: Math.round(rssKb / 102.4) / 10, fds };
}

/** Polls until the process holds at most `fds` descriptors, or `timeoutMs` passes; returns the last figures. */
export async function settle(pid: number, fds: number, timeoutMs: number): Promise<ProcessFigures> {
  const deadline = Date.now() + timeoutMs;
  let now = figures(pid);
  while (now.fds > fds && Date.now() < deadline) {
    await sleep(100);
    now = figures(pid);
  }
  return now;
}

/** How the fake metadata service answers a path. */
export type Misbehaviour = (socket: Socket) => void;

/**
 * A metadata service stand-in on a raw socket, so it can send what no HTTP server would:
 * by path, garbage, a truncated or endless body, or nothing. Other paths get a small
 * well-formed answer. Every answer closes its connection (the pool opens another).
 */
export class FakeMetadataService {
  readonly sockets = new Set<Socket>();
  /** Requests received, by path. */
  readonly requests = new Map<string, number>();
  private readonly server: Server;
  port = 0;

  constructor(private readonly routes: Record<string, Misbehaviour>) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      let head = '';
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        socket.resume(); // a body, if any, is read and ignored
        const path = (head.split(' ')[1] ?? '').split('?')[0] ?? '';
        this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
        const route = this.routes[path];
        if (route !== undefined) route(socket);
        else {
          const body = path === '/latest/api/token' ? 'fake-token' : `fake ${path}`;
          socket.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        }
      };
      socket.on('data', onData);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
    return `127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
