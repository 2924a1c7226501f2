// --auto-discover-base-arn and --auto-discover-default-role. The metadata service here
// is a hand-written stand-in on loopback: neither moto (iam/info answers 500) nor any
// other available part serves an instance profile.

import t from 'tap';
import { configOf, podsFileFlags } from '../harness/config.js';
import { mkdtempSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../../lib/app.js';
import { parseArgs } from '../../lib/config.js';
import { baseArnFromInstanceProfile } from '../../lib/credentials/roles.js';
import { createLogger } from '../../lib/log.js';
import { discoverRegion, discoverRolePolicy } from '../../lib/node/instance-profile.js';
import { MetadataUpstream } from '../../lib/upstream/metadata.js';
import { LogCapture } from '../harness/log-lines.js';
import { MotoServer } from '../harness/moto.js';
import { podsFile } from '../harness/pods-file.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { freePort } from '../harness/ports.js';
import { eventually } from '../harness/wait.js';

t.test('the base ARN is the instance profile’s account and partition, path dropped', async (t) => {
  t.equal(baseArnFromInstanceProfile('arn:aws:iam::123456789012:instance-profile/nodes'), 'arn:aws:iam::123456789012:role/');
  t.equal(baseArnFromInstanceProfile('arn:aws:iam::123456789012:instance-profile/path/to/nodes'), 'arn:aws:iam::123456789012:role/');
  t.equal(baseArnFromInstanceProfile('arn:aws-cn:iam::123456789012:instance-profile/nodes'), 'arn:aws-cn:iam::123456789012:role/');
  t.throws(() => baseArnFromInstanceProfile('arn:aws:iam::123456789012:role/nodes'), /cannot derive a base role ARN/);
  t.throws(() => baseArnFromInstanceProfile('arn:aws:iam::123456789012:instance-profile'), /cannot derive a base role ARN/);
});

let info = JSON.stringify({ Code: 'Success', InstanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/eks/nodes', InstanceProfileId: 'AIPA' });
let infoStatus = 200;
let region = 'eu-west-1';
// Like an instance with HttpTokens=required: GETs need the token it hands out.
const metadata = createServer((req, res) => {
  if (req.method === 'PUT' && req.url === '/latest/api/token') {
    res.end('node-token');
    return;
  }
  if (req.headers['x-aws-ec2-metadata-token'] !== 'node-token') {
    res.statusCode = 401;
    res.end();
    return;
  }
  if (req.url === '/latest/meta-data/iam/info') {
    res.statusCode = infoStatus;
    res.end(info);
  } else if (req.url === '/latest/meta-data/placement/region') {
    res.end(region);
  } else if (req.url === '/latest/meta-data/iam/security-credentials/') {
    res.end('node-role');
  } else {
    res.statusCode = 404;
    res.end();
  }
});
await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
t.teardown(() => metadata.close());
const address = `127.0.0.1:${(metadata.address() as { port: number }).port}`;

t.test('discovery reads iam/info, and the instance role for the default, with an IMDSv2 token', async (t) => {
  const upstream = new MetadataUpstream(address);
  t.teardown(() => upstream.close());
  const none = { baseRoleArn: null, defaultRoleArn: null };
  t.same(await discoverRolePolicy(none, { baseArn: true, defaultRole: false, defaultRoleName: null }, upstream), {
    baseRoleArn: 'arn:aws:iam::123456789012:role/',
    defaultRoleArn: null,
  });
  t.same(await discoverRolePolicy(none, { baseArn: false, defaultRole: true, defaultRoleName: null }, upstream), {
    baseRoleArn: 'arn:aws:iam::123456789012:role/',
    defaultRoleArn: 'arn:aws:iam::123456789012:role/node-role',
  });
  const given = { baseRoleArn: 'arn:aws:iam::1:role/', defaultRoleArn: null };
  t.equal(await discoverRolePolicy(given, { baseArn: false, defaultRole: false, defaultRoleName: null }, upstream), given, 'nothing asked, nothing fetched');
});

t.test('with --auto-discover-base-arn a bare --default-role is a role of the discovered account, as in kube2iam', async (t) => {
  const parsed = await parseArgs(['--auto-discover-base-arn', '--default-role', 'fallback', '--metadata-addr', address]);
  t.same(parsed.config?.autoDiscover, { baseArn: true, defaultRole: false, defaultRoleName: 'fallback' }, 'accepted, resolved at start');
  t.equal(parsed.config?.credentials.rolePolicy.defaultRoleArn, null);
  const upstream = new MetadataUpstream(address);
  t.teardown(() => upstream.close());
  const policy = await discoverRolePolicy(configOf(parsed).credentials.rolePolicy, configOf(parsed).autoDiscover, upstream);
  t.same(policy, { baseRoleArn: 'arn:aws:iam::123456789012:role/', defaultRoleArn: 'arn:aws:iam::123456789012:role/fallback' });
  const full = await parseArgs(['--auto-discover-base-arn', '--default-role', 'arn:aws:iam::999999999999:role/x', '--metadata-addr', address]);
  t.equal(full.config?.credentials.rolePolicy.defaultRoleArn, 'arn:aws:iam::999999999999:role/x', 'a full ARN needs no base');
  const bad = await parseArgs(['--auto-discover-base-arn', '--default-role', 'not a role']).then(
    () => null,
    (e: unknown) => e,
  );
  t.match((bad as Error).message, /--default-role: .*not a valid role name/, 'its form is still checked at once');
});

t.test('discovery fails with a reason when the metadata service cannot say', async (t) => {
  const upstream = new MetadataUpstream(address);
  t.teardown(() => upstream.close());
  const none = { baseRoleArn: null, defaultRoleArn: null };
  infoStatus = 500;
  await t.rejects(discoverRolePolicy(none, { baseArn: true, defaultRole: false, defaultRoleName: null }, upstream), /iam\/info answered 500/);
  infoStatus = 200;
  info = '{"Code":"Success"}';
  await t.rejects(discoverRolePolicy(none, { baseArn: true, defaultRole: false, defaultRoleName: null }, upstream), /no InstanceProfileArn/);
  info = 'not json';
  await t.rejects(discoverRolePolicy(none, { baseArn: true, defaultRole: false, defaultRoleName: null }, upstream), /not JSON/);
  const down = new MetadataUpstream(`127.0.0.1:${await freePort()}`);
  t.teardown(() => down.close());
  await t.rejects(discoverRolePolicy(none, { baseArn: true, defaultRole: false, defaultRoleName: null }, down), /metadata service/);
  info = JSON.stringify({ Code: 'Success', InstanceProfileArn: 'arn:aws:iam::123456789012:instance-profile/eks/nodes' });
});

t.test('with --auto-discover-default-role an unannotated pod gets the node’s role', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  Object.assign(process.env, { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'AKIDNODE', AWS_SECRET_ACCESS_KEY: 'node' });
  const dir = mkdtempSync(join(tmpdir(), 'k2i-discover-'));
  const file = podsFile(dir, 'pods', [{ name: 'plain', ip: '127.0.0.2' }]);
  const parsed = await parseArgs(await podsFileFlags(file, address, '--auto-discover-default-role'));
  const app = await startApp(configOf(parsed), createLogger({ logLevel: 'fatal', logFormat: 'json' }), { host: '127.0.0.1' });
  t.teardown(() => app.close());
  await eventually(() => app.store.pending === 0, 10_000);
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: app.port, path: '/latest/meta-data/iam/security-credentials/', localAddress: '127.0.0.2' }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(body, 'node-role');
});

t.test('the region comes from placement/region, with an IMDSv2 token; an answer that is no region is refused', async (t) => {
  const upstream = new MetadataUpstream(address);
  t.teardown(() => upstream.close());
  t.equal(await discoverRegion(upstream), 'eu-west-1');
  for (const bad of ['', 'not a region', '<html>', 'eu-west-1\nus-east-1']) {
    region = bad;
    await t.rejects(discoverRegion(upstream), /^metadata placement\/region answered 200 /, JSON.stringify(bad));
  }
  region = 'us-gov-west-1';
  t.equal(await discoverRegion(upstream), 'us-gov-west-1');
  region = 'eu-west-1';
});

t.test('without AWS_REGION, STS is called in the node’s region, as the start-up line says', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const sts = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port });
  t.teardown(() => sts.close());
  const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
  delete process.env.AWS_REGION;
  delete process.env.AWS_DEFAULT_REGION;
  t.teardown(() => Object.assign(process.env, saved));
  Object.assign(process.env, { AWS_ENDPOINT_URL_STS: sts.endpoint, AWS_ACCESS_KEY_ID: 'AKIDNODE', AWS_SECRET_ACCESS_KEY: 'node' });
  const dir = mkdtempSync(join(tmpdir(), 'k2i-region-'));
  const file = podsFile(dir, 'pods', [{ name: 'app', role: 'app', ip: '127.0.0.2' }]);
  const parsed = await parseArgs(await podsFileFlags(file, address, '--base-role-arn', 'arn:aws:iam::123456789012:role/'));
  const lines = new LogCapture();
  const app = await startApp(configOf(parsed), createLogger({ logLevel: 'info', logFormat: 'json' }, lines), { host: '127.0.0.1' });
  t.teardown(() => app.close());
  await eventually(() => sts.calls.length > 0 && app.store.pending === 0, 10_000);
  t.same(
    sts.calls.map((c) => [c.roleArn, c.region, c.outcome]),
    [['arn:aws:iam::123456789012:role/app', 'eu-west-1', 'passed']],
    'signed for the node’s region',
  );
  t.match(lines.lines.join(''), /"region":"eu-west-1","regionSource":"metadata placement\/region"/);
});
