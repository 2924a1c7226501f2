// Role assignment's memory: what it keeps per role name lives only as long as some pod
// is assigned that role, so pods churning through new role names leave nothing behind.

import t from 'tap';
import { PodIndex } from '../../lib/pods/pod-index.js';
import { MotoServer } from '../harness/moto.js';
import { pod, podRolesFor, storeAt } from './fixtures.js';

const moto = await MotoServer.start();
t.teardown(() => moto.stop());

t.test('a pod’s role follows its annotation and goes with it; the credential keys in use follow the pods', async (t) => {
  const store = storeAt(moto.endpoint);
  t.teardown(() => store.close());
  const index = new PodIndex();
  const podRoles = podRolesFor(store, index, { enabled: false, format: 'glob' });
  for (let n = 0; n < 40; n++) index.upsert(pod({ name: `p${n}`, ip: `10.0.0.${n}`, role: `role-${n % 20}` }));
  const a = podRoles.roleOf('uid-p0');
  const b = podRoles.roleOf('uid-p20');
  t.ok(a?.kind === 'role' && b?.kind === 'role' && a.name === 'role-0' && a.entry !== b.entry, 'one role, each pod its own workload’s key');
  t.equal(store.size, 40);
  index.upsert(pod({ name: 'p0', ip: '10.0.0.0', role: 'renamed' }));
  t.match(podRoles.roleOf('uid-p0'), { kind: 'role', name: 'renamed' });
  index.upsert(pod({ name: 'p1', ip: '10.0.0.1', role: 'role-1', phase: 'Succeeded' }));
  t.equal(podRoles.roleOf('uid-p1'), undefined, 'a finished pod gets nothing');
  index.upsert(pod({ name: 'p2', ip: '10.0.0.2' }));
  t.match(podRoles.roleOf('uid-p2'), { kind: 'none', reason: 'no role annotation and no default role' });
  index.remove('uid-p3');
  t.equal(podRoles.roleOf('uid-p3'), undefined, 'a deleted pod’s decision goes with it');
  t.equal(store.health(Date.now()).inUse, 37, 'the keys of the finished, unannotated and deleted pods are no longer in use');
});

t.test('a role too long to check against its namespace’s regexp allow-list is denied, saying so', async (t) => {
  const store = storeAt(moto.endpoint);
  t.teardown(() => store.close());
  const index = new PodIndex();
  const assignment = podRolesFor(store, index, { enabled: true, format: 'regexp' });
  assignment.namespaceUpdated('default', {
    'iam.amazonaws.com/allowed-roles': JSON.stringify(Array.from({ length: 100 }, (_, n) => `(.*-prod-)+(.*-)*x${n}.*reader`).concat(['app'])),
  });
  index.upsert(pod({ name: 'long', ip: '10.0.1.1', role: `${'-prod-/'.repeat(70)}reader` }));
  index.upsert(pod({ name: 'short', ip: '10.0.1.2', role: 'app' }));
  t.match(assignment.roleOf('uid-long'), {
    kind: 'none',
    reason: /^role arn:aws:iam::123456789012:role\/.* is too long to check against the regexp allow-list of namespace default$/,
  });
  t.match(assignment.roleOf('uid-short'), { kind: 'role' }, 'a short role is matched');
});
