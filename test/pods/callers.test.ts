// Naming the caller: the pure rules for terminating owners and duplicates, and the live
// lookups they cost, with the API server's answers scripted (the cluster tests cover the
// same against a real kube-apiserver).

import t from 'tap';
import { CallerResolver, LIVE_READ_LIMITS, runningClaimant, terminatingOwnerVerdict, type Caller } from '../../lib/pods/callers.js';
import { PodIndex } from '../../lib/pods/pod-index.js';
import type { PodRecord } from '../../lib/pods/pod.js';
import { pod } from './fixtures.js';

t.test('a terminating owner is the caller only while the API server has no newer pod at its IP', async (t) => {
  const old = pod({ name: 'old', ip: '10.0.0.1', terminating: true });
  t.equal(terminatingOwnerVerdict(old, [old]), 'owner');
  t.equal(terminatingOwnerVerdict(old, [old, pod({ name: 'new', ip: '10.0.0.1' })]), 'moved', 'a running newcomer');
  t.equal(terminatingOwnerVerdict(old, [old, pod({ name: 'new', ip: '10.0.0.1', phase: 'Pending' })]), 'moved', 'even one still starting');
  t.equal(terminatingOwnerVerdict(old, [old, pod({ name: 'other', ip: '10.0.0.1', terminating: true })]), 'owner', 'another terminating pod is no newer claim');
  t.equal(terminatingOwnerVerdict(old, []), 'gone', 'deleted');
  t.equal(terminatingOwnerVerdict(old, [pod({ name: 'old', ip: '10.0.0.1', terminating: true, stopped: true })]), 'gone', 'its containers have exited');
});

t.test('--resolve-duplicate-cache-ips names the one running pod that is not terminating', async (t) => {
  t.equal(runningClaimant([pod({ name: 'a', phase: 'Pending' }), pod({ name: 'b' })]), 'uid-b');
  t.equal(runningClaimant([pod({ name: 'a' }), pod({ name: 'b' })]), null, 'two running: still ambiguous');
  t.equal(runningClaimant([pod({ name: 'a', terminating: true }), pod({ name: 'b', hostNetwork: true })]), null);
});

function scriptedLookups(answer: () => PodRecord[]): { lookups: Array<() => void>; liveClaims: (ip: string) => Promise<PodRecord[]> } {
  const lookups: Array<() => void> = [];
  return {
    lookups,
    liveClaims: () => new Promise((resolve) => lookups.push(() => resolve(answer()))),
  };
}

t.test('requests from a terminating pod share live lookups, but only ones started after they arrived', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'old', ip: '10.0.0.1', terminating: true }));
  let live = [pod({ name: 'old', ip: '10.0.0.1', terminating: true })];
  const api = scriptedLookups(() => live);
  const callers = new CallerResolver(index, { waitMs: 300, liveClaims: api.liveClaims, resolveDuplicates: false });
  const first = callers.resolve('10.0.0.1');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(api.lookups.length, 1);
  // The IP moves to a new pod while the first lookup is under way; later requests must
  // not take that lookup's answer.
  const later = Array.from({ length: 20 }, () => callers.resolve('10.0.0.1'));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(api.lookups.length, 1, 'the later requests wait for a lookup of their own');
  api.lookups[0]?.();
  const firstCaller = await first;
  t.equal(firstCaller.kind === 'pod' ? firstCaller.pod.name : firstCaller.reason, 'old');
  live = [pod({ name: 'new', ip: '10.0.0.1' })];
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(api.lookups.length, 2, 'one shared lookup for all twenty');
  api.lookups[1]?.();
  const answers = await Promise.all(later);
  t.ok(
    answers.every((c) => c.kind === 'unknown'),
    'none is answered as the old pod',
  );
});

t.test('a live lookup that fails or does not come back in time refuses the terminating pod', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'old', ip: '10.0.0.1', terminating: true }));
  const failing = new CallerResolver(index, { waitMs: 300, liveClaims: () => Promise.reject(new Error('API down')), resolveDuplicates: false });
  t.match(await failing.resolve('10.0.0.1'), { kind: 'unknown', reason: /cannot confirm/ });
  const stalled = new CallerResolver(index, { waitMs: 100, liveClaims: () => new Promise(() => {}), resolveDuplicates: false });
  const started = Date.now();
  t.match(await stalled.resolve('10.0.0.1'), { kind: 'unknown', reason: /cannot confirm/ });
  t.ok(Date.now() - started < 1000, 'within the wait bound');
});

t.test('without a live source (a pods file) a terminating pod is answered from the index', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'old', ip: '10.0.0.1', terminating: true }));
  const callers = new CallerResolver(index, { waitMs: 100, liveClaims: null, resolveDuplicates: false });
  t.equal(callers.known('10.0.0.1')?.name, 'old');
});

t.test('a terminating pod that keeps calling drives a bounded rate of live reads; past it, 404 with the reason', async (t) => {
  const index = new PodIndex();
  index.upsert(pod({ name: 'old', ip: '10.0.0.1', terminating: true }));
  let reads = 0;
  const liveClaims = async (): Promise<PodRecord[]> => {
    reads++;
    return [pod({ name: 'old', ip: '10.0.0.1', terminating: true })];
  };
  const callers = new CallerResolver(index, { waitMs: 300, liveClaims, resolveDuplicates: false });
  const answers: Caller[] = [];
  for (let n = 0; n < 50; n++) answers.push(await callers.resolve('10.0.0.1'));
  t.ok(reads <= LIVE_READ_LIMITS.perIpBurst + 1, `${reads} live reads for 50 sequential requests from one IP`);
  t.equal(answers.filter((a) => a.kind === 'pod').length, reads, 'each read answered its request');
  const refused = answers.filter((a) => a.kind === 'unknown');
  t.equal(refused.length, 50 - reads);
  t.match(refused[0], { reason: /^too many live lookups for IP 10\.0\.0\.1 \(terminating pod default\/old\): try again in a few seconds$/ });
  t.equal(callers.liveLookupsLimited, refused.length, 'counted for the stats line');
});

t.test('many terminating pods together stay under the node’s rate of live reads', async (t) => {
  const index = new PodIndex();
  const ips = Array.from({ length: 30 }, (_, n) => `10.0.1.${n + 1}`);
  for (const [n, ip] of ips.entries()) index.upsert(pod({ name: `old-${n}`, ip, terminating: true }));
  let reads = 0;
  const liveClaims = async (ip: string): Promise<PodRecord[]> => {
    reads++;
    return [pod({ name: `old-${ips.indexOf(ip)}`, ip, terminating: true })];
  };
  const callers = new CallerResolver(index, { waitMs: 300, liveClaims, resolveDuplicates: false });
  for (let round = 0; round < 3; round++) await Promise.all(ips.map((ip) => callers.resolve(ip)));
  t.ok(reads <= LIVE_READ_LIMITS.perNodeBurst + 2, `${reads} live reads for 90 requests from 30 IPs`);
});
