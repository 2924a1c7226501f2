// Role assignment's memory: what it keeps per role name lives only as long as some pod
// is assigned that role, so pods churning through new role names leave nothing behind.

import t from 'tap';
import { PodIndex } from '../../lib/pods/pod-index.js';
import { MotoServer } from '../harness/moto.js';
import { pod, podRolesFor, storeAt } from './fixtures.js';

const moto = await MotoServer.start();
t.teardown(() => moto.stop());

t.test('a role listing is shared by the pods assigned that role and dropped with the last of them', async (t) => {
  const store = storeAt(moto.endpoint);
  t.teardown(() => store.close());
  const index = new PodIndex();
  const assignment = podRolesFor(store, index, { enabled: false, format: 'glob' });
  for (let n = 0; n < 40; n++) index.upsert(pod({ name: `p${n}`, ip: `10.0.0.${n}`, role: `role-${n % 20}` }));
  t.equal(assignment.listingCount, 20, 'one listing per role name');
  const a = assignment.roleOf('uid-p0');
  const b = assignment.roleOf('uid-p20');
  t.ok(a?.kind === 'role' && b?.kind === 'role' && a.listing === b.listing, 'pods of one role share its listing');
  index.upsert(pod({ name: 'p0', ip: '10.0.0.0', role: 'renamed' }));
  t.equal(assignment.listingCount, 21, 'role-0 is still used by p20');
  index.remove('uid-p20');
  t.equal(assignment.listingCount, 20, 'role-0 dropped with its last pod');
  index.upsert(pod({ name: 'p1', ip: '10.0.0.1', role: 'role-1', phase: 'Succeeded' }));
  index.upsert(pod({ name: 'p2', ip: '10.0.0.2' }));
  for (let n = 3; n < 40; n++) index.remove(`uid-p${n}`);
  t.equal(assignment.listingCount, 1, 'finished, unannotated and deleted pods hold nothing: only p0’s role remains');
  index.remove('uid-p0');
  t.equal(assignment.listingCount, 0);
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
