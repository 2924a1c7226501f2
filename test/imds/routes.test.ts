// The credential routes end to end on loopback: the real program's composition, a pods
// file whose pod IPs are loopback addresses, moto as STS, and requests sent from those
// addresses (and from botocore, a real SDK client).

import t from 'tap';
import { configOf, podsFileFlags } from '../harness/config.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from '../../lib/app.js';
import { parseArgs } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { MotoServer } from '../harness/moto.js';
import { run } from '../harness/processes.js';
import { eventually } from '../harness/wait.js';

const moto = await MotoServer.start();
t.teardown(() => moto.stop());
const BASE = 'arn:aws:iam::123456789012:role/';

const pod = (name: string, namespace: string, ip: string, role?: string): object => ({
  kind: 'Pod',
  metadata: { name, namespace, annotations: role === undefined ? {} : { 'iam.amazonaws.com/role': role } },
  status: { phase: 'Running', podIP: ip },
});
const file = {
  kind: 'List',
  items: [
    { kind: 'Namespace', metadata: { name: 'shop', annotations: { 'iam.amazonaws.com/allowed-roles': '["shop-*"]' } } },
    { kind: 'Namespace', metadata: { name: 'local', annotations: { 'iam.amazonaws.com/allowed-roles': '["local-*"]' } } },
    pod('local', 'local', '127.0.0.1', 'local-app'),
    pod('cart', 'shop', '127.0.0.2', 'shop-cart'),
    pod('sneaky', 'shop', '127.0.0.3', 'admin'),
    pod('plain', 'shop', '127.0.0.4'),
  ],
};

const dir = mkdtempSync(join(tmpdir(), 'k2i-imds-'));
writeFileSync(join(dir, 'pods.json'), JSON.stringify(file));
Object.assign(process.env, { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'AKIDNODE', AWS_SECRET_ACCESS_KEY: 'node' });
const parsed = await parseArgs(
  await podsFileFlags(
    join(dir, 'pods.json'),
    `127.0.0.1:${moto.port}`,
    '--base-role-arn',
    BASE,
    '--namespace-restrictions',
    '--backoff-max-elapsed-time',
    '300ms',
  ),
);
const app: App = await startApp(configOf(parsed), createLogger({ logLevel: 'fatal', logFormat: 'json' }), { host: '127.0.0.1' });
t.teardown(() => app.close());
await eventually(() => app.store.pending === 0, 10_000);

function get(path: string, from: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: app.port, path, method, localAddress: from }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const LISTING = '/latest/meta-data/iam/security-credentials/';

t.test('each pod gets its own role name, with or without the slash, under any version', async (t) => {
  t.same(await get(LISTING, '127.0.0.2'), { status: 200, body: 'shop-cart' });
  t.same(await get('/latest/meta-data/iam/security-credentials', '127.0.0.2'), { status: 200, body: 'shop-cart' });
  t.same(await get('/2016-09-02/meta-data/iam/security-credentials/', '127.0.0.1'), { status: 200, body: 'local-app' });
});

t.test('a pod gets its own credential document, and another role is refused', async (t) => {
  const answer = await get(`${LISTING}shop-cart`, '127.0.0.2');
  t.equal(answer.status, 200);
  const doc = JSON.parse(answer.body) as Record<string, string>;
  t.equal(doc.Code, 'Success');
  t.match(doc.AccessKeyId, /^ASIA/);
  const other = await get(`${LISTING}local-app`, '127.0.0.2');
  t.same(other, { status: 403, body: 'Invalid role local-app\n' });
  const own = JSON.parse((await get(`${LISTING}local-app`, '127.0.0.1')).body) as Record<string, string>;
  t.not(own.AccessKeyId, doc.AccessKeyId, 'two pods, two credentials');
});

t.test('no role, a forbidden role and an unknown pod get 404 with the reason', async (t) => {
  t.same(await get(LISTING, '127.0.0.4'), { status: 404, body: 'no role annotation and no default role\n' });
  t.same(await get(LISTING, '127.0.0.3'), { status: 404, body: `role ${BASE}admin is not allowed in namespace shop\n` });
  const started = Date.now();
  t.same(await get(LISTING, '127.0.0.9'), { status: 404, body: 'no pod with IP 127.0.0.9\n' });
  t.ok(Date.now() - started >= 250, 'after waiting for the pod');
});

t.test('paths that expose the node identity are never served', async (t) => {
  for (const path of [
    '/latest/meta-data/iam/security-credentials-extended/',
    '/latest/meta-data/iam/security-credentials-extended/shop-cart',
    '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
    '/latest/meta-data/iam/info',
  ]) {
    t.equal((await get(path, '127.0.0.2')).status, 404, path);
  }
});

t.test('HEAD is answered without a body; other methods get 405', async (t) => {
  t.same(await get(LISTING, '127.0.0.2', 'HEAD'), { status: 200, body: '' });
  t.equal((await get(LISTING, '127.0.0.2', 'POST')).status, 405);
});

t.test('botocore, through its default credential chain, gets the pod’s role', async (t) => {
  const script = [
    'import boto3',
    'c = boto3.Session().get_credentials()',
    'print(c.method, c.get_frozen_credentials().access_key)',
    'print(boto3.client("sts").get_caller_identity()["Arn"])',
  ].join('\n');
  const out = await run('python3', ['-c', script], {
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: `http://127.0.0.1:${app.port}/`,
      AWS_DEFAULT_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_STS: moto.endpoint,
    },
  });
  const [method, arn] = out.trim().split('\n');
  t.match(method, /^iam-role ASIA/, 'credentials from the instance metadata provider');
  t.match(arn, /assumed-role\/local-app\/local\.local$/, 'the pod’s role, with a session that names the workload');
});
