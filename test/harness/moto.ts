// moto_server as a real STS (and, in network namespaces, as the upstream metadata
// service). moto is a preinstalled Python package that cannot be installed here, so a
// missing moto is an error with a clear message, never a silent skip.

import { spawnSync } from 'node:child_process';
import { freePort } from './ports.js';
import { TestProcess } from './processes.js';
import { httpOk } from './kubernetes.js';

export interface MotoOptions {
  host?: string;
  port?: number;
  /** moto's IAM enforcement: after this many unauthenticated calls, requests need valid IAM credentials. */
  initialNoAuthActionCount?: number;
  /** Runs moto through this command prefix, e.g. `ip netns exec <ns>`. */
  prefix?: string[];
}

export function requireMoto(): void {
  const probe = spawnSync('moto_server', ['--help'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error('moto_server is not installed (Python package moto 5). It is part of the machine image and cannot be installed from here; the STS tests need it.');
  }
}

export class MotoServer {
  readonly host: string;
  readonly port: number;
  private readonly options: MotoOptions;
  private proc: TestProcess | null = null;

  private constructor(host: string, port: number, options: MotoOptions) {
    this.host = host;
    this.port = port;
    this.options = options;
  }

  static async start(options: MotoOptions = {}): Promise<MotoServer> {
    requireMoto();
    const host = options.host ?? '127.0.0.1';
    const server = new MotoServer(host, options.port ?? (await freePort(host)), options);
    await server.start();
    return server;
  }

  get endpoint(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** (Re)starts moto on the same address, e.g. after `stop()` in a fault test. */
  async start(): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (this.options.initialNoAuthActionCount !== undefined) env.INITIAL_NO_AUTH_ACTION_COUNT = String(this.options.initialNoAuthActionCount);
    const prefix = this.options.prefix ?? [];
    const argv: string[] = [...prefix, 'moto_server', '-H', this.host, '-p', String(this.port)];
    const [command, ...args] = argv as [string, ...string[]];
    const ready = prefix.length === 0 ? () => httpOk(`${this.endpoint}/moto-api/`) : () => this.readyInside(prefix);
    this.proc = await TestProcess.start(command, args, { name: 'moto', env, ready });
  }

  private async readyInside(prefix: string[]): Promise<boolean> {
    const argv: string[] = [...prefix, 'curl', '-sf', '-o', '/dev/null', '--max-time', '1', `${this.endpoint}/moto-api/`];
    const [command, ...args] = argv as [string, ...string[]];
    return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
  }

  /** moto's output so far: werkzeug logs one line per request it served (method, path, status). */
  log(): string {
    return this.proc?.log() ?? '';
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.proc = null;
  }
}
