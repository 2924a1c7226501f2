import t from 'tap';
import { PodIndex } from '../../lib/pods/pod-index.js';
import { normalizeIp } from '../../lib/pods/ip.js';
import { podRecord } from '../../lib/pods/pod.js';
import { KEYS, pod } from './fixtures.js';

const owner = (index: PodIndex, ip: string): string | null | undefined => {
  const slot = index.lookup(ip);
  return slot === undefined ? undefined : (slot.owner?.name ?? null);
};

t.test('IP addresses are normalised: IPv4-mapped IPv6 and IPv6 case', async (t) => {
  t.equal(normalizeIp('::ffff:10.1.2.3'), '10.1.2.3');
  t.equal(normalizeIp('::FFFF:10.1.2.3'), '10.1.2.3');
  t.equal(normalizeIp('10.1.2.3'), '10.1.2.3');
  t.equal(normalizeIp('FD00::1'), 'fd00::1');
  for (const spelling of ['fd00:0:0::1', 'FD00::0001', 'fd00:0000:0000:0000:0000:0000:0000:0001', ' fd00::1 '])
    t.equal(normalizeIp(spelling), 'fd00::1', `${spelling}: one key`);
  t.equal(normalizeIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'the longest run of zeros is the one compressed');
  t.equal(normalizeIp('::ffff:a00:1'), '10.0.0.1', 'a mapped IPv4 address in hex is IPv4 too');
  t.equal(normalizeIp('fe80::1%eth0'), null, 'a zone index is no pod IP');
  t.equal(normalizeIp('010.0.0.1'), null, 'leading zeros are not an IPv4 address');
  t.equal(normalizeIp('::ffff:zz'), null);
  t.equal(normalizeIp('not-an-ip'), null);
  const record = podRecord(
    { metadata: { uid: 'u', name: 'p', namespace: 'n' }, status: { podIP: '::ffff:10.0.0.9', podIPs: [{ ip: '::ffff:10.0.0.9' }, { ip: 'FD00::9' }] } },
    KEYS,
  );
  t.same(record?.ips, ['10.0.0.9', 'fd00::9'], 'dual-stack pods are indexed under both addresses');
});

t.test('only active pods with an IP are indexed', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'running', ip: '10.0.0.1' }));
  index.upsert(pod({ name: 'pending-with-ip', ip: '10.0.0.2', phase: 'Pending' }));
  index.upsert(pod({ name: 'no-ip', phase: 'Pending' }));
  index.upsert(pod({ name: 'host', ip: '192.168.0.10', hostNetwork: true }));
  index.upsert(pod({ name: 'done', ip: '10.0.0.3', phase: 'Succeeded' }));
  index.upsert(pod({ name: 'failed', ip: '10.0.0.4', phase: 'Failed' }));
  index.upsert(pod({ name: 'stopping', ip: '10.0.0.5', terminating: true }));
  index.upsert(pod({ name: 'stopped', ip: '10.0.0.6', terminating: true, stopped: true }));
  t.equal(owner(index, '10.0.0.1'), 'running');
  t.equal(owner(index, '10.0.0.5'), 'stopping', 'a terminating pod keeps its IP while its containers run');
  t.equal(owner(index, '10.0.0.6'), undefined, 'and gives it up once they have all exited');
  t.equal(owner(index, '10.0.0.2'), 'pending-with-ip');
  t.equal(owner(index, '192.168.0.10'), undefined, 'hostNetwork pods are never indexed by IP');
  t.equal(owner(index, '10.0.0.3'), undefined, 'finished pods are not indexed');
  t.equal(owner(index, '10.0.0.4'), undefined);
  t.equal(index.size, 8, 'all are known by UID');
  index.upsert(pod({ name: 'running', ip: '10.0.0.1', phase: 'Succeeded' }));
  t.equal(owner(index, '10.0.0.1'), undefined, 'a pod that finishes leaves the IP index');
});

t.test('IP reuse: old pod terminating before the new one starts', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'old', ip: '10.0.0.5' }));
  index.upsert(pod({ name: 'old', ip: '10.0.0.5', terminating: true }));
  t.equal(owner(index, '10.0.0.5'), 'old', 'a terminating pod keeps its credentials while alone');
  index.upsert(pod({ name: 'new', ip: '10.0.0.5' }));
  t.equal(owner(index, '10.0.0.5'), 'new', 'the live claim wins over the terminating one');
  index.remove('uid-old');
  t.equal(owner(index, '10.0.0.5'), 'new', 'the old pod’s delete does not remove the new entry');
});

t.test('IP reuse: the new pod appears before the old one is known to terminate', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'old', ip: '10.0.0.6' }));
  index.upsert(pod({ name: 'new', ip: '10.0.0.6' }));
  t.equal(owner(index, '10.0.0.6'), null, 'two live claims: ambiguous, no credentials');
  index.remove('uid-old');
  t.equal(owner(index, '10.0.0.6'), 'new', 'the old pod’s delete settles it');
  index.upsert(pod({ name: 'other', ip: '10.0.0.7' }));
  index.upsert(pod({ name: 'other', ip: '10.0.0.7', phase: 'Failed' }));
  index.upsert(pod({ name: 'reuser', ip: '10.0.0.7' }));
  t.equal(owner(index, '10.0.0.7'), 'reuser', 'a finished pod does not contest its old IP');
  index.remove('uid-other');
  t.equal(owner(index, '10.0.0.7'), 'reuser');
});

t.test('a pod that changes IP releases the old one', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'mover', ip: '10.0.0.8' }));
  index.upsert(pod({ name: 'mover', ip: '10.0.0.9' }));
  t.equal(owner(index, '10.0.0.8'), undefined);
  t.equal(owner(index, '10.0.0.9'), 'mover');
  t.equal(index.ipCount, 1);
});

t.test('a re-list removes pods that are gone and keeps the rest', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'a', ip: '10.0.1.1' }));
  index.upsert(pod({ name: 'b', ip: '10.0.1.2' }));
  index.replace([pod({ name: 'b', ip: '10.0.1.2' }), pod({ name: 'c', ip: '10.0.1.3' })]);
  t.equal(owner(index, '10.0.1.1'), undefined);
  t.equal(owner(index, '10.0.1.2'), 'b');
  t.equal(owner(index, '10.0.1.3'), 'c');
  t.equal(index.size, 2);
});

t.test('a waiter for an unknown IP is woken by the event, not by polling', async (t) => {
  const index = new PodIndex();
  const started = Date.now();
  const waiting = index.waitForChange('10.0.2.1', 5000);
  setTimeout(() => index.upsert(pod({ name: 'late', ip: '10.0.2.1' })), 50);
  await waiting;
  const waited = Date.now() - started;
  t.ok(waited >= 40 && waited < 1000, `woken after ${waited} ms`);
  t.equal(owner(index, '10.0.2.1'), 'late');
  const timedOut = Date.now();
  await index.waitForChange('10.0.2.2', 100);
  t.ok(Date.now() - timedOut >= 90, 'times out when nothing happens');
});
