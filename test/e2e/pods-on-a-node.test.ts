// End to end, on a node built from real parts (test/e2e/node.ts): kube-apiserver and
// etcd in the node's network namespace, moto there as the upstream metadata service
// (169.254.169.254:80) and as STS, pods created with kubectl, and the built program
// started as a DaemonSet would start it, installing its own DNAT rule (--iptables).
// Real clients (boto3, the aws CLI, the AWS SDK for JavaScript's metadata provider) run
// in the pod namespaces with their defaults, so they call http://169.254.169.254.
//
// Two modes, one proxy each, on one node: IMDSv2 required (success proves the client
// used a token), then IMDSv1 (--allow-route-regexp that the token PUT does not match,
// so it gets 404 and the clients fall back to plain GETs).

import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACCOUNT, motoRequests, TestNode, TOKEN_HEADER, TOKEN_TTL_HEADER, type Pod } from './node.js';
import { CLIENT_RUNNERS, runBotocore, type ClientReport } from './sdk-clients.js';

const node = await TestNode.start();
t.teardown(() => node.stop());
const { cart, ledger, plain, sneaky } = node.pods;

const LISTING = '/latest/meta-data/iam/security-credentials/';
const TOKEN_PATH = '/latest/api/token';
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
/** Go v2 gives up when response headers take longer than this. */
const GO_HEADER_TIMEOUT_MS = 500;

/** The kube2iam DNAT rule, as `iptables -S` prints it (options in any order). */
function isMetadataDnat(rule: string): boolean {
  return (
    rule.startsWith('-A PREROUTING ') &&
    / -d 169\.254\.169\.254\/32( |$)/.test(rule) &&
    / -i cni0( |$)/.test(rule) &&
    / -p tcp( |$)/.test(rule) &&
    / --dport 80( |$)/.test(rule) &&
    / -j DNAT( |$)/.test(rule) &&
    / --to-destination 10\.200\.0\.1:8181( |$)/.test(rule)
  );
}

async function dnatRules(): Promise<string[]> {
  return (await node.natPrerouting()).filter(isMetadataDnat);
}

/** The request lines moto logs from now on; waits until `until` is among them. */
async function motoRequestsSince(offset: number, until?: string): Promise<string[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = motoRequests(node.moto.log().slice(offset));
    if (until === undefined || lines.includes(until) || Date.now() > deadline) return lines;
    await sleep(50);
  }
}

/** What every client must have got in a pod with a permitted role, in either mode. */
function checkOwnRole(t: Test, report: ClientReport, pod: Pod, mode: 'v1' | 'v2'): void {
  const role = pod.spec.role ?? '';
  const what = `${report.client} in ${pod.spec.namespace}/${pod.spec.name}`;
  t.equal(report.exit, 0, `${what} exits 0`, { output: report.output });
  if (report.method !== undefined) t.equal(report.method, 'iam-role', `${what}: credentials from the instance metadata provider`);
  t.same(report.rolesRequested, [role], `${what}: the role listing named ${role} only`);
  t.match(report.arn, new RegExp(`^arn:aws:sts::${ACCOUNT}:assumed-role/${role}/`), `${what}: STS sees role ${role}`);
  t.match(report.accessKeyId, /^ASIA[A-Z0-9]+$/, `${what}: an assumed-role key, not the node's`);
  const puts = report.requests.filter((r) => r.method === 'PUT').map((r) => `${r.path} ${r.status}`);
  const gets = report.requests.filter((r) => r.method === 'GET');
  t.same(puts, [`${TOKEN_PATH} ${mode === 'v2' ? 200 : 404}`], `${what}: one token PUT, answered ${mode === 'v2' ? 200 : 404}`);
  t.ok(gets.length >= 2, `${what}: listing and document fetched`);
  for (const get of gets) {
    t.equal(get.status, 200, `${what}: GET ${get.path} answered 200`);
    if (get.token !== undefined) t.equal(get.token, mode === 'v2', `${what}: GET ${get.path} ${mode === 'v2' ? 'with' : 'without'} a token`);
  }
}

/** Runs each client in pods A and B (A and B side by side) and checks what each got. */
async function clientsGetTheirOwnRoles(t: Test, mode: 'v1' | 'v2'): Promise<void> {
  for (const runClient of CLIENT_RUNNERS) {
    const [a, b] = await Promise.all([runClient(cart), runClient(ledger)]);
    t.test(`${a.client}`, async (t) => {
      checkOwnRole(t, a, cart, mode);
      checkOwnRole(t, b, ledger, mode);
      t.not(a.accessKeyId, b.accessKeyId, 'pod A’s access key is not pod B’s');
      t.notOk(a.rolesRequested.includes('billing-api'), 'pod A never asked for billing-api');
      t.notMatch(a.arn ?? '', /billing-api/, 'pod A never acts as billing-api');
      t.notOk(b.rolesRequested.includes('shop-cart'), 'pod B never asked for shop-cart');
    });
  }
}

/** What a pod without usable role must see: no credentials from any chain, and no node role. */
async function noCredentials(t: Test, pod: Pod, offset: number): Promise<void> {
  const report = await runBotocore(pod);
  t.equal(report.exit, 0, 'boto3 ran', { output: report.output });
  t.equal(report.method, null, 'boto3 finds no credentials');
  t.equal(report.accessKeyId, null, 'no access key, in particular not the node’s default-role key');
  t.notOk(report.rolesRequested.includes('default-role'), 'never told of the node’s default-role');
  t.same(report.rolesRequested, [], 'asked for no role’s credentials');
  const listing = report.requests.find((r) => r.path === LISTING);
  t.equal(listing?.status, 404, 'its role listing answered 404');
  const upstream = (await motoRequestsSince(offset)).filter((line) => line.includes('/iam/'));
  t.same(upstream, [], 'no credential path reached the upstream metadata service');
}

t.test('IMDSv2 required: a proxy started with --iptables and --imdsv2-required', async (t) => {
  await node.startProxy(['--imdsv2-required']);

  t.test('--iptables installs the DNAT rule for 169.254.169.254:80 in the node namespace', async (t) => {
    t.equal((await dnatRules()).length, 1, 'one rule', { rules: await node.natPrerouting() });
  });

  t.test('credential routes need a token from the same pod: else 401', async (t) => {
    t.equal((await cart.metadata(LISTING)).status, 401, 'no token');
    t.equal((await cart.metadata(LISTING, { headers: { [TOKEN_HEADER]: 'not-a-token' } })).status, 401, 'a made-up token');
    const ledgerToken = await ledger.token();
    t.equal((await cart.metadata(LISTING, { headers: { [TOKEN_HEADER]: ledgerToken } })).status, 401, 'pod B’s token, used by pod A');
    t.equal((await cart.metadata(`${LISTING}shop-cart`)).status, 401, 'the document, with no token');
    const own = await cart.metadata(LISTING, { headers: { [TOKEN_HEADER]: await cart.token() } });
    t.same([own.status, own.body], [200, 'shop-cart'], 'its own token');
  });

  t.test('boto3, the aws CLI and the JS SDK in pods A and B each get their own role, with a token', (t) => clientsGetTheirOwnRoles(t, 'v2'));

  t.test('an unannotated pod gets 404 and no credentials, never the node’s role', async (t) => {
    const offset = node.moto.log().length;
    const listing = await plain.metadata(LISTING, { headers: { [TOKEN_HEADER]: await plain.token() } });
    t.equal(listing.status, 404, 'role listing');
    t.match(listing.body, /no role/, 'with the reason', { body: listing.body });
    t.notMatch(listing.body, /default-role/, 'and not the node’s role name');
    const nodeRole = await plain.metadata(`${LISTING}default-role`, { headers: { [TOKEN_HEADER]: await plain.token() } });
    t.equal(nodeRole.status, 404, 'the node’s role, asked for by name');
    t.notMatch(nodeRole.body, /AccessKeyId/, 'no credentials in the answer');
    await noCredentials(t, plain, offset);
  });

  t.test('a pod whose role its namespace forbids gets 404 with the reason, and no credentials', async (t) => {
    const offset = node.moto.log().length;
    const listing = await sneaky.metadata(LISTING, { headers: { [TOKEN_HEADER]: await sneaky.token() } });
    t.equal(listing.status, 404, 'role listing');
    t.match(listing.body, /not allowed/, 'with the reason', { body: listing.body });
    t.match(listing.body, /admin/, 'naming the role');
    const document = await sneaky.metadata(`${LISTING}admin`, { headers: { [TOKEN_HEADER]: await sneaky.token() } });
    t.equal(document.status, 404, 'the forbidden role’s document');
    t.notMatch(document.body, /AccessKeyId/, 'no credentials in the answer');
    await noCredentials(t, sneaky, offset);
  });

  t.test('node identity paths get 404 and never reach the metadata service; other paths pass through', async (t) => {
    const token = await cart.token();
    const offset = node.moto.log().length;
    const blocked = [
      '/latest/meta-data/iam/security-credentials-extended/',
      '/latest/meta-data/iam/info',
      '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
    ];
    for (const path of blocked) {
      const answer = await cart.metadata(path, { headers: { [TOKEN_HEADER]: token } });
      t.equal(answer.status, 404, path);
    }
    const passed = await cart.metadata('/latest/meta-data/instance-id', { headers: { [TOKEN_HEADER]: token } });
    t.equal(passed.status, 200, 'instance-id passes through');
    t.ok(passed.body.length > 0, 'with the upstream’s answer', { body: passed.body });
    const seen = await motoRequestsSince(offset, 'GET /latest/meta-data/instance-id');
    t.ok(seen.includes('GET /latest/meta-data/instance-id'), 'moto served the pass-through request', { seen });
    for (const path of blocked)
      t.notOk(
        seen.some((line) => line.includes(path)),
        `moto never saw ${path}`,
        { seen },
      );
  });

  t.test('token and credential documents as Go v2 and Java v2 need them (curl from pod A)', async (t) => {
    const put = (ttl?: string) => cart.metadata(TOKEN_PATH, { method: 'PUT', headers: ttl === undefined ? {} : { [TOKEN_TTL_HEADER]: ttl } });
    const token = await put('300');
    t.equal(token.status, 200, 'PUT with TTL 300');
    t.equal(token.headers[TOKEN_TTL_HEADER], '300', 'the TTL echoed in X-aws-ec2-metadata-token-ttl-seconds');
    t.ok(token.body.length > 0 && token.body === token.body.trim(), 'the body is the token alone', { body: token.body });
    t.ok(token.ttfbMs < GO_HEADER_TIMEOUT_MS, `token answered within ${GO_HEADER_TIMEOUT_MS} ms`, { ms: token.ttfbMs });
    const longest = await put('21600');
    t.same([longest.status, longest.headers[TOKEN_TTL_HEADER]], [200, '21600'], 'TTL 21600 (the most IMDS allows)');
    t.same([(await put('1')).status], [200], 'TTL 1');
    t.equal((await put()).status, 400, 'no TTL: 400');
    t.equal((await put('0')).status, 400, 'TTL 0: 400');
    t.equal((await put('21601')).status, 400, 'TTL 21601: 400');

    const auth = { headers: { [TOKEN_HEADER]: token.body } };
    const listing = await cart.metadata(LISTING, auth);
    t.equal(listing.status, 200, 'role listing');
    t.equal(listing.body, 'shop-cart', 'one role name, no trailing newline');
    t.ok(listing.ttfbMs < GO_HEADER_TIMEOUT_MS, `listing answered within ${GO_HEADER_TIMEOUT_MS} ms`, { ms: listing.ttfbMs });
    const document = await cart.metadata(`${LISTING}shop-cart`, auth);
    t.equal(document.status, 200, 'credential document');
    t.ok(document.ttfbMs < GO_HEADER_TIMEOUT_MS, `document answered within ${GO_HEADER_TIMEOUT_MS} ms`, { ms: document.ttfbMs });
    const doc = JSON.parse(document.body) as Record<string, unknown>;
    t.equal(doc.Code, 'Success', 'Code: Success (Go v2 requires it)');
    t.equal(doc.Type, 'AWS-HMAC', 'Type: AWS-HMAC');
    t.match(doc.LastUpdated, TIMESTAMP, 'LastUpdated as YYYY-MM-DDTHH:MM:SSZ');
    t.match(doc.Expiration, TIMESTAMP, 'Expiration as YYYY-MM-DDTHH:MM:SSZ');
    for (const field of ['AccessKeyId', 'SecretAccessKey', 'Token']) t.match(doc[field], /^\S+$/, `${field} is a string`);
    const left = Date.parse(String(doc.Expiration)) - Date.now();
    t.ok(left > 15 * 60_000, 'more than 15 minutes left (botocore refreshes 15 minutes ahead)', { minutesLeft: left / 60_000 });
  });

  t.test('the proxy logged no errors', async (t) => {
    t.notMatch(node.proxyLog(), /level=(error|fatal)|"level":"(error|fatal)"/, 'no error lines', { log: node.proxyLog().slice(-3000) });
  });

  t.test('the DNAT rule stays after the proxy stops: pods fail closed', async (t) => {
    t.equal(await node.stopProxy(), 0, 'the proxy exits 0 on SIGTERM');
    t.equal((await dnatRules()).length, 1, 'the rule is still there', { rules: await node.natPrerouting() });
    const offset = node.moto.log().length;
    const answer = await cart.metadata(LISTING, { timeoutS: 3 });
    t.equal(answer.status, 0, 'no answer');
    t.equal(answer.curlExit, 7, 'connection refused, at once');
    const token = await cart.metadata(TOKEN_PATH, { method: 'PUT', headers: { [TOKEN_TTL_HEADER]: '300' }, timeoutS: 3 });
    t.equal(token.curlExit, 7, 'the token PUT too');
    await sleep(200);
    t.same(await motoRequestsSince(offset), [], 'nothing reached the node’s metadata service');
  });
});

t.test('IMDSv1: a proxy restarted with --allow-route-regexp that the token PUT does not match', async (t) => {
  await node.startProxy(['--allow-route-regexp', '^/latest/meta-data/placement/']);

  t.test('a restarted proxy does not add the DNAT rule twice', async (t) => {
    t.equal((await dnatRules()).length, 1, 'one rule', { rules: await node.natPrerouting() });
  });

  t.test('the token PUT and paths outside the regexp get 404; placement passes through', async (t) => {
    const token = await cart.metadata(TOKEN_PATH, { method: 'PUT', headers: { [TOKEN_TTL_HEADER]: '21600' } });
    t.equal(token.status, 404, 'token PUT from a pod: 404');
    t.equal((await cart.metadata('/latest/meta-data/instance-id')).status, 404, 'instance-id: 404');
    const zone = await cart.metadata('/latest/meta-data/placement/availability-zone');
    t.equal(zone.status, 200, 'placement/availability-zone passes through');
    t.ok(zone.body.length > 0, 'with the upstream’s answer', { body: zone.body });
    const listing = await cart.metadata(LISTING);
    t.same([listing.status, listing.body], [200, 'shop-cart'], 'the role listing needs no token');
  });

  t.test('boto3, the aws CLI and the JS SDK fall back to IMDSv1, and each pod gets its own role', (t) => clientsGetTheirOwnRoles(t, 'v1'));

  t.test('the proxy logged no errors', async (t) => {
    t.notMatch(node.proxyLog(), /level=(error|fatal)|"level":"(error|fatal)"/, 'no error lines', { log: node.proxyLog().slice(-3000) });
  });

  t.test('the proxy stops; the rule stays', async (t) => {
    t.equal(await node.stopProxy(), 0, 'the proxy exits 0 on SIGTERM');
    t.equal((await dnatRules()).length, 1, 'the rule is still there');
  });
});
