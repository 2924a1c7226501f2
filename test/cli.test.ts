// The built program: flags, errors, serving, and shutdown on a signal.

import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { FLAGS } from '../lib/config.js';
import { VERSION } from '../lib/version.js';
import { fatalMessage } from './harness/log-lines.js';
import { CLOSED_ADDRESS, freePort } from './harness/ports.js';
import { httpOk } from './harness/kubernetes.js';
import { TestProcess } from './harness/processes.js';

const PROGRAM = new URL('../dist/bin/kube2iam.js', import.meta.url).pathname;
const EXAMPLE_PODS = new URL('../manifests/examples/pods.yaml', import.meta.url).pathname;
/** The example pods, a base ARN, and no metadata service (CLOSED_ADDRESS). */
const EXAMPLE_FLAGS = ['--pods-file', EXAMPLE_PODS, '--base-role-arn', 'arn:aws:iam::123456789012:role/', '--metadata-addr', CLOSED_ADDRESS];

async function runProgram(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [PROGRAM, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000); // a hang fails the test, not the run
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

t.test("--version prints package.json's version as kube2iam prints its own", async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  t.equal(VERSION, pkg.version);
  const { code, stdout } = await runProgram(['--version']);
  t.equal(code, 0);
  // Outside an image there is no build record: commit and date are unknown.
  t.equal(stdout.trim(), `Version: ${pkg.version} - Commit: unknown - Date: unknown`);
});

t.test('--help lists every flag, says which are kept only for compatibility, and exits 0', async (t) => {
  const { code, stdout } = await runProgram(['--help']);
  t.equal(code, 0);
  for (const flag of Object.keys(FLAGS)) t.match(stdout, new RegExp(`--${flag}\\b`), flag);
  for (const flag of ['cache-resync-period', 'backoff-max-interval', 'metrics-port', 'use-regional-sts-endpoint']) {
    t.match(stdout, new RegExp(`--${flag}[^\\n]*\\n?[^-]*Kept for kube2iam compatibility`), `${flag} is marked`);
  }
  t.match(stdout, /KUBE2IAM_APP_PORT/, 'the environment fallbacks are explained');
});

for (const [args, pattern] of [
  [['--no-such-flag'], /^kube2iam: unknown flag --no-such-flag$/m],
  [['--app-port', 'eighty'], /--app-port must be a port number/],
  [['--app-port', '70000'], /--app-port must be a port number/],
  [['--log-level', 'loud'], /--log-level must be one of/],
  [['stray'], /Unknown argument|unexpected argument/],
  [['--namespace-restriction-format', 'fuzzy'], /--namespace-restriction-format must be glob or regexp/],
  [['--api-server', 'https://127.0.0.1:1'], /--api-server and --api-token go together/],
  [['--iam-role-session-ttl', '1m'], /--iam-role-session-ttl must be between/],
  [['--iptables'], /--iptables needs --host-ip/],
  [['--auto-discover-base-arn', '--base-role-arn', 'arn:aws:iam::1:role/'], /exclude each other/],
  [['--allow-route-regexp', '('], /--allow-route-regexp is not a valid regexp/],
  [['--metadata-addr', 'http://x/'], /--metadata-addr must be host or host:port/],
] as const) {
  t.test(`bad flags ${args.join(' ')}: one line on stderr, exit 2`, async (t) => {
    const { code, stderr } = await runProgram([...args]);
    t.equal(code, 2);
    t.match(stderr, pattern);
    t.equal(stderr.trim().split('\n').length, 1, 'one line');
  });
}

t.test('serves /healthz and exits 0 on SIGTERM', async (t) => {
  const port = await freePort();
  const proc = await TestProcess.start(process.execPath, [PROGRAM, '--app-port', String(port), '--log-format', 'json', ...EXAMPLE_FLAGS], {
    name: 'kube2iam',
    ready: () => httpOk(`http://127.0.0.1:${port}/healthz`),
  });
  t.teardown(() => proc.kill());
  const started = Date.now();
  t.equal(await proc.stop(), 0, 'exit code 0');
  t.ok(Date.now() - started < 3000, 'within the bound');
  t.match(proc.log(), /"msg":"listening on port \d+"/);
});

t.test('without a cluster, a kubeconfig or a pods file: one fatal line saying so, exit 1', async (t) => {
  const { code, stderr } = await runProgram(['--app-port', String(await freePort()), '--metadata-addr', CLOSED_ADDRESS]);
  t.equal(code, 1);
  t.match(fatalMessage(stderr), /^cannot start: no Kubernetes API: .*--pods-file/);
});

t.test('auto-discovery without a metadata service: one fatal line naming it, exit 1', async (t) => {
  const { code, stderr } = await runProgram([
    '--pods-file',
    EXAMPLE_PODS,
    '--auto-discover-base-arn',
    '--metadata-addr',
    CLOSED_ADDRESS,
    '--app-port',
    String(await freePort()),
  ]);
  t.equal(code, 1);
  t.match(fatalMessage(stderr), /^cannot start: metadata service http:\/\/127\.0\.0\.1:\d+\/latest\/meta-data\/iam\/info: /);
});

t.test('a pods file that does not exist: one fatal line, exit 1', async (t) => {
  const { code, stderr } = await runProgram(['--pods-file', '/nonexistent/pods.yaml', '--metadata-addr', CLOSED_ADDRESS]);
  t.equal(code, 1);
  t.match(fatalMessage(stderr), /ENOENT|no such file/);
});

t.test('the container image’s NODE_OPTIONS are accepted by this Node', async (t) => {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
  const options = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1];
  t.ok(options, 'the Dockerfile sets NODE_OPTIONS');
  // `env -i`: the container's environment. tap adds its own loaders to NODE_OPTIONS of
  // every child it sees spawned, which would not be the image's options.
  const child = spawn('env', ['-i', `PATH=${process.env.PATH ?? ''}`, `NODE_OPTIONS=${options ?? ''}`, process.execPath, PROGRAM, '--version'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  t.equal(code, 0, `exit ${code} ${signal ?? ''} ${stderr.slice(-1500)}`);
});

t.test('a bad flag value from the environment: one line, exit 2', async (t) => {
  const child = spawn(process.execPath, [PROGRAM], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KUBE2IAM_APP_PORT: 'eighty' } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 2);
  t.match(stderr, /^kube2iam: --app-port must be a port number/);
});

t.test('SIGTERM finishes the request in flight, then exits 0', async (t) => {
  const port = await freePort();
  const proc = await TestProcess.start(process.execPath, [PROGRAM, '--app-port', String(port), ...EXAMPLE_FLAGS, '--backoff-max-elapsed-time', '1500ms'], {
    name: 'kube2iam',
    ready: () => httpOk(`http://127.0.0.1:${port}/healthz`),
  });
  t.teardown(() => proc.kill());
  // A caller the index does not know waits up to 1.5 s for its pod: in flight when the signal comes.
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/latest/meta-data/iam/security-credentials/', localAddress: '127.0.0.99' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const started = Date.now();
  const exited = proc.stop(15_000);
  t.same(await answer, { status: 404, body: 'no pod with IP 127.0.0.99\n' }, 'the in-flight request got its answer');
  t.equal(await exited, 0, 'exit code 0');
  t.ok(Date.now() - started < 5000, `stopped in ${Date.now() - started} ms`);
  t.notOk(await httpOk(`http://127.0.0.1:${port}/healthz`), 'no longer listening');
});
