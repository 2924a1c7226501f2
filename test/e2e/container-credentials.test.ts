// End to end, the token contract beside the kube2iam one on a node built from real parts
// (test/e2e/node.ts), dual stack: the built program started with --container-credentials
// puts 169.254.170.23 and fd00:ec2::23 on its own dummy link and serves /v1/credentials
// on port 80 there, while the DNAT rule keeps sending 169.254.169.254 to it. Pods present
// tokens the API server issued for them (TokenRequest bound to the pod, written as the
// kubelet writes a projected volume), and botocore, the aws CLI and the JavaScript SDK's
// HTTP provider resolve their credentials with the SDKs' own container variables.
// moto listens on port 5000 here, leaving port 80 of the node's addresses to the proxy.

import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { curlIn } from '../harness/curl.js';
import { ACCOUNT, CLIENTS, TestNode, type Pod } from './node.js';

const AUDIENCE = 'kube2iam';
const ENDPOINT_V4 = 'http://169.254.170.23/v1/credentials';
const ENDPOINT_V6 = 'http://[fd00:ec2::23]/v1/credentials';

const node = await TestNode.start({ motoPort: 5000, ipv6: true });
t.teardown(() => node.stop());
const { cart, ledger, sneaky } = node.pods;
// No ServiceAccount admission runs here: the pods' own (default) accounts are made by hand.
for (const ns of ['shop', 'billing']) await node.plane.serviceAccount(ns, 'default');
// This machine's kernel has no dummy links (a test below shows the start refused with the
// remedy), so the addresses go on the node's loopback, as that remedy says.
await node.startProxy(['--container-credentials', '--container-credentials-link=lo']);

/** Writes a token into the pod's files as the kubelet writes a projected token (no newline); returns its path. */
function tokenFile(pod: Pod, token: string, name = 'token'): string {
  const path = join(pod.home, name);
  writeFileSync(path, token);
  return path;
}

/** A token the API server issues for the pod, for this endpoint's audience; null: the API server's own. */
function issue(pod: Pod, audience: string | null = AUDIENCE): Promise<string> {
  return node.plane.issueToken(pod.spec.namespace, 'default', pod.spec.name, audience ?? undefined);
}

interface Resolved {
  exit: number | null;
  arn: string | null;
  /** botocore's credential method. */
  method?: string | null;
  output: string;
}

function parsed(stdout: string): Record<string, unknown> {
  for (const candidate of [stdout, stdout.trim().split('\n').pop() ?? '']) {
    try {
      return JSON.parse(candidate) as Record<string, unknown>;
    } catch {
      // not this one
    }
  }
  return {};
}

type Client = (pod: Pod, env: Record<string, string>) => Promise<Resolved>;

const CLIENT_RUNS: Record<string, Client> = {
  botocore: async (pod, env) => {
    const result = await pod.run('python3', [join(CLIENTS, 'container_credentials.py'), node.podStsEndpoint], env);
    const out = parsed(result.stdout);
    return { exit: result.code, arn: (out.arn as string | null) ?? null, method: (out.method as string | null) ?? null, output: result.stdout + result.stderr };
  },
  'aws CLI': async (pod, env) => {
    const result = await pod.run('aws', ['sts', 'get-caller-identity', '--output', 'json', '--endpoint-url', node.podStsEndpoint], {
      ...env,
      AWS_REGION: 'us-east-1',
      AWS_DEFAULT_REGION: 'us-east-1',
    });
    return {
      exit: result.code,
      arn: result.code === 0 ? ((parsed(result.stdout).Arn as string | undefined) ?? null) : null,
      output: result.stdout + result.stderr.slice(-2000),
    };
  },
  '@aws-sdk/credential-provider-http': async (pod, env) => {
    const result = await pod.run(process.execPath, [join(CLIENTS, 'http-credentials.mjs'), node.podStsEndpoint], env);
    return { exit: result.code, arn: (parsed(result.stdout).arn as string | null) ?? null, output: result.stdout + result.stderr };
  },
};

const contract = (endpoint: string, file: string): Record<string, string> => ({
  AWS_CONTAINER_CREDENTIALS_FULL_URI: endpoint,
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: file,
});

const roleArn = (role: string): RegExp => new RegExp(`^arn:aws:sts::${ACCOUNT}:assumed-role/${role}/`);

t.test('the proxy put the endpoint addresses on the link it was given', async (t) => {
  const shown = await node.node.ip('-o', 'addr', 'show', 'dev', 'lo');
  t.match(shown, /inet 169\.254\.170\.23\/32/);
  t.match(shown, /inet6 fd00:ec2::23\/128/);
});

for (const [name, resolve] of Object.entries(CLIENT_RUNS)) {
  t.test(`${name}: each pod gets its own role through 169.254.170.23`, async (t: Test) => {
    for (const pod of [cart, ledger]) {
      const result = await resolve(pod, contract(ENDPOINT_V4, tokenFile(pod, await issue(pod))));
      t.equal(result.exit, 0, `${pod.spec.name}: ${result.output.slice(-1500)}`);
      t.match(result.arn, roleArn(pod.spec.role ?? ''), `${pod.spec.name} is ${pod.spec.role}`);
      if (result.method !== undefined) t.equal(result.method, 'container-role', 'from the container provider');
    }
  });
}

t.test('over IPv6, at fd00:ec2::23, the same', async (t) => {
  const file = tokenFile(cart, await issue(cart));
  for (const name of ['botocore', '@aws-sdk/credential-provider-http']) {
    const result = await (CLIENT_RUNS[name] as Client)(cart, contract(ENDPOINT_V6, file));
    t.match(result.arn, roleArn('shop-cart'), `${name}: ${result.output.slice(-800)}`);
  }
});

t.test('both contracts on one node at once: the metadata address still names the same role by IP', async (t) => {
  const listing = await cart.metadata('/latest/meta-data/iam/security-credentials/');
  t.equal(listing.status, 200);
  t.equal(listing.body, 'shop-cart');
});

t.test('a rotated token file is read again on the next call', async (t) => {
  const file = tokenFile(cart, 'not-a-token', 'rotating');
  const before = await (CLIENT_RUNS.botocore as Client)(cart, contract(ENDPOINT_V4, file));
  t.equal(before.arn, null, 'a bad token: nothing');
  tokenFile(cart, await issue(cart), 'rotating');
  const after = await (CLIENT_RUNS.botocore as Client)(cart, contract(ENDPOINT_V4, file));
  t.match(after.arn, roleArn('shop-cart'), 'the kubelet rotated it: credentials');
});

t.test('refused, by every client: another pod’s token, an expired token, another audience’s, a role the namespace denies', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const uid = (pod: Pod): Promise<string> => node.plane.kubectl(['get', 'pod', pod.spec.name, '-n', pod.spec.namespace, '-o', 'jsonpath={.metadata.uid}']);
  const expired = node.plane.mintToken({
    sub: 'system:serviceaccount:shop:default',
    aud: [AUDIENCE],
    iat: now - 7200,
    nbf: now - 7200,
    exp: now - 3600,
    'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'default', uid: 'x' }, pod: { name: 'cart', uid: (await uid(cart)).trim() } },
  });
  const cases: Array<[string, Pod, string, number]> = [
    ["ledger's token, from cart", cart, await issue(ledger), 403],
    ['an expired token', cart, expired, 401],
    ["a token for the API server's audience", cart, await issue(cart, null), 401],
    ['sneaky, whose role its namespace denies', sneaky, await issue(sneaky), 403],
  ];
  for (const [what, pod, token, status] of cases) {
    const answer = await curlIn(pod.ns.prefix, ENDPOINT_V4, { headers: { authorization: token } });
    t.equal(answer.status, status, `${what}: ${answer.body}`);
    const file = tokenFile(pod, token, 'refused');
    for (const [name, resolve] of Object.entries(CLIENT_RUNS)) {
      const result = await resolve(pod, contract(ENDPOINT_V4, file));
      t.equal(result.arn, null, `${what}: ${name} gets no identity`, { output: result.output.slice(-600) });
    }
  }
  t.match(node.proxyLog(), /container-credentials addresses in place/);
});

t.test(
  'restarted, the proxy finds its addresses in place; asked, it removes them at exit; on a kernel without dummy links its own link is refused with the remedy',
  async (t) => {
    await node.stopProxy();
    await node.startProxy(['--container-credentials', '--container-credentials-link=lo', '--iptables-remove-on-exit']);
    t.match(node.proxyLog(), /container-credentials addresses in place.*added="?\[\]/, 'nothing added the second time');
    t.equal(await node.stopProxy(), 0);
    const left = await node.node.ip('-o', 'addr', 'show', 'dev', 'lo');
    t.notMatch(left, /169\.254\.170\.23|fd00:ec2::23/, 'the addresses went with the proxy');
    t.match(left, /inet 127\.0\.0\.1\/8/, 'the loopback itself is untouched');
    t.match(left, /inet 169\.254\.169\.254\/32/, "and the node's other addresses stay");
    const refused = await node.startProxy(['--container-credentials']).then(
      () => null,
      (error: Error) => error.message,
    );
    if (refused === null) {
      t.pass('this kernel makes dummy links');
      return;
    }
    t.match(refused, /cannot make dummy links \(no dummy module\) for kube2iam0: set --container-credentials-link=lo/);
  },
);
