// moto_server as a real STS (and, in network namespaces, as the upstream metadata
// service). moto is a preinstalled Python package that cannot be installed here, so a
// missing moto is an error with a clear message, never a silent skip.

import { spawnSync } from 'node:child_process';
import { freePort } from './ports.js';
import { run, TestProcess } from './processes.js';
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
    throw new Error(
      'moto_server is not installed (Python package moto 5). It is part of the machine image and cannot be installed from here; the STS tests need it.',
    );
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

  /**
   * With IAM enforcement (start it with `initialNoAuthActionCount: 3`): the three calls
   * it lets through create the node's IAM user, allowed sts:AssumeRole on `resource` only,
   * and its access key, which the proxy then signs with; other roles get AccessDenied.
   */
  async nodeUser(resource: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
    const aws = (args: string[]): Promise<string> =>
      run('aws', ['--endpoint-url', this.endpoint, '--region', 'us-east-1', '--output', 'json', ...args], {
        env: { ...process.env, AWS_ACCESS_KEY_ID: 'bootstrap', AWS_SECRET_ACCESS_KEY: 'bootstrap', AWS_EC2_METADATA_DISABLED: 'true' },
      });
    await aws(['iam', 'create-user', '--user-name', 'node']);
    const key = (JSON.parse(await aws(['iam', 'create-access-key', '--user-name', 'node'])) as { AccessKey: { AccessKeyId: string; SecretAccessKey: string } })
      .AccessKey;
    const policy = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: resource }] };
    await aws(['iam', 'put-user-policy', '--user-name', 'node', '--policy-name', 'assume', '--policy-document', JSON.stringify(policy)]);
    return { accessKeyId: key.AccessKeyId, secretAccessKey: key.SecretAccessKey };
  }
}
