// Randomized churn through a real kube-apiserver, checked against a reference model that
// recomputes every IP's owner from the whole state after each step: no answer may ever
// carry the role of a pod other than the current owner of the IP.

import t from 'tap';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { MotoServer } from '../harness/moto.js';
import { Random } from '../harness/random.js';
import { BASE, PodStack } from './stack.js';

const STEPS = Number(process.env.CHURN_STEPS ?? 5000);
const SEED = Number(process.env.CHURN_SEED ?? 4242);
const IPS = Array.from({ length: 12 }, (_, n) => `10.200.${n >> 2}.${(n & 3) + 1}`);

interface ModelPod {
  name: string;
  uid: string;
  ip: string;
  role: string;
  finished: boolean;
  terminating: boolean;
  deleted: boolean;
}

/** The owner of an IP, recomputed from scratch: the one active pod, or the one live one among several. */
function expectedOwner(pods: Iterable<ModelPod>, ip: string): ModelPod | null | undefined {
  const claims = [...pods].filter((p) => !p.deleted && !p.finished && p.ip === ip);
  if (claims.length === 0) return undefined;
  if (claims.length === 1) return claims[0];
  const live = claims.filter((p) => !p.terminating);
  return live.length === 1 ? live[0] : null;
}

t.test(`churn: ${STEPS} steps of pod life cycles with IP reuse (seed ${SEED})`, async (t) => {
  const plane = await KubernetesControlPlane.start();
  const moto = await MotoServer.start();
  t.teardown(async () => {
    await plane.stop();
    await moto.stop();
  });
  const stack = new PodStack(plane, moto);
  t.teardown(() => stack.stop());
  await stack.namespace('churn');
  await stack.source.whenSynced();

  const random = new Random(SEED);
  const model = new Map<string, ModelPod>();
  let created = 0;
  const counts = { create: 0, reuse: 0, duplicate: 0, terminate: 0, delete: 0, finish: 0, role: 0 };
  let checks = 0;
  const violations: string[] = [];

  // Re-checked on every index event: the answer for each IP, as a request would get it.
  const answer = (ip: string): string | null | undefined => {
    const owner = stack.index.lookup(ip)?.owner;
    if (owner === undefined) return undefined;
    if (owner === null) return null;
    const assignment = stack.podRoles.roleOf(owner.uid);
    return assignment?.kind === 'role' ? `${owner.name}:${assignment.roleArn}` : `${owner.name}:-`;
  };
  const expectedAnswer = (snapshot: ModelPod[], ip: string): string | null | undefined => {
    const owner = expectedOwner(snapshot, ip);
    return owner == null ? owner : `${owner.name}:${BASE}${owner.role}`;
  };

  const waitFor = async (condition: () => boolean, step: number, allowed: Array<ModelPod[]>): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!condition()) {
      // While the index catches up, every answer must match the state before or after the step.
      for (const ip of IPS) {
        checks++;
        const got = answer(ip);
        if (got != null && !allowed.some((state) => expectedAnswer(state, ip) === got)) {
          violations.push(`step ${step}: ${ip} answered ${got}, expected ${allowed.map((s) => expectedAnswer(s, ip)).join(' or ')}`);
        }
      }
      if (Date.now() > deadline) throw new Error(`step ${step}: the index did not catch up`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const snapshot = (): ModelPod[] => [...model.values()].map((p) => ({ ...p }));

  const used = new Set<string>();
  for (let step = 0; step < STEPS && violations.length === 0; step++) {
    const before = snapshot();
    const alive = [...model.values()];
    const holders = alive.filter((p) => !p.finished && !p.terminating);
    // Keep the population around the size of the IP pool, so IPs are reused all the time.
    const crowded = holders.length >= IPS.length - 2;
    const roll = alive.length < 4 ? 0 : crowded ? 4 + random.int(5) : random.int(10);
    if (roll <= 3) {
      // A new pod gets an IP. Like a CNI, normally one whose holders are all gone,
      // terminating or finished; now and then one a live pod still holds (a duplicate).
      const free = IPS.filter((ip) => !holders.some((p) => p.ip === ip));
      const duplicate = free.length === 0 || random.int(8) === 0;
      const ip = duplicate ? random.pick(IPS) : random.pick(free);
      if (duplicate) counts.duplicate++;
      else if (used.has(ip)) counts.reuse++;
      used.add(ip);
      const name = `p${created++}`;
      const role = `role-${name}`;
      const uid = await stack.createPod('churn', name, { role });
      await stack.setStatus('churn', name, 'Running', ip);
      model.set(name, { name, uid, ip, role, finished: false, terminating: false, deleted: false });
      counts.create++;
      await waitFor(() => stack.index.get(uid)?.ips[0] === ip, step, [before, snapshot()]);
    } else if ((roll === 4 || roll === 5) && holders.length > 0) {
      const pod = random.pick(holders);
      await stack.terminate('churn', pod.name);
      pod.terminating = true;
      counts.terminate++;
      await waitFor(() => stack.index.get(pod.uid)?.terminating === true, step, [before, snapshot()]);
    } else if (roll === 6 && holders.length > 0) {
      const pod = random.pick(holders);
      await stack.setStatus('churn', pod.name, 'Succeeded');
      pod.finished = true;
      counts.finish++;
      await waitFor(() => stack.index.get(pod.uid)?.phase === 'Succeeded', step, [before, snapshot()]);
    } else if (roll === 9 && holders.length > 0) {
      const pod = random.pick(holders);
      const role = `role-${pod.name}-v${step}`;
      await stack.core.patchNamespacedPod(
        { name: pod.name, namespace: 'churn', body: { metadata: { annotations: { 'iam.amazonaws.com/role': role } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      pod.role = role;
      counts.role++;
      await waitFor(() => stack.index.get(pod.uid)?.role === role, step, [before, snapshot()]);
    } else {
      const pod = random.pick(alive);
      await stack.forceDelete('churn', pod.name);
      pod.deleted = true;
      model.delete(pod.name);
      counts.delete++;
      await waitFor(() => stack.index.get(pod.uid) === undefined, step, [before, snapshot()]);
    }
    // Caught up: every IP answers exactly as the model says.
    const now = snapshot();
    for (const ip of IPS) {
      checks++;
      const got = answer(ip);
      const want = expectedAnswer(now, ip);
      if (got !== want) violations.push(`step ${step} settled: ${ip} answered ${got}, model says ${want}`);
    }
  }
  t.same(violations.slice(0, 5), [], 'no wrong answer');
  t.ok(counts.reuse > STEPS / 10 && counts.duplicate > STEPS / 50, `operations: ${JSON.stringify(counts)}`);
  t.ok(checks > STEPS * IPS.length, `${checks} answers checked`);
});
