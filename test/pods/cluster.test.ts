// The pod index following a real kube-apiserver: annotations, status patches, IP reuse,
// namespaces, restarts and re-lists.

import t, { type Test } from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentialKey } from '../../lib/credentials/store.js';
import { CallerResolver } from '../../lib/pods/callers.js';
import { connectKubernetes, type KubernetesConnection, type ListPage } from '../../lib/pods/kubernetes.js';
import { ADMIN_TOKEN, KubernetesControlPlane } from '../harness/kubernetes.js';
import { MotoServer } from '../harness/moto.js';
import { BASE, PodStack, type StackOptions } from './stack.js';
import { eventually } from '../harness/wait.js';
import { nth } from '../harness/nth.js';

const plane = await KubernetesControlPlane.start();
const moto = await MotoServer.start();
t.teardown(async () => {
  await plane.stop();
  await moto.stop();
});

let counter = 0;
async function stackWithNamespace(t: Test, options: StackOptions = {}, allowedRoles?: string[]): Promise<{ stack: PodStack; ns: string }> {
  const ns = `ns${counter++}`;
  const stack = new PodStack(plane, moto, options);
  t.teardown(() => stack.stop());
  await stack.namespace(ns, allowedRoles);
  await stack.source.whenSynced();
  return { stack, ns };
}

t.test('an annotated pod is indexed by the IP its status reports, and its credentials are fetched', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  const uid = await stack.createPod(ns, 'web', { role: 'web-role' });
  t.ok(await eventually(() => stack.index.get(uid) !== undefined), 'known before it has an IP');
  const early = stack.podRoles.roleOf(uid);
  t.equal(early?.kind, 'role', 'credentials are fetched before the pod has an IP');
  await stack.setStatus(ns, 'web', 'Running', '10.100.0.1');
  t.ok(await eventually(() => stack.ownerName('10.100.0.1') === 'web'));
  const assignment = stack.podRoles.roleOf(uid);
  if (assignment?.kind !== 'role') throw new Error('no role');
  t.equal(assignment.roleArn, `${BASE}web-role`);
  t.equal(assignment.name, 'web-role');
  await assignment.entry.fetching;
  t.ok(assignment.entry.current(Date.now()), 'credentials in memory');
  t.same(assignment.entry.parameters, { roleArn: `${BASE}web-role`, externalId: null, sessionName: `${ns}.web` });
});

t.test('pods without a role, hostNetwork pods and finished pods get nothing', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  const plain = await stack.createPod(ns, 'plain');
  await stack.setStatus(ns, 'plain', 'Running', '10.100.1.1');
  await stack.createPod(ns, 'host', { role: 'r', hostNetwork: true });
  await stack.setStatus(ns, 'host', 'Running', '192.168.50.1');
  const job = await stack.createPod(ns, 'job', { role: 'job-role' });
  await stack.setStatus(ns, 'job', 'Running', '10.100.1.2');
  t.ok(await eventually(() => stack.ownerName('10.100.1.2') === 'job'));
  t.equal(stack.ownerName('10.100.1.1'), 'plain');
  t.match(stack.podRoles.roleOf(plain), { kind: 'none', reason: 'no role annotation and no default role' });
  t.equal(stack.ownerName('192.168.50.1'), undefined, 'hostNetwork pods are not indexed');
  await stack.setStatus(ns, 'job', 'Succeeded');
  t.ok(await eventually(() => stack.ownerName('10.100.1.2') === undefined), 'a finished pod leaves the index');
  t.equal(stack.podRoles.roleOf(job), undefined);
  t.same(
    stack.store.ownersOf(credentialKey({ roleArn: `${BASE}job-role`, externalId: null, sessionName: `${ns}.job` }), 10),
    [],
    'and its credentials are released',
  );
});

t.test('IP reuse: the old pod terminates before the new one gets its IP', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  await stack.createPod(ns, 'old', { role: 'old-role' });
  await stack.setStatus(ns, 'old', 'Running', '10.100.2.1');
  t.ok(await eventually(() => stack.ownerName('10.100.2.1') === 'old'));
  await stack.terminate(ns, 'old');
  await stack.createPod(ns, 'new', { role: 'new-role' });
  await stack.setStatus(ns, 'new', 'Running', '10.100.2.1');
  t.ok(await eventually(() => stack.ownerName('10.100.2.1') === 'new'), 'the live claim wins');
  await stack.forceDelete(ns, 'old');
  await sleep(200);
  t.equal(stack.ownerName('10.100.2.1'), 'new', 'the old pod’s DELETED event leaves the new entry');
});

t.test('IP reuse: the new pod gets the IP while the old one still looks alive', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  await stack.createPod(ns, 'old', { role: 'old-role' });
  await stack.setStatus(ns, 'old', 'Running', '10.100.3.1');
  await stack.createPod(ns, 'new', { role: 'new-role' });
  await stack.setStatus(ns, 'new', 'Running', '10.100.3.1');
  t.ok(await eventually(() => stack.ownerName('10.100.3.1') === null), 'ambiguous: nobody gets credentials');
  const caller = await stack.callers.resolve('10.100.3.1').then((c) => c.kind);
  t.equal(caller, 'unknown', 'a request from the IP is not answered with either role');
  await stack.forceDelete(ns, 'old');
  t.ok(await eventually(() => stack.ownerName('10.100.3.1') === 'new'));
});

t.test('a terminating pod that still holds its IP is confirmed live and answered as itself', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  await stack.createPod(ns, 'leaving', { role: 'leaving-role' });
  await stack.setStatus(ns, 'leaving', 'Running', '10.100.16.1');
  await stack.terminate(ns, 'leaving');
  t.ok(await eventually(() => stack.index.lookup('10.100.16.1')?.owner?.terminating === true));
  t.equal(stack.callers.known('10.100.16.1'), null, 'no answer from the index alone');
  const lookups = stack.callers.liveLookups;
  const caller = await stack.callers.resolve('10.100.16.1');
  t.equal(caller.kind === 'pod' ? caller.pod.name : caller.reason, 'leaving', 'still its own credentials while it shuts down');
  t.equal(stack.callers.liveLookups, lookups + 1, 'after one live lookup');
});

t.test('IP reuse before the watch says so: the new pod is never answered as the terminating one', async (t) => {
  // The request waits all of waitMs for a watch that never comes; the live read within it
  // must still be back on a loaded machine, or the reason is "cannot confirm" (as safe).
  const { stack, ns } = await stackWithNamespace(t, { waitMs: 4000 });
  await stack.createPod(ns, 'old', { role: 'old-role' });
  await stack.setStatus(ns, 'old', 'Running', '10.100.17.1');
  await stack.terminate(ns, 'old');
  t.ok(await eventually(() => stack.index.lookup('10.100.17.1')?.owner?.terminating === true));
  // The watch falls behind: the index still holds the terminating pod while the API
  // server already has the IP on a new pod, whose app asks at once.
  stack.source.stop();
  await stack.containersStopped(ns, 'old');
  await stack.createPod(ns, 'new', { role: 'new-role' });
  await stack.setStatus(ns, 'new', 'Running', '10.100.17.1');
  const caller = await stack.callers.resolve('10.100.17.1');
  t.equal(caller.kind, 'unknown', 'no credentials rather than the old pod’s');
  t.match(caller.kind === 'unknown' ? caller.reason : '', /no longer holds IP 10\.100\.17\.1/);
});

t.test('a terminating pod whose containers have all exited gives up its IP at once', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  await stack.createPod(ns, 'done', { role: 'done-role' });
  await stack.setStatus(ns, 'done', 'Running', '10.100.18.1');
  await stack.terminate(ns, 'done');
  await stack.containersStopped(ns, 'done');
  t.ok(await eventually(() => stack.ownerName('10.100.18.1') === undefined), 'unindexed by its status alone');
});

t.test('--resolve-duplicate-cache-ips settles an ambiguous IP with a live lookup', async (t) => {
  const stackOptions: StackOptions = { waitMs: 200 };
  const { ns } = await stackWithNamespace(t, stackOptions);
  const resolver = new PodStack(plane, moto, { ...stackOptions, resolveDuplicates: true });
  t.teardown(() => resolver.stop());
  await resolver.source.whenSynced();
  await resolver.createPod(ns, 'pending-old', { role: 'a' });
  await resolver.setStatus(ns, 'pending-old', 'Pending', '10.100.4.1');
  await resolver.createPod(ns, 'running-new', { role: 'b' });
  await resolver.setStatus(ns, 'running-new', 'Running', '10.100.4.1');
  t.ok(await eventually(() => resolver.ownerName('10.100.4.1') === null));
  const caller = await resolver.callers.resolve('10.100.4.1');
  t.equal(caller.kind === 'pod' ? caller.pod.name : caller.reason, 'running-new');
});

t.test('a request from an IP the index does not know yet waits for the watch, woken by the event', async (t) => {
  const { stack, ns } = await stackWithNamespace(t, { waitMs: 5000 });
  const started = Date.now();
  const pending = stack.callers.resolve('10.100.5.1');
  await sleep(100);
  await stack.createPod(ns, 'late', { role: 'late-role' });
  await stack.setStatus(ns, 'late', 'Running', '10.100.5.1');
  const caller = await pending;
  const waited = Date.now() - started;
  t.equal(caller.kind === 'pod' ? caller.pod.name : caller.reason, 'late');
  t.ok(waited < 2000, `answered ${waited} ms after asking, well inside the bound`);
  const unknownStarted = Date.now();
  const unknown = await new CallerResolver(stack.index, { waitMs: 300, liveClaims: null, resolveDuplicates: false }).resolve('10.100.5.99');
  t.equal(unknown.kind, 'unknown');
  t.ok(Date.now() - unknownStarted >= 290, 'an unknown IP gets its answer after the bound');
});

t.test('--node watches only that node’s pods', async (t) => {
  const { stack, ns } = await stackWithNamespace(t, { node: 'node-a' });
  await stack.createPod(ns, 'mine', { role: 'r', node: 'node-a' });
  await stack.setStatus(ns, 'mine', 'Running', '10.100.16.1');
  await stack.createPod(ns, 'theirs', { role: 'r', node: 'node-b' });
  await stack.setStatus(ns, 'theirs', 'Running', '10.100.6.2');
  t.ok(await eventually(() => stack.ownerName('10.100.16.1') === 'mine'));
  await sleep(300);
  t.equal(stack.ownerName('10.100.6.2'), undefined);
});

t.test('namespace allow-lists are applied, and re-applied when the annotation changes', async (t) => {
  const { stack, ns } = await stackWithNamespace(t, { restrictions: { enabled: true, format: 'glob' }, defaultRole: `${BASE}fallback` }, ['allowed-*']);
  const ok = await stack.createPod(ns, 'ok', { role: 'allowed-app' });
  const bad = await stack.createPod(ns, 'bad', { role: 'admin' });
  const fallback = await stack.createPod(ns, 'fallback');
  t.ok(
    await eventually(
      () => stack.podRoles.roleOf(bad) !== undefined && stack.podRoles.roleOf(ok) !== undefined && stack.podRoles.roleOf(fallback) !== undefined,
    ),
  );
  t.equal(stack.podRoles.roleOf(ok)?.kind, 'role');
  t.match(stack.podRoles.roleOf(bad), { kind: 'none', reason: `role ${BASE}admin is not allowed in namespace ${ns}` });
  t.same(
    stack.store.ownersOf(credentialKey({ roleArn: `${BASE}admin`, externalId: null, sessionName: `${ns}.bad` }), 10),
    [],
    'no credentials fetched for a forbidden role',
  );
  t.match(stack.podRoles.roleOf(fallback), { kind: 'role', roleArn: `${BASE}fallback` }, 'the default role is exempt (as in kube2iam)');
  await stack.annotateNamespace(ns, ['admin']);
  t.ok(await eventually(() => stack.podRoles.roleOf(bad)?.kind === 'role'), 'allowed after the namespace changes');
  t.ok(await eventually(() => stack.podRoles.roleOf(ok)?.kind === 'none'), 'and the other is now forbidden');
  await stack.core.patchNamespace(
    { name: ns, body: { metadata: { annotations: { 'iam.amazonaws.com/allowed-roles': '["broken' } } } },
    (await import('@kubernetes/client-node')).setHeaderOptions('Content-Type', 'application/merge-patch+json'),
  );
  t.ok(await eventually(() => stack.podRoles.roleOf(bad)?.kind === 'none'), 'malformed JSON denies');
  t.ok(
    stack.warnings.some((w) => /not valid JSON/.test(w)),
    'and is logged',
  );
});

t.test('the API server killed and restarted: the index keeps serving, then catches up through a re-list', async (t) => {
  const { stack, ns } = await stackWithNamespace(t);
  await stack.createPod(ns, 'steady', { role: 'steady-role' });
  await stack.setStatus(ns, 'steady', 'Running', '10.100.7.1');
  await stack.createPod(ns, 'doomed', { role: 'doomed-role' });
  await stack.setStatus(ns, 'doomed', 'Running', '10.100.7.2');
  t.ok(await eventually(() => stack.ownerName('10.100.7.1') === 'steady' && stack.ownerName('10.100.7.2') === 'doomed'));
  const relists = stack.source.pods.relists;

  await plane.killApiServer();
  await sleep(500);
  t.equal(stack.ownerName('10.100.7.1'), 'steady', 'still serving while the API server is down');
  // Changes the watch cannot see: a pod removed in etcd, and the revision moved on, so the
  // old resourceVersion is gone when the API server returns (410, then a re-list).
  await plane.etcdctl(['del', `/registry/pods/${ns}/doomed`]);
  await plane.etcdctl(['put', '/k2i-test/bump', 'x']);
  await plane.startApiServer();

  t.ok(await eventually(() => stack.ownerName('10.100.7.2') === undefined, 15_000), 'the pod removed while it was down is gone');
  t.ok(stack.source.pods.relists > relists, `re-listed (${stack.source.pods.relists - relists} times)`);
  t.ok(stack.source.pods.restarts > 0, 'the watch restarted after errors');
  t.equal(stack.ownerName('10.100.7.1'), 'steady');
  await stack.createPod(ns, 'after', { role: 'r' });
  await stack.setStatus(ns, 'after', 'Running', '10.100.7.3');
  t.ok(await eventually(() => stack.ownerName('10.100.7.3') === 'after'), 'new events flow again');
});

t.test('--api-server with --api-token (and --insecure) reaches the API server without a kubeconfig', async (t) => {
  const connection = { kubeconfig: null, apiServer: plane.apiServerUrl, apiToken: ADMIN_TOKEN, insecure: true };
  const page = await listPods(t, connection);
  t.ok(page.resourceVersion !== '', 'listed pods');
  await t.rejects(
    listPods(t, { ...connection, insecure: false }),
    { message: /self-signed certificate/ },
    'without --insecure the self-signed certificate is refused',
  );
  await t.rejects(
    listPods(t, { ...connection, apiToken: 'wrong' }),
    { name: 'ApiError', message: /: 401 / },
    'a wrong token is refused with the API server’s status',
  );
});

t.test('a kubeconfig whose user runs an exec credential plugin (client-node loads it) reaches the API server', async (t) => {
  const dir = t.testdir({
    'plugin.sh': `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"${ADMIN_TOKEN}"}}'\n`,
  });
  chmodSync(join(dir, 'plugin.sh'), 0o755);
  const config = JSON.parse(readFileSync(plane.kubeconfig, 'utf8')) as { users: Array<{ user: unknown }> };
  nth(config.users, 0).user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: join(dir, 'plugin.sh'), interactiveMode: 'Never' } };
  writeFileSync(join(dir, 'kubeconfig'), JSON.stringify(config));
  const page = await listPods(t, { kubeconfig: join(dir, 'kubeconfig'), apiServer: null, apiToken: null, insecure: false });
  t.ok(page.resourceVersion !== '', 'listed pods with the plugin’s token, verifying the server against the kubeconfig’s CA');
});

t.test('in a cluster: the service account’s CA verifies the server, and a rotated token is read again after the API server refuses the old one', async (t) => {
  const dir = t.testdir({ token: 'expired-token\n', 'ca.crt': readFileSync(plane.caFile) });
  const api = new URL(plane.apiServerUrl);
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  process.env.KUBERNETES_SERVICE_HOST = api.hostname;
  process.env.KUBERNETES_SERVICE_PORT = api.port;
  t.teardown(() => {
    for (const [name, value] of [
      ['KUBERNETES_SERVICE_HOST', saved.host],
      ['KUBERNETES_SERVICE_PORT', saved.port],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  const client = await connectKubernetes({ kubeconfig: null, apiServer: null, apiToken: null, insecure: false }, dir);
  t.teardown(() => client.close());
  await t.rejects(client.list('/api/v1/pods', { limit: 1 }), { name: 'ApiError', message: /: 401 / }, 'the old token is refused');
  writeFileSync(join(dir, 'token'), `${ADMIN_TOKEN}\n`); // the kubelet's rotation
  const page = await client.list('/api/v1/pods', { limit: 1 });
  t.ok(page.resourceVersion !== '', 'the next request carries the new token, with no restart');
  writeFileSync(join(dir, 'token'), 'later-token\n');
  t.ok(
    (await client.list('/api/v1/pods', { limit: 1 })).resourceVersion !== '',
    'a working token is not re-read on every request (once a minute, as client-go)',
  );
});

t.test('outside a cluster with no connection flags, the client says so', async (t) => {
  const saved = process.env.KUBERNETES_SERVICE_HOST;
  delete process.env.KUBERNETES_SERVICE_HOST;
  t.teardown(() => {
    if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
  });
  await t.rejects(
    connectKubernetes({ kubeconfig: null, apiServer: null, apiToken: null, insecure: false }, t.testdir({})),
    /not running in a Kubernetes cluster/,
  );
});

async function listPods(t: Test, connection: KubernetesConnection): Promise<ListPage> {
  const client = await connectKubernetes(connection);
  t.teardown(() => client.close());
  return client.list('/api/v1/pods', { limit: 10 });
}
