// The container-credentials endpoint against a real kube-apiserver, which issues the
// projected tokens (TokenRequest bound to a pod) and reviews them (TokenReview), and
// moto as STS. The endpoint listens on a loopback address here (both SDKs allow one in
// AWS_CONTAINER_CREDENTIALS_FULL_URI): botocore, the aws CLI and the JavaScript SDK's
// HTTP provider each get their own pod's role, and every token that is not a live pod's
// of this node, for this audience, is refused.

import t, { type Test } from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from '../harness/pod-client.js';
import { execute } from '../harness/processes.js';
import { eventually } from '../harness/wait.js';
import { ACCOUNT, askEndpoint, AUDIENCE, startTokenProxy, tokenCluster } from './token-proxy.js';

const ADDRESS = '127.0.0.41';
const NS = 'shop';
const CLIENTS = join(import.meta.dirname, '..', 'e2e', 'clients');
const dir = mkdtempSync(join(tmpdir(), 'k2i-container-'));

const { plane, moto } = await tokenCluster(t);
await plane.kubectl(['create', 'namespace', NS]);
for (const sa of ['web', 'batch']) await plane.serviceAccount(NS, sa);
await plane.kubectlRunningPod(NS, 'web', { 'iam.amazonaws.com/role': 'web-role' }, '10.0.0.1', { serviceAccount: 'web' });
await plane.kubectlRunningPod(NS, 'batch', { 'iam.amazonaws.com/role': 'batch-role' }, '10.0.0.2', { serviceAccount: 'batch' });
await plane.kubectlRunningPod(NS, 'elsewhere', { 'iam.amazonaws.com/role': 'web-role' }, '10.0.1.1', { serviceAccount: 'web', node: 'node-2' });
await plane.kubectlRunningPod(NS, 'plain', {}, '10.0.0.3', { serviceAccount: 'web' });
// On the host network: its address is the node's (a loopback address here, the proxy's own host).
await plane.kubectlRunningPod(NS, 'agent', { 'iam.amazonaws.com/role': 'agent-role' }, '127.0.0.81', { serviceAccount: 'web', hostNetwork: true });
// At a loopback address, so a request can come from its address.
await plane.kubectlRunningPod(NS, 'thief', { 'iam.amazonaws.com/role': 'thief-role' }, '127.0.0.61', { serviceAccount: 'batch' });

const proxy = await startTokenProxy(t, ADDRESS, [...plane.programConnection(), '--node', 'node-1', '--backoff-max-elapsed-time', '300ms']);
const { app, port, log, statsOut } = proxy;
const ask = (token: string | undefined, options: Parameters<typeof askEndpoint>[2] = {}) => askEndpoint(proxy, token, options);

/** The stats line's container-credentials figures since the last call. */
function reviews(): Record<string, number> {
  app.stats.report();
  const line = statsOut.records().pop() as { containerCredentials?: { reviews?: Record<string, number> } } | undefined;
  return line?.containerCredentials?.reviews ?? {};
}

async function podUid(name: string): Promise<string> {
  return (await plane.kubectl(['get', 'pod', name, '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim();
}

/** Claims as TokenRequest writes them for a pod-bound token. */
async function boundClaims(pod: string, serviceAccount: string, expiresInS: number): Promise<Record<string, unknown>> {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: `system:serviceaccount:${NS}:${serviceAccount}`,
    aud: [AUDIENCE],
    iat: now - 60,
    nbf: now - 60,
    exp: now + expiresInS,
    'kubernetes.io': {
      namespace: NS,
      serviceaccount: { name: serviceAccount, uid: (await plane.kubectl(['get', 'sa', serviceAccount, '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim() },
      pod: { name: pod, uid: await podUid(pod) },
    },
  };
}

const webToken = await plane.issueToken(NS, 'web', 'web', AUDIENCE);
const batchToken = await plane.issueToken(NS, 'batch', 'batch', AUDIENCE);

t.test("a pod's bound token gets that pod's role, in the container-credentials layout", async (t) => {
  reviews();
  const web = await ask(webToken);
  t.equal(web.status, 200, JSON.stringify(web.body));
  t.equal(web.headers['content-type'], 'application/json');
  t.same(Object.keys(web.body), ['AccessKeyId', 'SecretAccessKey', 'Token', 'AccountId', 'Expiration']);
  t.equal(web.body.AccountId, ACCOUNT, "the role's account");
  t.match(web.body.Expiration, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
  const batch = await ask(batchToken);
  t.equal(batch.status, 200);
  t.not(batch.body.AccessKeyId, web.body.AccessKeyId, 'another pod, other credentials');
  const again = await ask(webToken);
  t.equal(again.body.AccessKeyId, web.body.AccessKeyId, 'the same pod, the same credentials');
  t.match(reviews(), { reviews: 2, cached: 1 }, 'each token reviewed once, then answered from the review kept');
});

t.test('every token that is not a live pod of this node, for this audience, is refused', async (t) => {
  const foreignKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const cases: Array<[string, () => Promise<string | undefined>, number, RegExp]> = [
    ['no token', async () => undefined, 401, /no service account token/],
    ['not a token', async () => 'hello', 401, /not a JSON web token/],
    ["the API server's audience (the default token)", () => plane.issueToken(NS, 'web', 'web'), 401, /not for audience kube2iam/],
    ['not bound to a pod', () => plane.issueToken(NS, 'web', null, AUDIENCE), 403, /not bound to a pod/],
    ['expired', async () => plane.mintToken(await boundClaims('web', 'web', -120)), 401, /expired/],
    ['signed with another key', async () => plane.mintToken(await boundClaims('web', 'web', 600), foreignKey), 401, /did not authenticate/],
    ['a pod of another node', () => plane.issueToken(NS, 'web', 'elsewhere', AUDIENCE), 403, /shop\/elsewhere is not on this node/],
    ['a pod with no role', () => plane.issueToken(NS, 'web', 'plain', AUDIENCE), 403, /no role annotation/],
  ];
  for (const [name, token, status, reason] of cases) {
    const answer = await ask(await token());
    t.equal(answer.status, status, name);
    t.match(answer.body.Message, reason, `${name}: ${String(answer.body.Message)}`);
    t.notOk('AccessKeyId' in answer.body, `${name}: no credentials`);
  }
});

t.test("a token presented from another pod's address is refused; from its own pod's, it is served", async (t) => {
  const stolen = await ask(webToken, { from: '127.0.0.61' });
  t.equal(stolen.status, 403);
  t.match(stolen.body.Message, /token of pod shop\/web was presented from 127\.0\.0\.61, another pod's address/);
  t.notOk('AccessKeyId' in stolen.body);
  const own = await ask(await plane.issueToken(NS, 'batch', 'thief', AUDIENCE), { from: '127.0.0.61' });
  t.equal(own.status, 200, 'the pod at that address, with its own token');
});

t.test('an address presenting new tokens fast spends its own review rate (on the node’s address, the named pod’s), not its neighbours’', async (t) => {
  const foreign = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  // Forged, but well-formed: only the API server can tell, so each one costs a review.
  const claims = await boundClaims('web', 'web', 600);
  const forged = Array.from({ length: 8 }, (_, n) => plane.mintToken({ ...claims, exp: (claims.exp as number) + n }, foreign));
  // At once, so the caller's bucket (burst 5, then 1 a second) cannot refill in between.
  const statuses = (await Promise.all(forged.map((token) => ask(token, { from: '127.0.0.71' })))).map((a) => a.status).sort();
  t.same(statuses, [401, 401, 401, 401, 401, 503, 503, 503], 'its burst is reviewed (and refused), the rest told to retry');
  const neighbour = await ask(await plane.issueToken(NS, 'batch', 'batch', AUDIENCE), { from: '127.0.0.72' });
  t.equal(neighbour.status, 200, 'another address still gets its new token reviewed');
  // 127.0.0.71 is no pod's: the node's own address, shared by the pods on the host network.
  const sameAddress = await ask(await plane.issueToken(NS, 'web', 'agent', AUDIENCE), { from: '127.0.0.71' });
  t.equal(sameAddress.status, 200, 'from an address no pod claims, a token naming another pod has its own share');
});

t.test('a pod on the host network, which no address can name, gets its role by its token; by its address, nothing', async (t) => {
  const byToken = await ask(await plane.issueToken(NS, 'web', 'agent', AUDIENCE), { from: '127.0.0.81' });
  t.equal(byToken.status, 200, JSON.stringify(byToken.body));
  t.ok(byToken.body.AccessKeyId, 'its own credentials');
  const byAddress = await get(proxy.appPort, '127.0.0.81', '/latest/meta-data/iam/security-credentials/');
  t.equal(byAddress.status, 404, `the metadata path does not name it: ${byAddress.body.trim()}`);
});

t.test('the request itself: only GET /v1/credentials, to the endpoint by its own address', async (t) => {
  t.equal((await ask(webToken, { host: 'attacker.example' })).status, 400, 'a Host naming anything else (DNS rebinding)');
  t.equal((await ask(webToken, { path: '/v1/credentials/x' })).status, 404);
  t.equal((await ask(webToken, { path: '/v1/credentials?role=x' })).status, 404);
  t.equal((await ask(webToken, { method: 'POST' })).status, 405);
  t.equal((await ask(`Bearer ${webToken}`)).status, 200, 'a Bearer prefix is accepted');
});

/** A client run with the container variables a pod spec sets, and a token file as the kubelet writes it (no newline). */
async function client(command: string, args: string[], token: string, extra: NodeJS.ProcessEnv = {}) {
  const tokenFile = join(dir, `token-${Math.random().toString(36).slice(2)}`);
  writeFileSync(tokenFile, token);
  const home = mkdtempSync(join(dir, 'home-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    AWS_CONFIG_FILE: join(home, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://${ADDRESS}:${port}/v1/credentials`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
    ...extra,
  };
  const result = await execute(command, args, { env, timeoutMs: 60_000 });
  let out: Record<string, unknown> = {};
  for (const candidate of [result.stdout, result.stdout.trim().split('\n').pop() ?? '']) {
    try {
      out = JSON.parse(candidate) as Record<string, unknown>;
      break;
    } catch {
      // the test shows the output
    }
  }
  return { code: result.code, out, output: result.stdout + result.stderr.slice(-3000) };
}

const runners: Record<string, (token: string) => ReturnType<typeof client>> = {
  botocore: (token) => client('python3', [join(CLIENTS, 'container_credentials.py'), moto.endpoint], token),
  'aws CLI': (token) =>
    client('aws', ['sts', 'get-caller-identity', '--output', 'json', '--endpoint-url', moto.endpoint], token, {
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
    }).then((r) => ({ ...r, out: { arn: r.out.Arn ?? null } })),
  '@aws-sdk/credential-provider-http': (token) => client(process.execPath, [join(CLIENTS, 'http-credentials.mjs'), moto.endpoint], token),
};

for (const [name, run] of Object.entries(runners)) {
  t.test(`${name} resolves each pod's own role through the endpoint, and nothing with a refused token`, async (t: Test) => {
    for (const [pod, token] of [
      ['web', webToken],
      ['batch', batchToken],
    ] as const) {
      const result = await run(token);
      t.equal(result.code, 0, `${pod}: ${result.output}`);
      t.match(result.out.arn, new RegExp(`^arn:aws:sts::${ACCOUNT}:assumed-role/${pod}-role/`), `${pod} is ${pod}-role`);
    }
    const refused = await run(await plane.issueToken(NS, 'web', 'web'));
    t.equal(refused.out.arn ?? null, null, `a token for another audience gets no identity: ${refused.output.slice(0, 400)}`);
  });
}

t.test("a deleted pod's token is refused at once, though its review is kept", async (t) => {
  await plane.kubectlRunningPod(NS, 'short', { 'iam.amazonaws.com/role': 'web-role' }, '10.0.0.9', { serviceAccount: 'web' });
  const token = await plane.issueToken(NS, 'web', 'short', AUDIENCE);
  t.equal((await ask(token)).status, 200);
  await plane.kubectl(['delete', 'pod', 'short', '-n', NS, '--grace-period=0', '--force']);
  t.ok(await eventually(() => [...app.index.inNamespace(NS)].every((pod) => pod.name !== 'short'), 10_000), 'the watch saw it go');
  const after = await ask(token);
  t.equal(after.status, 403);
  t.match(after.body.Message, /short is not on this node/);
});

t.test(
  "with the DaemonSet's base RBAC alone, new tokens get 503 and the log names the component that grants TokenReview; with it, they are served",
  async (t) => {
    const manifests = join(import.meta.dirname, '..', '..', 'manifests');
    await plane.kubectl(['apply', '-f', join(manifests, 'rbac.yaml')]);
    const proxyToken = (await plane.kubectl(['create', 'token', 'kube2iam', '-n', 'kube-system', '--duration', '10m'])).trim();
    // Roles from ServiceAccounts too: the base ClusterRole lets the proxy watch them (it would never sync otherwise).
    const limited = await startTokenProxy(t, '127.0.0.43', [
      ...['--api-server', plane.apiServerUrl, '--api-token', proxyToken, '--insecure', '--node', 'node-1'],
      '--service-account-roles=fallback',
    ]);
    const limitedLog = limited.log;
    const askAt = async (token: string): Promise<number> => (await askEndpoint(limited, token)).status;
    t.equal(await askAt(batchToken), 503, 'the review is refused to the proxy, not the token to the pod');
    t.ok(await eventually(() => limitedLog.find('TokenReview failed').length > 0, 5000));
    t.match(limitedLog.find('TokenReview failed')[0], {
      status: 403,
      remedy: /needs create on tokenreviews \(manifests\/components\/container-credentials grants it\)/,
    });
    await plane.kubectl(['apply', '-f', join(manifests, 'components', 'container-credentials', 'rbac.yaml')]);
    let status = 0;
    for (const deadline = Date.now() + 10_000; status !== 200 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
      status = await askAt(batchToken);
    }
    t.equal(status, 200, "with the component's ClusterRole, the same token is served");
  },
);

t.test('with the API server down, reviewed tokens are still served and new ones get 503, never 401', async (t) => {
  const fresh = await plane.issueToken(NS, 'batch', 'batch', AUDIENCE);
  await plane.killApiServer();
  t.equal((await ask(webToken)).status, 200, 'a reviewed token');
  const answer = await ask(fresh);
  t.equal(answer.status, 503, JSON.stringify(answer.body));
  t.equal(answer.headers['retry-after'], '1');
  t.ok(await eventually(() => log.find('TokenReview failed').length > 0, 5000), 'the log says why, with a remedy');
});
