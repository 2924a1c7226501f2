// Pods and namespaces from a file: the example file, a file kubectl wrote from a real
// API server, reloads, and a broken file that leaves the last good state in place.

import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PodIndex } from '../../lib/pods/pod-index.js';
import type { PodRoles } from '../../lib/pods/pod-roles.js';
import { PodsFileSource } from '../../lib/pods/pods-file.js';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { MotoServer } from '../harness/moto.js';
import { KEYS, podRolesFor, storeAt } from './fixtures.js';
import { BASE } from './stack.js';
import { eventually } from '../harness/wait.js';

const EXAMPLE = new URL('../../manifests/examples/pods.yaml', import.meta.url).pathname;
const moto = await MotoServer.start();
t.teardown(() => moto.stop());

function load(
  t: { teardown: (fn: () => void) => void },
  path: string,
  restrictions = false,
): { index: PodIndex; assignment: PodRoles; source: PodsFileSource; errors: unknown[] } {
  const store = storeAt(moto.endpoint);
  const index = new PodIndex();
  const assignment = podRolesFor(store, index, { enabled: restrictions });
  const errors: unknown[] = [];
  const source = new PodsFileSource(path, index, assignment, KEYS, null, (e) => errors.push(e));
  t.teardown(() => {
    source.stop();
    store.close();
  });
  return { index, assignment, source, errors };
}

t.test('the example pods file: pods by IP, roles and namespace allow-lists', async (t) => {
  const { index, assignment } = load(t, EXAMPLE, true);
  t.equal(index.size, 4);
  const api = index.lookup('127.0.0.2')?.owner;
  t.equal(api?.name, 'api-7d4b9c8f6-x2x9z');
  t.equal(api?.workload, 'api', 'the Deployment is the workload');
  t.match(assignment.roleOf(api?.uid ?? ''), { kind: 'role', roleArn: `${BASE}payments-api`, name: 'payments-api' });
  t.match(assignment.roleOf(index.lookup('127.0.0.3')?.owner?.uid ?? ''), { kind: 'none', reason: `role ${BASE}admin is not allowed in namespace payments` });
  t.match(assignment.roleOf(index.lookup('127.0.0.4')?.owner?.uid ?? ''), { kind: 'role', roleArn: `${BASE}web-frontend` });
  t.match(assignment.roleOf(index.lookup('127.0.0.5')?.owner?.uid ?? ''), { kind: 'none' });
  t.equal(index.lookup('127.0.0.9'), undefined);
});

t.test('the file is reloaded when it changes; a broken file keeps the last good state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'k2i-podsfile-'));
  const path = join(dir, 'pods.yaml');
  const original = readFileSync(EXAMPLE, 'utf8');
  writeFileSync(path, original);
  const { index, source, errors } = load(t, path);
  t.equal(index.size, 4);
  // Replaced, as editors and shell redirections do.
  writeFileSync(`${path}.new`, original.replace('podIP: 127.0.0.4, podIPs: [{ ip: 127.0.0.4 }]', 'podIP: 127.0.0.40, podIPs: [{ ip: 127.0.0.40 }]'));
  renameSync(`${path}.new`, path);
  t.ok(await eventually(() => index.lookup('127.0.0.40')?.owner?.name === 'frontend', 3000), 'reloaded after a replace');
  t.equal(index.lookup('127.0.0.4'), undefined);
  const loads = source.loads;
  writeFileSync(path, 'items: [ {');
  t.ok(await eventually(() => errors.length > 0, 3000), 'the broken file is reported');
  t.equal(source.loads, loads);
  t.equal(index.lookup('127.0.0.40')?.owner?.name, 'frontend', 'and the last good state stays');
  writeFileSync(
    path,
    JSON.stringify({ kind: 'PodList', items: [{ metadata: { name: 'solo', namespace: 'x' }, status: { phase: 'Running', podIP: '127.0.0.7' } }] }),
  );
  t.ok(await eventually(() => index.lookup('127.0.0.7')?.owner?.name === 'solo', 3000), 'JSON and PodList work too, and hand-written pods need no UID');
  t.equal(index.size, 1, 'pods not in the new file are gone');
});

t.test('a file written by kubectl get pods,namespaces -o yaml from a real API server', async (t) => {
  const plane = await KubernetesControlPlane.start();
  t.teardown(() => plane.stop());
  await plane.kubectl(['create', 'namespace', 'team']);
  await plane.kubectl(['annotate', 'namespace', 'team', 'iam.amazonaws.com/allowed-roles=["team-*"]']);
  await plane.kubectlRunningPod('team', 'worker', { 'iam.amazonaws.com/role': 'team-worker' }, '10.9.0.1');
  const dir = mkdtempSync(join(tmpdir(), 'k2i-podsfile-'));
  const path = join(dir, 'pods.yaml');
  writeFileSync(path, await plane.kubectl(['get', 'pods,namespaces', '-A', '-o', 'yaml']));
  const { index, assignment } = load(t, path, true);
  const worker = index.lookup('10.9.0.1')?.owner;
  t.equal(worker?.name, 'worker');
  t.match(assignment.roleOf(worker?.uid ?? ''), { kind: 'role', roleArn: `${BASE}team-worker` }, 'allowed by the namespace annotation from the same file');
});
