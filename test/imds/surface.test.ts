// The rest of the metadata surface on loopback, with moto as both STS and the upstream
// metadata service: the IMDSv2 token route, --imdsv2-required, pass-through and what
// never passes, --allow-route-regexp, /healthz, /debug/store and the stats line.

import t from 'tap';
import { configOf, podsFileFlags } from '../harness/config.js';
import { mkdtempSync } from 'node:fs';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { startApp, type App } from '../../lib/app.js';
import type { statsLine } from '../../lib/stats.js';
import { parseArgs } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { VERSION } from '../../lib/version.js';
import { textRecord } from '../harness/log-lines.js';
import { MotoServer } from '../harness/moto.js';
import { podsFile } from '../harness/pods-file.js';
import { eventually } from '../harness/wait.js';

const moto = await MotoServer.start();
t.teardown(() => moto.stop());
Object.assign(process.env, { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'AKIDNODE', AWS_SECRET_ACCESS_KEY: 'node' });

const dir = mkdtempSync(join(tmpdir(), 'k2i-surface-'));
podsFile(dir, 'pods', [
  { name: 'cart', namespace: 'shop', role: 'shop-cart', ip: '127.0.0.2' },
  { name: 'ledger', namespace: 'billing', role: 'billing-api', ip: '127.0.0.3' },
]);

/** The stats line as written: the fields the program builds, and the log's own. */
type StatsFields = ReturnType<ReturnType<typeof statsLine>> & { msg: string };

interface Started {
  app: App;
  stats: string[];
}

async function start(...flags: string[]): Promise<Started> {
  const parsed = await parseArgs(
    await podsFileFlags(join(dir, 'pods.json'), `127.0.0.1:${moto.port}`, '--base-role-arn', 'arn:aws:iam::123456789012:role/', ...flags),
  );
  const out = new PassThrough();
  const stats: string[] = [];
  out.on('data', (line: Buffer) => stats.push(line.toString()));
  const app = await startApp(configOf(parsed), createLogger({ logLevel: 'fatal', logFormat: 'json' }), { host: '127.0.0.1', statsOut: out });
  t.teardown(() => app.close());
  await eventually(() => app.store.pending === 0, 10_000);
  return { app, stats };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(app: App, path: string, from: string, options: { method?: string; headers?: OutgoingHttpHeaders } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: app.port, path, method: options.method ?? 'GET', headers: options.headers, localAddress: from },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const LISTING = '/latest/meta-data/iam/security-credentials/';
const putToken = (app: App, from: string, ttl?: string, headers: OutgoingHttpHeaders = {}): Promise<Answer> =>
  send(app, '/latest/api/token', from, { method: 'PUT', headers: ttl === undefined ? headers : { 'x-aws-ec2-metadata-token-ttl-seconds': ttl, ...headers } });

const open = await start('--debug');

t.test('the token PUT is answered here with a token of this proxy’s, never the node’s, and the TTL', async (t) => {
  const before = open.app.upstream.stats.requests;
  const answer = await putToken(open.app, '127.0.0.2', '300');
  t.equal(answer.status, 200);
  t.match(answer.body, /^[A-Za-z0-9+/]{56}$/);
  t.not(answer.body, 'fake-imdsv2-token', 'not the metadata service’s token');
  t.equal(answer.headers['x-aws-ec2-metadata-token-ttl-seconds'], '300', 'Go v2 and Java v2 parse this header');
  t.match(answer.headers['content-type'], /^text\/plain/);
  t.equal(open.app.upstream.stats.requests, before, 'the metadata service was not asked');
});

t.test('a token that is not this proxy’s, not for this address, or expired gets 401 on every route, as IMDS answers', async (t) => {
  const before = open.app.upstream.stats.requests;
  const mine = (await putToken(open.app, '127.0.0.2', '300')).body;
  const bad = { 'x-aws-ec2-metadata-token': 'fake-imdsv2-token' };
  t.equal((await send(open.app, LISTING, '127.0.0.2', { headers: bad })).status, 401, 'credentials, with a foreign token');
  t.equal((await send(open.app, '/latest/meta-data/instance-id', '127.0.0.2', { headers: bad })).status, 401, 'pass-through, with a foreign token');
  t.equal((await send(open.app, LISTING, '127.0.0.3', { headers: { 'x-aws-ec2-metadata-token': mine } })).status, 401, 'another pod’s token');
  t.equal(open.app.upstream.stats.requests, before, 'none reached the metadata service');
  t.same((await send(open.app, LISTING, '127.0.0.2', { headers: { 'x-aws-ec2-metadata-token': mine } })).body, 'shop-cart', 'its own token works');
  t.equal(
    (await send(open.app, '/latest/meta-data/instance-id', '127.0.0.2', { headers: { 'x-aws-ec2-metadata-token': mine } })).status,
    200,
    'and passes through with the node’s',
  );
  const short = (await putToken(open.app, '127.0.0.2', '1')).body;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.equal((await send(open.app, LISTING, '127.0.0.2', { headers: { 'x-aws-ec2-metadata-token': short } })).status, 401, 'expired');
});

t.test('two hundred token requests from one pod cost nothing upstream, and another pod is answered at once', async (t) => {
  const before = open.app.upstream.stats.requests;
  const flood = await Promise.all(Array.from({ length: 200 }, () => putToken(open.app, '127.0.0.4', '21600')));
  t.ok(flood.filter((a) => a.status === 200).length >= 100, 'its burst is issued');
  t.ok(
    flood.filter((a) => a.status === 429).every((a) => a.headers['retry-after'] === '1'),
    'past it, 429 with Retry-After',
  );
  const started = Date.now();
  const other = await putToken(open.app, '127.0.0.2', '60');
  t.equal(other.status, 200);
  t.ok(Date.now() - started < 1000, `the other pod waited ${Date.now() - started} ms`);
  t.equal(open.app.upstream.stats.requests, before, 'no token request reached the metadata service');
});

t.test('a token PUT with a missing or out-of-range TTL gets 400, one with X-Forwarded-For 403', async (t) => {
  for (const ttl of [undefined, '0', '21601', '-1', '1.5', 'abc', '']) t.equal((await putToken(open.app, '127.0.0.2', ttl)).status, 400, `TTL ${String(ttl)}`);
  t.equal((await putToken(open.app, '127.0.0.2', '1')).status, 200, 'the smallest TTL');
  t.equal((await putToken(open.app, '127.0.0.2', '21600')).status, 200, 'the largest TTL');
  t.equal((await putToken(open.app, '127.0.0.2', '300', { 'x-forwarded-for': '10.0.0.9' })).status, 403);
  const versioned = await send(open.app, '/2021-03-23/api/token', '127.0.0.2', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '300' } });
  t.equal(versioned.status, 403, 'tokens exist only under /latest, as IMDS answers');
  const get = await send(open.app, '/latest/api/token', '127.0.0.2');
  t.equal(get.status, 405);
  t.equal(get.headers.allow, 'PUT');
});

t.test('without --imdsv2-required, plain GETs get credentials (IMDSv1)', async (t) => {
  t.same((await send(open.app, LISTING, '127.0.0.2')).body, 'shop-cart');
});

t.test('other paths pass through to the metadata service, with nothing added and hop-by-hop headers dropped', async (t) => {
  const answer = await send(open.app, '/latest/meta-data/instance-id', '127.0.0.2', {
    headers: { 'x-probe': 'kept', connection: 'keep-alive, x-hop', 'x-hop': 'dropped', te: 'trailers' },
  });
  t.equal(answer.status, 200);
  t.match(answer.body, /^i-/, 'moto’s instance id');
  // moto echoes the request's headers back, so they show what reached it.
  t.equal(answer.headers['x-probe'], 'kept');
  t.notOk('x-hop' in answer.headers, 'a header named by Connection is hop-by-hop');
  t.notOk('te' in answer.headers);
  t.notOk('x-forwarded-for' in answer.headers, 'no X-Forwarded-For is added');
  const region = await send(open.app, '/latest/meta-data/placement/region', '127.0.0.9');
  t.same([region.status, region.body], [200, 'us-east-1'], 'pass-through needs no known pod');
  const head = await send(open.app, '/latest/meta-data/placement/region', '127.0.0.2', { method: 'HEAD' });
  t.same([head.status, head.body], [200, ''], 'HEAD passes without a body');
});

t.test('paths that would expose the node, and non-canonical paths, never pass through', async (t) => {
  const before = open.app.upstream.stats.requests;
  const blocked = [
    '/latest/meta-data/iam/info',
    '/latest/meta-data/iam/',
    '/latest/meta-data/iam',
    '/latest/meta-data/iam/security-credentials-extended/',
    '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
    '/latest/meta-data/IAM/security-credentials/',
    '/LATEST/META-DATA/IAM/INFO',
    '/latest/meta-data/%69am/info',
    '/2016-09-02/meta-data/Iam/Info',
    '/latest/dynamic/instance-identity/pkcs7',
    '/latest/dynamic/instance-identity/signature',
    '/latest/dynamic/instance-identity/rsa2048',
    '/latest/dynamic/Instance-Identity/PKCS7',
  ];
  for (const path of blocked) t.equal((await send(open.app, path, '127.0.0.2')).status, 404, path);
  const refused = [
    '/latest//meta-data/iam/security-credentials/',
    '/latest/./meta-data/iam/info',
    '/latest/meta-data/x/../iam/info',
    '/latest%2Fmeta-data%2Fiam%2Finfo',
    '/latest/meta-data/%zz',
    '/latest/meta-data/a%5C..%5Ciam',
  ];
  for (const path of refused) t.equal((await send(open.app, path, '127.0.0.2')).status, 400, path);
  t.equal(open.app.upstream.stats.requests, before, 'none of them reached the upstream');
});

t.test('pass-through is an allow-list: only the shapes the metadata service serves reach it', async (t) => {
  const before = open.app.upstream.stats.requests;
  const outside = [
    '/',
    '/latest',
    '/latest/',
    '/latest/api',
    '/latest/meta-data;x=1',
    '/latest/meta-data/instance-id;jsessionid=1',
    '/latest/meta-data/instance-id?x=1',
    '/latest/user-data/x',
    '/latest/Meta-Data/instance-id',
    '/v1/credentials',
    '/computeMetadata/v1/',
    '/metadata/instance',
    '/2021-1-1/meta-data/',
    '/latest/meta-data/tags/instance/a,b',
    '/latest/meta-data/%41mi-id',
    '/favicon.ico',
  ];
  for (const path of outside) t.same([(await send(open.app, path, '127.0.0.2')).status, path], [404, path]);
  t.equal(open.app.upstream.stats.requests, before, 'none of them reached the upstream');
  for (const path of [
    '/latest/meta-data/',
    '/latest/meta-data',
    '/2009-04-04/meta-data/ami-id',
    '/latest/dynamic/instance-identity/document',
    '/latest/meta-data/placement/availability-zone',
  ]) {
    await send(open.app, path, '127.0.0.2');
  }
  t.equal(open.app.upstream.stats.requests, before + 5, 'the shapes it serves pass');
});

t.test('--allow-route-regexp narrows the allow-list, never widens it', async (t) => {
  const { app } = await start('--allow-route-regexp', '.*');
  const before = app.upstream.stats.requests;
  t.equal((await send(app, '/not/metadata', '127.0.0.2')).status, 404);
  t.equal((await send(app, '/latest/meta-data/iam/info', '127.0.0.2')).status, 404);
  t.equal(app.upstream.stats.requests, before, 'a regexp that matches everything lets nothing more through');
  const narrow = await start('--allow-route-regexp', '^/latest/meta-data/placement/');
  t.equal((await send(narrow.app, '/latest/meta-data/instance-id', '127.0.0.2')).status, 404);
  t.equal((await send(narrow.app, '/latest/meta-data/placement/region', '127.0.0.2')).status, 200);
});

t.test('/healthz answers JSON; /debug/store shows each IP’s role only with --debug', async (t) => {
  const health = await send(open.app, '/healthz', '127.0.0.9');
  t.equal(health.status, 200);
  t.same(JSON.parse(health.body), { status: 'ok', hostIP: '', version: VERSION });
  const debug = JSON.parse((await send(open.app, '/debug/store', '127.0.0.9')).body) as { pods: Record<string, { role?: string }> };
  t.equal(debug.pods['127.0.0.2']?.role, 'arn:aws:iam::123456789012:role/shop-cart');
});

t.test('with --imdsv2-required, credentials need a token issued to the same IP', async (t) => {
  const { app } = await start('--imdsv2-required');
  t.equal((await send(app, LISTING, '127.0.0.2')).status, 401, 'a plain GET (an SSRF) gets nothing');
  t.equal((await send(app, `${LISTING}shop-cart`, '127.0.0.2')).status, 401);
  t.equal((await send(app, LISTING, '127.0.0.2', { headers: { 'x-aws-ec2-metadata-token': 'made-up' } })).status, 401, 'a token not issued here');
  const token = (await putToken(app, '127.0.0.2', '300')).body;
  const withToken = { headers: { 'x-aws-ec2-metadata-token': token } };
  t.same((await send(app, LISTING, '127.0.0.2', withToken)).body, 'shop-cart');
  t.equal((await send(app, `${LISTING}shop-cart`, '127.0.0.2', withToken)).status, 200);
  t.equal((await send(app, LISTING, '127.0.0.3', withToken)).status, 401, 'the same token from another pod’s IP');
  const short = (await putToken(app, '127.0.0.3', '1')).body;
  t.equal((await send(app, LISTING, '127.0.0.3', { headers: { 'x-aws-ec2-metadata-token': short } })).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  t.equal((await send(app, LISTING, '127.0.0.3', { headers: { 'x-aws-ec2-metadata-token': short } })).status, 401, 'an expired token');
  t.equal((await send(app, '/latest/meta-data/placement/region', '127.0.0.3')).status, 200, 'pass-through is the upstream’s to guard');
});

t.test('--allow-route-regexp lets only matching paths pass, the token PUT included', async (t) => {
  const { app } = await start('--allow-route-regexp', '^/latest/meta-data/placement/');
  t.equal((await send(app, '/latest/meta-data/placement/region', '127.0.0.2')).status, 200);
  const denied = await send(app, '/latest/meta-data/instance-id', '127.0.0.2');
  t.same([denied.status, denied.body], [404, 'path not allowed by --allow-route-regexp\n']);
  t.equal((await putToken(app, '127.0.0.2', '300')).status, 404, 'SDKs fall back to IMDSv1 on 404');
  t.equal((await send(app, LISTING, '127.0.0.2')).body, 'shop-cart', 'credential routes are not pass-through');
});

t.test('the stats line counts requests by route and status, credential latency, STS calls and pods', async (t) => {
  // Every role fetched when the pods are listed, not over the start-up window.
  const { app, stats } = await start('--log-format', 'json', '--prefetch-window', '0');
  await send(app, LISTING, '127.0.0.2');
  await send(app, `${LISTING}shop-cart`, '127.0.0.2');
  await send(app, `${LISTING}other`, '127.0.0.2');
  await send(app, '/latest/meta-data/placement/region', '127.0.0.2');
  await send(app, '/latest/meta-data/iam/info', '127.0.0.2');
  app.stats.report();
  t.equal(stats.length, 1, 'one line');
  const line = JSON.parse(stats[0] ?? '') as StatsFields;
  t.equal(line.msg, 'stats');
  t.same(line.requests, { listing: { 200: 1 }, credentials: { 200: 1, 403: 1 }, passthrough: { 200: 1 }, blocked: { 404: 1 } });
  t.equal(line.credentialLatencyMs.count, 3);
  t.ok(line.credentialLatencyMs.p50 > 0 && line.credentialLatencyMs.p50 <= line.credentialLatencyMs.max);
  t.equal(line.store.hits, 1);
  t.equal(line.sts.calls, 2, 'one per role, fetched when the pods were listed');
  t.equal(line.pods.indexed, 2);
  t.equal(line.upstream.requests, 1);
  t.ok(line.loopDelayMs.max >= 0 && line.loopDelayMs.max < 10_000 && line.loopDelayMs.p99 <= line.loopDelayMs.max, 'the event loop delay is measured');
  t.same([line.store.retained, line.store.reused, line.store.dropped], [0, 0, 0], 'credentials kept for a workload’s next pod, reused and dropped');
  t.ok(line.memoryMb.rss > 0 && line.memoryMb.heapUsed > 0 && line.memoryMb.heapUsed < line.memoryMb.rss, 'RSS and the live heap, in MB');
  app.stats.report();
  const second = JSON.parse(stats[1] ?? '') as StatsFields;
  t.same(second.requests, {}, 'the next line counts from the last one');
  t.equal(second.sts.calls, 0);
});

t.test('with --log-format text the stats line is logrus’s key=value text', async (t) => {
  const { app, stats } = await start('--prefetch-window', '0');
  await send(app, LISTING, '127.0.0.2');
  app.stats.report();
  t.equal(stats.length, 1);
  t.match(stats[0], /^time="[^"]+" level=info msg=stats .*\n$/);
  t.match(textRecord((stats[0] ?? '').trimEnd()), { 'requests.listing.200': '1', 'sts.calls': '2', 'pods.indexed': '2', seconds: /^[\d.]+$/ });
  t.notMatch((stats[0] ?? '').trimEnd(), /\n/, 'a single line');
});
