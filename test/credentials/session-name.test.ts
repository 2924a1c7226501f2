import t from 'tap';
import { sessionName, workloadName } from '../../lib/credentials/session-name.js';

const VALID = /^[\w+=,.@-]{2,64}$/;

t.test('session names name namespace and workload in the characters STS allows', async (t) => {
  t.equal(sessionName('payments', 'api'), 'payments.api');
  t.equal(sessionName('a', 'b'), 'a.b');
  t.equal(sessionName('ns', 'we!rd name/x'), 'ns.we-rd-name-x');
  t.match(sessionName('ns', 'ünïcode'), VALID);
});

t.test('long names fit 64 characters, deterministically and without collisions by truncation', async (t) => {
  const a = sessionName('namespace-with-a-long-name', `${'w'.repeat(60)}-one`);
  const b = sessionName('namespace-with-a-long-name', `${'w'.repeat(60)}-two`);
  t.equal(a.length, 64);
  t.match(a, VALID);
  t.not(a, b, 'different workloads keep different names');
  t.equal(a, sessionName('namespace-with-a-long-name', `${'w'.repeat(60)}-one`), 'deterministic');
  t.ok(a.startsWith('namespace-with-a-long-name.www'), 'keeps the readable start');
});

t.test('the workload is the Deployment, another controller, or the pod', async (t) => {
  t.equal(
    workloadName({
      name: 'web-7d4b9c8f6-x2x9z',
      labels: { 'pod-template-hash': '7d4b9c8f6' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4b9c8f6', controller: true }],
    }),
    'web',
  );
  t.equal(workloadName({ name: 'db-0', ownerReferences: [{ kind: 'StatefulSet', name: 'db', controller: true }] }), 'db');
  t.equal(workloadName({ name: 'agent-abcde', ownerReferences: [{ kind: 'DaemonSet', name: 'agent', controller: true }] }), 'agent');
  t.equal(workloadName({ name: 'rs-only-abc', ownerReferences: [{ kind: 'ReplicaSet', name: 'rs-only', controller: true }] }), 'rs-only');
  t.equal(workloadName({ name: 'lonely' }), 'lonely');
  t.equal(workloadName({ name: 'p', ownerReferences: [{ kind: 'ReplicaSet', name: 'not-controller' }] }), 'p');
});

t.test('a pod can name any workload of its own namespace, never another namespace', async (t) => {
  // Owner references and labels are written by whoever creates the pod; the namespace is
  // the API server's. Namespace names have no dots, so the part before the first dot is
  // always the pod's own namespace, whatever the workload part claims.
  const claims = [
    { name: 'p', ownerReferences: [{ kind: 'ReplicaSet', name: 'other.payments-api-abc', controller: true }], labels: { 'pod-template-hash': 'abc' } },
    { name: 'p', ownerReferences: [{ kind: 'StatefulSet', name: 'kube-system.admin', controller: true }] },
    { name: 'kube-system.admin' },
  ];
  for (const pod of claims) {
    const session = sessionName('shop', workloadName(pod));
    t.equal(session.slice(0, session.indexOf('.')), 'shop', `${session}: still shop's`);
  }
});
