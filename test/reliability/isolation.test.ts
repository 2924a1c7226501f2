// Isolation (issue 8, part 3): no pod is ever answered with another pod's role, and no
// caller gets the node's own credentials, checked on the real program against a real
// kube-apiserver while steady load runs.
// - Randomized churn with IP reuse: pods come and go on a few addresses, each new pod
//   getting the address of one that is shutting down, in the orders a kubelet and a
//   network plugin can produce, with the watch racing the requests. A reference model
//   knows which pod holds each address; every 200 must name that pod's role.
// - Headers never change who the caller is.
// - A hostNetwork pod or an unknown address never reaches the node's credentials by any
//   path, and none of those paths ever reaches the metadata service.
// RELIABILITY_LONG=1 runs many more generations.

import t from 'tap';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { motoRequests } from '../e2e/node.js';
import { AddressReuse } from './churn.js';
import { get } from '../harness/pod-client.js';
import { CREDENTIALS_PATH, type LoadedPod } from './load.js';
import { FaultRig, NAMESPACE, NODE } from './rig.js';

const LONG = process.env.RELIABILITY_LONG === '1';
const SLOTS = 6;
const GENERATIONS = LONG ? 60 : 6;
const SEED = Number(process.env.ISOLATION_SEED ?? 3_2026);

const LOAD_PODS: LoadedPod[] = [
  { ip: '127.0.0.31', role: 'steady-a' },
  { ip: '127.0.0.32', role: 'steady-b' },
];

const rig = await FaultRig.start({ lifetimeSeconds: 900, loadPods: LOAD_PODS, loadPauseMs: 20 });
t.teardown(() => rig.stop());

/** Raw bytes to the program from `from`: the request target goes out exactly as written. */
function askRaw(from: string, head: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: rig.port, localAddress: from });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(head));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('close', () => resolve(data));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(5_000, () => socket.destroy());
  });
}

async function patchStatus(name: string, status: Record<string, unknown>): Promise<void> {
  await rig.core.patchNamespacedPodStatus({ name, namespace: NAMESPACE, body: { status } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
}

t.test(`randomized churn with IP reuse under load: no answer ever names another pod's role (seed ${SEED})`, async (t) => {
  const reuse = new AddressReuse(rig, SLOTS, 7, SEED);
  rig.checker.startWindow();
  rig.load.start();
  await reuse.run(GENERATIONS);
  await rig.load.stop();
  const load = rig.checker.startWindow();
  const line = {
    seed: SEED,
    generations: reuse.generations,
    asked: reuse.asked,
    own: reuse.own,
    notYet: reuse.notYet,
    leaks: reuse.leaks.length,
    loadRequests: load.requests,
    loadFailures: load.failures,
    loadLeaks: load.leaks,
  };
  process.stdout.write(`# isolation: ${JSON.stringify(line)}\n`);
  t.same(reuse.leaks, [], 'no churned pod was ever answered with another pod’s role');
  t.equal(load.leaks, 0, 'nor was any steady pod');
  t.equal(load.failures, 0, 'the steady pods were served throughout', { examples: load.examples });
  t.ok(reuse.own > reuse.asked / 2, `most answers were the pod's own role (${reuse.own} of ${reuse.asked}; ${reuse.notYet} not yet served)`);
});

t.test('X-Forwarded-For and other headers never change who the caller is', async (t) => {
  const [a, b] = LOAD_PODS as [LoadedPod, LoadedPod];
  const claims: Array<Record<string, string>> = [
    { 'X-Forwarded-For': b.ip },
    { 'X-Forwarded-For': `${b.ip}, ${a.ip}` },
    { 'X-Real-IP': b.ip },
    { Forwarded: `for=${b.ip}` },
    { 'X-Client-IP': b.ip, 'True-Client-IP': b.ip, 'X-Original-Forwarded-For': b.ip },
  ];
  for (const headers of claims) {
    const reply = await get(rig.port, a.ip, CREDENTIALS_PATH, 5_000, headers);
    t.same({ status: reply.status, body: reply.body }, { status: 200, body: a.role }, `${Object.keys(headers).join(', ')}: still ${a.role}`);
    const stranger = await get(rig.port, '127.0.8.9', CREDENTIALS_PATH, 5_000, headers);
    t.equal(stranger.status, 404, `${Object.keys(headers).join(', ')} from an unknown address: 404`);
    t.notMatch(stranger.body, b.role);
  }
});

t.test('a hostNetwork pod or an unknown address never reaches the node’s credentials by any path', async (t) => {
  const hostIp = '127.0.9.1';
  await rig.core.createNamespacedPod({
    namespace: NAMESPACE,
    body: {
      metadata: { name: 'on-host', annotations: { 'iam.amazonaws.com/role': 'host-role' } },
      spec: { nodeName: NODE, hostNetwork: true, containers: [{ name: 'app', image: 'busybox' }] },
    },
  });
  await patchStatus('on-host', { phase: 'Running', podIP: hostIp, podIPs: [{ ip: hostIp }] });
  await sleep(500); // the watch has seen it
  const logFrom = rig.moto.log().length;
  const targets = [
    '/latest/meta-data/iam/security-credentials/',
    '/latest/meta-data/iam/security-credentials/host-role',
    '/latest/meta-data/iam/security-credentials-extended/',
    '/latest/meta-data/iam/info',
    '/latest/meta-data/iam/',
    '/2021-07-15/meta-data/iam/security-credentials/',
    '/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance',
    '/latest/meta-data/identity-credentials/ec2/info',
    '/latest/dynamic/instance-identity/pkcs7',
    '/latest/dynamic/instance-identity/signature',
    'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
    '//latest/meta-data/iam/info',
    '/latest//meta-data/iam/info',
    '/latest/./meta-data/iam/info',
    '/latest/meta-data/x/../iam/info',
    '/latest/meta-data%2Fiam/info',
    '/latest/meta-data/%69am/info',
    '/LATEST/META-DATA/IAM/INFO',
    '/latest/meta-data/IAM/security-credentials/',
    '/latest/meta-data/Identity-Credentials/ec2/security-credentials/ec2-instance',
    '/latest/meta-data/iam/info?x=1',
    '/latest/meta-data/iam/info#x',
    '*',
  ];
  for (const from of [hostIp, '127.0.9.2']) {
    for (const target of targets) {
      const answer = await askRaw(from, `GET ${target} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n`);
      const status = Number(answer.split(' ')[1]);
      t.ok(status >= 400 && status < 500, `${from} ${target}: ${status}`);
      t.notMatch(answer, /AccessKeyId|SecretAccessKey|InstanceProfileArn/, `${from} ${target}: no credentials or profile`);
    }
  }
  await sleep(200);
  const reached = motoRequests(rig.moto.log().slice(logFrom)).filter((line) =>
    /iam|identity-credentials|instance-identity\/(pkcs7|signature)/i.test(decodeURIComponent(line)),
  );
  t.same(reached, [], 'none of them reached the metadata service');
  await rig.deletePod('on-host');
});
