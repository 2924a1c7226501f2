// Every failure an operator meets, driven with the real parts, and the log line that
// explains it, read as a log pipeline reads JSON lines: STS down, AccessDenied from
// IAM-enforcing STS, throttling, no region, a namespace allow-list that does not parse,
// a role a namespace denies, the API server's watch cut, and the metadata service gone.
// Then the request log at debug, the warning for a kube2iam flag that does nothing here,
// /readyz, and the README's troubleshooting lines checked against the lines seen here.

import t, { type Test } from 'tap';
import { configOf } from '../harness/config.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from '../../lib/app.js';
import { parseArgs } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { ADMIN_TOKEN, KubernetesControlPlane } from '../harness/kubernetes.js';
import { podsFile, type FilePod } from '../harness/pods-file.js';
import { LogCapture, parseLogfmt, textRecord, type LogRecord } from '../harness/log-lines.js';
import { MotoServer } from '../harness/moto.js';
import { get } from '../harness/pod-client.js';
import { CLOSED_ADDRESS, freePort } from '../harness/ports.js';
import { FaultRelay } from '../harness/relay.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { eventually } from '../harness/wait.js';

const ACCOUNT = '123456789012';
const BASE = `arn:aws:iam::${ACCOUNT}:role/`;
const dir = mkdtempSync(join(tmpdir(), 'k2i-failure-logs-'));
/** Every record logged in this file, for the README check at the end. */
const seen: LogRecord[] = [];

const moto = await MotoServer.start();
t.teardown(() => moto.stop());

/** The environment an STS-using test sets, restored after it. */
function withEnv(t: Test, values: Record<string, string | undefined>): void {
  const saved: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(values)) {
    saved[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  t.teardown(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
}

const NODE_KEYS = { AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: undefined, AWS_ACCESS_KEY_ID: 'AKIDNODE', AWS_SECRET_ACCESS_KEY: 'node' };

async function started(t: Test, flags: string[], level: 'info' | 'debug' = 'info', format: 'json' | 'text' = 'json'): Promise<{ app: App; log: LogCapture }> {
  const parsed = await parseArgs(['--app-port', String(await freePort()), '--base-role-arn', BASE, '--stats-interval', '1s', '--log-format', format, ...flags]);
  const log = new LogCapture();
  const app = await startApp(configOf(parsed), createLogger({ logLevel: level, logFormat: format }, log), {
    host: '127.0.0.1',
    statsOut: new LogCapture(),
    logSink: log,
  });
  t.teardown(async () => {
    await app.close();
    if (format === 'json') seen.push(...log.records());
  });
  return { app, log };
}

async function line(log: LogCapture, msg: string, match: (record: LogRecord) => boolean = () => true, timeoutMs = 15_000): Promise<LogRecord> {
  let found: LogRecord | undefined;
  const seenLine = (): boolean => {
    found = log.find(msg).find(match);
    return found !== undefined;
  };
  if (!(await eventually(seenLine, timeoutMs))) {
    throw new Error(`no line "${msg}" in:\n${log.lines.join('\n').slice(-4000)}`);
  }
  return found as LogRecord;
}

/** Polls /readyz until it answers `status`; false if it never does within `timeoutMs`. */
async function readiness(app: App, status: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await get(app.port, '127.0.0.1', '/readyz')).status === status) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

t.test('STS down: the line names the role, the pods waiting, the error, the retry and what to check', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: `http://${CLOSED_ADDRESS}` });
  const pods = podsFile(dir, 'sts-down', [
    { name: 'api-5d8f7c-a', namespace: 'shop', role: 'shop-api', ip: '127.0.0.2', deployment: 'api' },
    { name: 'api-5d8f7c-b', namespace: 'shop', role: 'shop-api', ip: '127.0.0.3', deployment: 'api' },
  ]);
  const { app, log } = await started(t, ['--pods-file', pods, '--metadata-addr', `127.0.0.1:${moto.port}`]);
  const failed = await line(log, 'AssumeRole failed');
  t.equal(failed.level, 'error');
  t.equal(failed.role, `${BASE}shop-api`);
  t.equal(failed.code, 'ECONNREFUSED');
  t.match(failed.error, /ECONNREFUSED/);
  t.equal(failed.pods, 2, 'how many pods wait');
  t.same([...(failed.podNames as string[])].sort(), ['shop/api-5d8f7c-a', 'shop/api-5d8f7c-b'], 'and which');
  t.ok((failed.retryInMs as number) > 0, 'when it is tried again');
  t.match(failed.remedy, /cannot be reached from the node/);
  t.equal(failed.session, 'shop.api', 'the session name CloudTrail shows');
  const ready = await get(app.port, '127.0.0.1', '/readyz');
  t.equal(ready.status, 503, '/readyz: not ready');
  t.match(JSON.parse(ready.body), { status: 'not ready', reasons: [/^no role could be assumed: STS answered ECONNREFUSED for 1 of 1 roles in use/] });
  t.notMatch(ready.body, /shop-api/, 'readiness names no role: any pod can read it');
  t.equal((await get(app.port, '127.0.0.1', '/healthz')).status, 200, '/healthz (liveness) stays 200');
});

t.test('AccessDenied from IAM-enforcing STS: an error line with the trust-policy remedy; other roles keep the node ready', async (t) => {
  const enforcing = await MotoServer.start({ initialNoAuthActionCount: 3 });
  t.teardown(() => enforcing.stop());
  const key = await enforcing.nodeUser(`${BASE}allowed-*`);
  withEnv(t, { ...NODE_KEYS, AWS_ACCESS_KEY_ID: key.accessKeyId, AWS_SECRET_ACCESS_KEY: key.secretAccessKey, AWS_ENDPOINT_URL_STS: enforcing.endpoint });
  const pods = podsFile(dir, 'denied', [{ name: 'batch', namespace: 'data', role: 'denied-batch', ip: '127.0.0.2' }]);
  const { app, log } = await started(t, ['--pods-file', pods, '--metadata-addr', `127.0.0.1:${moto.port}`]);
  const failed = await line(log, 'AssumeRole failed');
  t.equal(failed.level, 'error');
  t.equal(failed.code, 'AccessDenied');
  t.match(failed.error, /not authorized to perform: sts:AssumeRole/, 'STS’s whole text, for the operator');
  t.match(failed.remedy, /trust policy/);
  t.same(failed.podNames, ['data/batch']);
  t.ok(await readiness(app, 503, 5000), 'the only role fails: not ready');
  t.match(JSON.parse((await get(app.port, '127.0.0.1', '/readyz')).body).reasons, [/AccessDenied for 1 of 1 roles/]);
  podsFile(dir, 'denied', [
    { name: 'batch', namespace: 'data', role: 'denied-batch', ip: '127.0.0.2' },
    { name: 'web', namespace: 'data', role: 'allowed-web', ip: '127.0.0.3' },
  ]);
  t.ok(await readiness(app, 200, 10_000), 'one role served: ready again, the other team’s broken role stays in the log');
});

t.test('throttling: a warning with the rate remedy, and the repeats folded, not one line per retry', async (t) => {
  const sts = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port });
  t.teardown(() => sts.close());
  sts.mode = 'throttle';
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: sts.endpoint });
  const pods = podsFile(dir, 'throttled', [{ name: 'etl', namespace: 'data', role: 'data-etl', ip: '127.0.0.2' }]);
  // Retries back off from 1 s: within a 30 s interval the repeats are folded.
  const { app, log } = await started(t, ['--pods-file', pods, '--metadata-addr', `127.0.0.1:${moto.port}`, '--stats-interval', '30s']);
  const failed = await line(log, 'AssumeRole failed');
  t.equal(failed.level, 'warn', 'throttling is a warning: it clears by itself');
  t.equal(failed.code, 'Throttling');
  t.match(failed.remedy, /--sts-rate-limit/);
  // The pod keeps asking, as its SDK would: each request tries STS again, paced (prefetch
  // retries alone give way to the throttling, seconds apart).
  const asking = setInterval(() => void get(app.port, '127.0.0.2', '/latest/meta-data/iam/security-credentials/data-etl', 1000), 300);
  t.teardown(() => clearInterval(asking));
  t.ok(await eventually(() => app.store.stats.stsErrors >= 3, 20_000), 'failures keep coming');
  clearInterval(asking);
  t.equal(log.find('AssumeRole failed').length, 1, `one line for ${app.store.stats.stsErrors} failures in the interval`);
  sts.mode = 'pass';
});

t.test('no region: the start-up error says to set AWS_REGION, and every AssumeRole line says RegionMissing', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_REGION: undefined, AWS_ENDPOINT_URL_STS: moto.endpoint });
  const pods = podsFile(dir, 'no-region', [{ name: 'app', role: 'app', ip: '127.0.0.2' }]);
  // A metadata service that is not there: no placement/region.
  const { app, log } = await started(t, ['--pods-file', pods, '--metadata-addr', `127.0.0.1:${await freePort()}`]);
  const start = await line(log, 'no region');
  t.equal(start.level, 'error');
  t.match(start.remedy, /set AWS_REGION/);
  const failed = await line(log, 'AssumeRole failed');
  t.equal(failed.code, 'RegionMissing');
  t.match(failed.remedy, /set AWS_REGION/);
  t.equal((await get(app.port, '127.0.0.1', '/readyz')).status, 503);
  t.equal(log.find('STS region').length, 0, 'no region line');
});

t.test('the region found by the metadata service is in the start-up line, with where it came from', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_REGION: 'eu-west-3', AWS_ENDPOINT_URL_STS: moto.endpoint });
  const { log } = await started(t, ['--pods-file', podsFile(dir, 'region', []), '--metadata-addr', `127.0.0.1:${moto.port}`]);
  const region = await line(log, 'STS region');
  t.equal(region.region, 'eu-west-3');
  t.equal(region.regionSource, 'AWS_REGION');
});

t.test('a namespace allow-list that does not parse is one warning per namespace; a denied role one info line per pod and role', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint });
  const pods: FilePod[] = [
    { name: 'a', namespace: 'broken', role: 'app', ip: '127.0.0.2' },
    { name: 'b', namespace: 'strict', role: 'app', ip: '127.0.0.3' },
  ];
  const namespaces = { broken: { 'iam.amazonaws.com/allowed-roles': '[not json' }, strict: { 'iam.amazonaws.com/allowed-roles': '["strict-*"]' } };
  const file = podsFile(dir, 'namespaces', pods, namespaces);
  const { log } = await started(t, ['--pods-file', file, '--metadata-addr', `127.0.0.1:${moto.port}`, '--namespace-restrictions']);
  const bad = await line(log, 'allowed-roles annotation is not valid JSON');
  t.equal(bad.level, 'warn');
  t.equal(bad.namespace, 'broken');
  t.match(bad.msg, /every role but the default is denied in this namespace until the annotation is a JSON array/);
  const denied = await line(log, 'role denied by the namespace allow-list', (r) => r.pod === 'strict/b');
  t.equal(denied.level, 'info');
  t.equal(denied.role, `${BASE}app`);
  t.equal(denied.namespace, 'strict');
  // The file reloaded with a new pod: the namespaces and the first pods say nothing new.
  podsFile(dir, 'namespaces', [...pods, { name: 'c', namespace: 'strict', role: 'app', ip: '127.0.0.4' }], namespaces);
  await line(log, 'role denied by the namespace allow-list', (r) => r.pod === 'strict/c');
  t.equal(log.find('allowed-roles annotation is not valid JSON').length, 1, 'the broken allow-list once');
  t.equal(log.find('role denied by the namespace allow-list').filter((r) => r.pod === 'strict/b').length, 1, 'each denial once');
});

t.test('a pods file that no longer parses: an error line naming it; the pods it held are still served', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint });
  const file = podsFile(dir, 'reload', [{ name: 'app', role: 'app', ip: '127.0.0.2' }]);
  const { app, log } = await started(t, ['--pods-file', file, '--metadata-addr', `127.0.0.1:${moto.port}`]);
  writeFileSync(file, '{"kind": "List", "items": [');
  const failed = await line(log, 'pods file not reloaded');
  t.equal(failed.level, 'error');
  t.equal(failed.file, file);
  t.match(failed.remedy, /kubectl get pods,namespaces -o yaml/);
  t.equal(app.index.size, 1, 'the last good pods stay');
});

t.test('the metadata service gone: a pod’s pass-through gets 502 and the log says why', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint });
  const { app, log } = await started(t, ['--pods-file', podsFile(dir, 'upstream', []), '--metadata-addr', `127.0.0.1:${await freePort()}`]);
  t.equal((await get(app.port, '127.0.0.2', '/latest/meta-data/instance-id')).status, 502);
  const failed = await line(log, 'metadata service request failed');
  t.equal(failed.path, '/latest/meta-data/instance-id');
  t.match(failed.error, /ECONNREFUSED/);
  t.match(failed.remedy, /--metadata-addr/);
});

t.test('--verbose: one request line per request with kube2iam’s fields, the pod and the role; /healthz unlogged; none at info', async (t) => {
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint });
  const file = podsFile(dir, 'requests', [{ name: 'cart', namespace: 'shop', role: 'shop-cart', ip: '127.0.0.2' }]);
  const flags = ['--pods-file', file, '--metadata-addr', `127.0.0.1:${moto.port}`, '--metrics-port', '9102'];
  const { app, log } = await started(t, flags, 'debug');
  t.ok(await eventually(() => app.store.pending === 0, 10_000));
  t.equal((await get(app.port, '127.0.0.2', '/latest/meta-data/iam/security-credentials/shop-cart')).status, 200);
  await get(app.port, '127.0.0.1', '/healthz');
  await get(app.port, '127.0.0.1', '/readyz');
  const request = await line(log, 'GET /latest/meta-data/iam/security-credentials/shop-cart (200) took ');
  t.equal(request.level, 'debug');
  t.match(request, {
    'req.method': 'GET',
    'req.path': '/latest/meta-data/iam/security-credentials/shop-cart',
    'req.remote': '127.0.0.2',
    'res.status': 200,
    route: 'credentials',
    pod: 'shop/cart',
    role: `${BASE}shop-cart`,
  });
  t.ok(Number.isInteger(request['res.durationUs']) && typeof request['res.duration'] === 'number', 'µs, and kube2iam’s ms');
  t.equal(log.records().filter((r) => String(r['req.path']).endsWith('z')).length, 0, 'probes are not logged');
  const warning = await line(log, '--metrics-port does nothing here');
  t.equal(warning.level, 'warn');
  t.match(warning.msg, /stats go to stdout every --stats-interval/);
  t.equal(log.find('--').length, 1, 'one warning, for the one inert flag given');
  const starting = await line(log, 'kube2iam-ts ');
  t.match(starting, { version: /^\d+\.\d+\.\d+/, node: process.version });
  const health = JSON.parse((await get(app.port, '127.0.0.1', '/healthz')).body) as Record<string, unknown>;
  t.equal(health.version, starting.version, '/healthz says the version');

  // The text layout: the same line, read back by a logfmt parser.
  const text = await started(t, flags, 'debug', 'text');
  t.ok(await eventually(() => text.app.store.pending === 0, 10_000));
  await get(text.app.port, '127.0.0.2', '/latest/meta-data/iam/security-credentials/shop-cart');
  const textLine = text.log.lines.map(textRecord).find((r) => r.route === 'credentials');
  t.match(textLine, {
    level: 'debug',
    msg: /^GET \/latest\/meta-data\/iam\/security-credentials\/shop-cart \(200\) took [\d.]+ ms$/,
    pod: 'shop/cart',
    role: `${BASE}shop-cart`,
    'req.remote': '127.0.0.2',
    'res.status': '200',
  });
  t.same(Object.keys(textLine ?? {}).sort(), Object.keys(request).sort(), 'the same fields as the JSON line');

  const quiet = await started(t, flags, 'info');
  await get(quiet.app.port, '127.0.0.2', '/latest/meta-data/iam/security-credentials/shop-cart');
  t.equal(quiet.log.records().filter((r) => 'req.path' in r).length, 0, 'at info, no request lines');
});

t.test('the API server cut, then refusing: a watch warning per resource, with the retry; a 401 points at RBAC', async (t) => {
  const plane = await KubernetesControlPlane.start();
  t.teardown(() => plane.stop());
  const relay = await new FaultRelay({ host: '127.0.0.1', port: Number(new URL(plane.apiServerUrl).port) }).listen();
  t.teardown(() => relay.close());
  withEnv(t, { ...NODE_KEYS, AWS_ENDPOINT_URL_STS: moto.endpoint });
  const { app, log } = await started(t, [
    '--api-server',
    `https://${relay.address}`,
    '--api-token',
    ADMIN_TOKEN,
    '--insecure',
    '--metadata-addr',
    `127.0.0.1:${moto.port}`,
  ]);
  await app.source.whenSynced();
  await relay.refuse();
  const failed = await line(log, 'Kubernetes list or watch failed');
  t.equal(failed.level, 'warn');
  t.match(failed.resource, /^\/api\/v1\/(pods|namespaces)$/);
  t.ok((failed.retryInMs as number) > 0);
  t.match(failed.remedy, /last known pods/);
  await relay.resume();

  const { log: refused } = await started(t, [
    '--api-server',
    plane.apiServerUrl,
    '--api-token',
    'not-a-token',
    '--insecure',
    '--metadata-addr',
    `127.0.0.1:${moto.port}`,
  ]);
  const unauthorized = await line(refused, 'Kubernetes list or watch failed');
  t.equal(unauthorized.status, 401);
  t.match(unauthorized.remedy, /ServiceAccount.*manifests\/rbac\.yaml/);
});

if (process.env.FAILURE_LOG_DUMP !== undefined)
  t.teardown(() => writeFileSync(process.env.FAILURE_LOG_DUMP as string, seen.map((r) => JSON.stringify(r)).join('\n')));

t.test('the README’s troubleshooting lines are lines this program writes', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## Troubleshooting');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const quoted = [...section.matchAll(/^time="[^\n]+$/gm)].map((m) => m[0]);
  t.ok(quoted.length >= 6, `${quoted.length} log lines quoted`);
  // Numbers in a message (a port, a duration) vary from run to run.
  const shape = (msg: unknown): string => String(msg).replace(/\d+(\.\d+)?/g, 'N');
  const keys = (record: object): string =>
    Object.keys(record)
      .filter((k) => k !== 'time')
      .sort()
      .join(' ');
  for (const text of quoted) {
    const pairs = Object.fromEntries(parseLogfmt(text));
    const same = seen.filter((r) => shape(r.msg) === shape(pairs.msg) && r.level === pairs.level);
    t.ok(same.length > 0, `seen: ${String(pairs.msg)}`);
    t.ok(same.length === 0 || same.some((r) => keys(r) === keys(pairs)), `with the same fields: ${String(pairs.msg)}`, {
      quoted: keys(pairs),
      seen: same.map(keys),
    });
  }
});
