// Roles from a pod's ServiceAccount (the IRSA annotation, eks.amazonaws.com/role-arn)
// with --service-account-roles=fallback, against a real kube-apiserver and moto: both
// contracts on one proxy at once, the metadata path by source IP and /v1/credentials by
// token, give a pod the same role; a pod's own annotation still wins; a ServiceAccount
// re-annotated moves its pods; and the namespace allow-list holds for a ServiceAccount's
// role as for a pod's.

import t, { type Test } from 'tap';
import { get } from '../harness/pod-client.js';
import { askEndpoint, AUDIENCE, BASE, startTokenProxy, tokenCluster } from './token-proxy.js';

const ADDRESS = '127.0.0.42';
const IRSA_KEY = 'eks.amazonaws.com/role-arn';
const CREDENTIALS = '/latest/meta-data/iam/security-credentials/';

const { plane } = await tokenCluster(t);

const annotateNamespace = (ns: string, allowed: string[]): Promise<string> =>
  plane.kubectl(['annotate', '--overwrite', 'namespace', ns, `iam.amazonaws.com/allowed-roles=${JSON.stringify(allowed)}`]);

for (const ns of ['team', 'locked']) await plane.kubectl(['create', 'namespace', ns]);
await annotateNamespace('team', ['irsa-*', 'own-role']);
await annotateNamespace('locked', ['own-role']);
for (const ns of ['team', 'locked']) await plane.serviceAccount(ns, 'irsa', { [IRSA_KEY]: `${BASE}irsa-one` });
await plane.kubectlRunningPod('team', 'follows', {}, '127.0.0.51', { serviceAccount: 'irsa' });
await plane.kubectlRunningPod('team', 'own', { 'iam.amazonaws.com/role': 'own-role' }, '127.0.0.52', { serviceAccount: 'irsa' });
await plane.kubectlRunningPod('locked', 'denied', {}, '127.0.0.53', { serviceAccount: 'irsa' });

const proxy = await startTokenProxy(t, ADDRESS, [
  ...plane.programConnection(),
  '--node',
  'node-1',
  '--namespace-restrictions',
  '--service-account-roles=fallback',
]);
const { appPort } = proxy;
const byToken = (token: string) => askEndpoint(proxy, token);

/** The role the metadata path lists for the pod at `ip`, and the access key it serves for it. */
async function byIp(ip: string): Promise<{ role: string; accessKeyId: string | null }> {
  const listing = await get(appPort, ip, CREDENTIALS);
  if (listing.status !== 200) return { role: `${listing.status} ${listing.body.trim()}`, accessKeyId: null };
  const document = await get(appPort, ip, `${CREDENTIALS}${listing.body}`);
  return { role: listing.body, accessKeyId: document.status === 200 ? (JSON.parse(document.body) as { AccessKeyId: string }).AccessKeyId : null };
}

/** Both contracts give the pod `role`, with the same credentials (one store entry behind both). */
async function rolesAgree(t: Test, ns: string, pod: string, ip: string, role: string): Promise<void> {
  const imds = await byIp(ip);
  t.equal(imds.role, role, `${ns}/${pod} by IP: ${role}`);
  const token = await byToken(await plane.issueToken(ns, 'irsa', pod, AUDIENCE));
  t.equal(token.status, 200, `${ns}/${pod} by token: ${JSON.stringify(token.body)}`);
  t.equal(token.body.AccessKeyId, imds.accessKeyId, 'the same credentials by either contract');
}

t.test("a pod without its own annotation takes its ServiceAccount's role, by IP and by token alike", async (t) => {
  await rolesAgree(t, 'team', 'follows', '127.0.0.51', 'irsa-one');
});

t.test("with fallback, a pod's own annotation wins over its ServiceAccount's", async (t) => {
  await rolesAgree(t, 'team', 'own', '127.0.0.52', 'own-role');
});

t.test('a ServiceAccount annotated anew moves the pods that follow it', async (t) => {
  await plane.kubectl(['annotate', '--overwrite', 'serviceaccount', 'irsa', '-n', 'team', `${IRSA_KEY}=${BASE}irsa-two`]);
  let role = '';
  for (const deadline = Date.now() + 10_000; Date.now() < deadline && role !== 'irsa-two'; await new Promise((r) => setTimeout(r, 100))) {
    role = (await byIp('127.0.0.51')).role;
  }
  await rolesAgree(t, 'team', 'follows', '127.0.0.51', 'irsa-two');
  t.equal((await byIp('127.0.0.52')).role, 'own-role', 'a pod with its own annotation stays');
});

t.test("the namespace allow-list refuses a ServiceAccount's role as it would a pod's", async (t) => {
  const imds = await get(appPort, '127.0.0.53', CREDENTIALS);
  t.equal(imds.status, 404);
  t.match(imds.body, /irsa-one is not allowed in namespace locked/);
  const token = await byToken(await plane.issueToken('locked', 'irsa', 'denied', AUDIENCE));
  t.equal(token.status, 403);
  t.match(token.body.Message, /irsa-one is not allowed in namespace locked/);
});
