// Child processes for tests: started with their output in a log file, waited for until
// ready, and always stopped, by the test's teardown or, if the test process dies, by
// its exit hook.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readdirSync, readFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface StartOptions {
  name: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolves true once the process serves; polled until `readyTimeoutMs`. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
}

export class TestProcess {
  readonly name: string;
  readonly logFile: string;
  private child: ChildProcess;
  private exited: Promise<number | null>;

  private constructor(name: string, child: ChildProcess, logFile: string) {
    this.name = name;
    this.child = child;
    this.logFile = logFile;
    running.add(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        running.delete(child);
        resolve(code ?? (signal === null ? null : -1));
      });
    });
  }

  static async start(command: string, args: string[], options: StartOptions): Promise<TestProcess> {
    const dir = mkdtempSync(join(tmpdir(), `k2i-${options.name}-`));
    const logFile = join(dir, 'output.log');
    const fd = openSync(logFile, 'a');
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const proc = new TestProcess(options.name, child, logFile);
    await proc.waitReady(options.ready, options.readyTimeoutMs ?? 30_000);
    return proc;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  private async waitReady(ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void this.exited.then((code) => (exitCode = code));
    while (Date.now() < deadline) {
      if (exitCode !== undefined || !this.running) {
        throw new Error(`${this.name} exited (${exitCode}) before it was ready:\n${this.log().slice(-3000)}`);
      }
      if (await ready().catch(() => false)) return;
      await sleep(50);
    }
    await this.stop();
    throw new Error(`${this.name} not ready within ${timeoutMs} ms:\n${this.log().slice(-3000)}`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code. */
  async stop(graceMs = 3_000): Promise<number | null> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      const code = await this.exited;
      clearTimeout(timer);
      return code;
    }
    return this.exited;
  }

  /** SIGKILL: a crash, for fault tests. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and reports its exit code and output, failing or not. */
export function execute(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (child.stdin !== null) {
      child.stdin.on('error', () => {}); // a command that exits without reading its input
      child.stdin.end(options.input);
    }
  });
}

/** Runs a command to completion; rejects with its output when it fails. */
export async function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<string> {
  const { code, stdout, stderr } = await execute(command, args, options);
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim() || stdout.trim()}`);
  return stdout;
}

/**
 * A running process's resident memory (VmRSS, kB; `fileKb` of it mapped from files, the
 * Node binary's pages mostly: shared and reclaimable) and open file descriptors, from /proc.
 */
export function footprint(pid: number): { rssKb: number; fileKb: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), fileKb: kb('RssFile'), fds: readdirSync(`/proc/${pid}/fd`).length };
}
