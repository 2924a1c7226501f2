// How one node keeps its share of an account's STS rate: the start-up prefetch window, a
// pod's own request going first, and the rate cut while STS throttles. Against moto
// through the throttling fault injector (a named fault: moto does not throttle).

import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { CredentialStore, type CredentialEntry, type CredentialStoreOptions } from '../../lib/credentials/store.js';
import { StsRoleAssumer } from '../../lib/credentials/sts.js';
import { BACKGROUND_RATE_POLICY, DEMAND_RATE_POLICY } from '../../lib/rate-limit.js';
import { MotoServer } from '../harness/moto.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { eventually } from '../harness/wait.js';

const role = (name: string): string => `arn:aws:iam::123456789012:role/${name}`;
const KEYS = { accessKeyId: 'AKIDNODE', secretAccessKey: 'node-secret' };

async function storeBehindInjector(
  t: Test,
  options: Partial<CredentialStoreOptions>,
  maxAttempts = 1,
): Promise<{ store: CredentialStore; injector: StsFaultInjector; moto: MotoServer }> {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const injector = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port });
  t.teardown(() => injector.close());
  const sts = new StsRoleAssumer({ region: 'us-east-1', endpoint: injector.endpoint, credentials: KEYS, maxAttempts });
  const store = new CredentialStore(sts, { sessionTtlMs: 15 * 60_000, errorTtlMs: 0, ...options });
  t.teardown(() => store.close());
  return { store, injector, moto };
}

/** The background policy, but one throttling cuts it to its minimum (0.01/s), and is forgotten within seconds (measured over 1 s). */
const steepBackground = (doublingMs: number) => ({ ...BACKGROUND_RATE_POLICY, decrease: 0.001, doublingMs, measureMs: 1000 });

const acquireMany = (store: CredentialStore, n: number): CredentialEntry[] =>
  Array.from({ length: n }, (_, i) => store.acquire(`pod-${i}`, { roleArn: role(`r${i}`), sessionName: `ns.w${i}`, externalId: null }));

t.test('keys listed at start are fetched over the prefetch window, the first at once', async (t) => {
  const { store, injector } = await storeBehindInjector(t, { prefetchWindowMs: 1500 });
  const started = Date.now();
  const entries = acquireMany(store, 12);
  t.not(entries[0]?.fetching, null, 'the first key is fetched at once (readiness shows STS works)');
  t.equal(entries.slice(1).filter((e) => e.fetching !== null).length, 0, 'the others wait for their point in the window');
  t.ok(await eventually(() => entries.every((e) => e.credentials !== null), 5000));
  const offsets = injector.calls.map((c) => c.at - started).sort((a, b) => a - b);
  t.ok((offsets.at(-1) as number) <= 1700, `the last call ${offsets.at(-1)} ms after start, within the window`);
  t.ok((offsets[6] as number) >= 150, `spread over the window, not one burst: the 7th call after ${offsets[6]} ms`);
});

t.test('a new pod after the start-up listing is fetched at once, within the window too', async (t) => {
  const { store } = await storeBehindInjector(t, { prefetchWindowMs: 60_000 });
  acquireMany(store, 2);
  store.listed();
  const late = store.acquire('late-pod', { roleArn: role('late'), sessionName: 'ns.late', externalId: null });
  t.not(late.fetching, null);
});

t.test('a key listed after the window has passed is fetched at once', async (t) => {
  const { store } = await storeBehindInjector(t, { prefetchWindowMs: 200 });
  acquireMany(store, 2);
  await sleep(250);
  const late = store.acquire('late-pod', { roleArn: role('late'), sessionName: 'ns.late', externalId: null });
  t.not(late.fetching, null);
});

t.test("a pod's own request goes ahead of the prefetch window", async (t) => {
  const { store, injector } = await storeBehindInjector(t, { prefetchWindowMs: 60_000 });
  const entries = acquireMany(store, 5);
  const asked = entries[4] as CredentialEntry;
  t.equal(asked.fetching, null, 'scheduled later in the window');
  const outcome = store.demand(asked);
  t.not(outcome, null);
  await outcome;
  t.not(asked.current(Date.now()), null, 'served after one STS call');
  await entries[0]?.fetching;
  t.same(injector.calls.map((c) => c.roleArn).sort(), [role('r0'), role('r4')], 'only the readiness key and the one asked for');
  t.equal(store.stats.demanded, 1);
});

t.test("a pod's own request goes ahead of prefetches waiting for a token", async (t) => {
  const { store, injector } = await storeBehindInjector(t, { stsRatePerSecond: 5, stsBurst: 1 });
  const entries = acquireMany(store, 8);
  const asked = entries[7] as CredentialEntry;
  t.ok(asked.queued, 'the last key waits behind six others');
  await store.demand(asked);
  t.equal(injector.calls[1]?.roleArn, role('r7'), 'the key asked for is the next STS call');
  t.not(asked.current(Date.now()), null);
  t.ok(await eventually(() => entries.every((e) => e.credentials !== null), 5000));
  t.equal(injector.calls.length, 8, 'every key fetched once: the one asked for is not fetched again from its old place');
});

t.test('throttled prefetches cut the rate of calls no pod waits for, not of those pods wait for; successes do not regain it at once', async (t) => {
  const { store, injector } = await storeBehindInjector(t, { stsRatePerSecond: 20, stsBurst: 40 });
  injector.mode = 'throttle';
  const entries = acquireMany(store, 3);
  t.ok(await eventually(() => store.stats.throttled >= 3, 5000));
  const cut = store.stsRates;
  t.equal(cut.demand, 20, "no pod's call was throttled");
  // Three calls, measured over 10 s, are 0.3/s: the background is cut to half of that, once.
  t.ok(
    Math.abs(cut.background - 0.15) < 0.01,
    `three throttled calls sent together are one cut, to half the node's sending rate: ${cut.background.toFixed(3)}/s`,
  );
  t.equal(injector.counts.throttled, store.stats.throttled, 'the SDK did not retry a throttled call behind the pacing');
  injector.mode = 'pass';
  t.ok(await eventually(() => entries.every((e) => e.credentials !== null), 20_000));
  const { background } = store.stsRates;
  // Held while the throttled calls are a share of what was measured, then doubling per minute: not back at once.
  t.ok(background >= cut.background && background < 0.2, `regained slowly, if at all yet: ${background.toFixed(3)}/s`);
});

t.test('a throttled call a pod waits for cuts the allowance for pods, and cuts the background to half what it sent', async (t) => {
  // Pods' calls measured over 0.5 s: the throttling is forgotten within the test's 2 s.
  const demandRate = { ...DEMAND_RATE_POLICY, measureMs: 500 };
  // random 0.999: after each cut the next token is there at once, so the success below comes while the throttling is fresh.
  const { store, injector } = await storeBehindInjector(t, { stsRatePerSecond: 20, stsBurst: 40, prefetchWindowMs: 60_000, demandRate, random: () => 0.999 });
  const entries = acquireMany(store, 3);
  await entries[0]?.fetching;
  injector.mode = 'throttle';
  await store.demand(entries[1] as CredentialEntry);
  // One background call in the last 10 s is 0.1/s: cut to 0.05/s, and again for each
  // throttled quick retry, where halving its 20/s allowance would not have slowed it at all.
  const cut = store.stsRates;
  // One key waiting: 20/s cut by `decrease` for the call and for each of its two quick retries, each sent after the last cut.
  const cutTo = 20 * DEMAND_RATE_POLICY.decrease ** 3;
  t.equal(cut.demand, cutTo, "pods' calls: cut once for the call and once for each quick retry");
  t.ok(cut.background >= 0.01 && cut.background <= 0.05, `background cut to ${cut.background.toFixed(3)}/s`);
  injector.mode = 'pass';
  await store.demand(entries[2] as CredentialEntry);
  t.not(entries[2]?.current(Date.now()), null);
  t.equal(store.stsRates.demand, cutTo, 'a success at once holds the rate: most of what was just sent was throttled');
  await sleep(2000);
  await store.demand(entries[1] as CredentialEntry);
  t.not(entries[1]?.current(Date.now()), null);
  const { demand } = store.stsRates;
  t.ok(demand > cutTo * 2 ** 0.15 && demand < cutTo * 2 ** 0.5, `seconds later: ${demand.toFixed(2)}/s (doubling every 10 s)`);
});

t.test('a throttling while pods wait for two keys cuts the allowance for pods to a quarter, once for the calls sent together', async (t) => {
  // random 0.5: the keys' points in the window are 30 s away, and the quick retries come 225 ms after the cut.
  const { store, injector } = await storeBehindInjector(t, { stsRatePerSecond: 20, stsBurst: 40, prefetchWindowMs: 60_000, random: () => 0.5 });
  const entries = acquireMany(store, 3);
  await entries[0]?.fetching;
  injector.mode = 'throttle';
  const outcomes = [store.demand(entries[1] as CredentialEntry), store.demand(entries[2] as CredentialEntry)];
  t.ok(await eventually(() => store.stats.throttled >= 2, 5000), `both calls throttled (${store.stats.throttled}, ${store.stats.stsCalls} calls)`);
  t.equal(store.stsRates.demand, 20 * DEMAND_RATE_POLICY.backlogDecrease, 'two keys waiting: a quarter of 20/s, not a half');
  injector.mode = 'pass';
  await Promise.all(outcomes);
  t.not(entries[1]?.current(Date.now()), null);
  t.not(entries[2]?.current(Date.now()), null);
});

t.test("a pod's call is not held behind a background call waiting a minute for its token", async (t) => {
  // One throttling cuts the background rate to its minimum, 0.01/s: a token every 100 s.
  const backgroundRate = steepBackground(600_000);
  const { store, injector } = await storeBehindInjector(t, { stsRatePerSecond: 20, stsBurst: 40, backgroundRate });
  injector.mode = 'throttle';
  acquireMany(store, 1);
  t.ok(await eventually(() => store.stats.throttled >= 1, 5000));
  t.equal(store.stsRates.background, 0.01);
  injector.mode = 'pass';
  const entries = acquireMany(store, 4);
  const asked = entries[3] as CredentialEntry;
  t.ok(asked.queued, 'the last new key waits for a background token');
  const started = Date.now();
  await store.demand(asked);
  const waited = Date.now() - started;
  t.not(asked.current(Date.now()), null, `served after ${waited} ms`);
  t.ok(waited < 800, "the pod's call did not wait for the background's token");
});

t.test('a call queued at a cut rate goes when a success regains the rate, not when the drain armed at the cut rate fires', async (t) => {
  // Cut to 0.01/s (a token every 100 s); regained 32 times over after 5 s of quiet.
  const backgroundRate = steepBackground(1000);
  // random 0.999: the token after the cut is all but there; back-off of the throttled key far away.
  const { store, injector } = await storeBehindInjector(t, { backgroundRate, random: () => 0.999, backoffBaseMs: 60_000, backoffMaxMs: 60_000 });
  injector.mode = 'throttle';
  acquireMany(store, 1);
  t.ok(await eventually(() => store.stats.throttled >= 1, 5000));
  t.equal(store.stsRates.background, 0.01);
  injector.mode = 'pass';
  await sleep(5000);
  const first = store.acquire('pod-b', { roleArn: role('b'), sessionName: 'ns.b', externalId: null });
  const queued = store.acquire('pod-c', { roleArn: role('c'), sessionName: 'ns.c', externalId: null });
  t.not(first.fetching, null, 'the one token there');
  t.ok(queued.queued, 'the next waits: at 0.01/s, 95 s away');
  t.ok(await eventually(() => queued.credentials !== null, 8000), `fetched once the success regained ${store.stsRates.background.toFixed(2)}/s`);
});

t.test('a throttled call a pod waits for is tried again within the wait, and the pod is served', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  // The account allows one call now and ten a second: the readiness key takes it.
  const injector = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port }, { accountLimit: { perSecond: 10, burst: 1 } });
  t.teardown(() => injector.close());
  const sts = new StsRoleAssumer({ region: 'us-east-1', endpoint: injector.endpoint, credentials: KEYS, maxAttempts: 1 });
  const store = new CredentialStore(sts, { sessionTtlMs: 15 * 60_000, errorTtlMs: 0, prefetchWindowMs: 60_000 });
  t.teardown(() => store.close());
  const entries = acquireMany(store, 2);
  const asked = entries[1] as CredentialEntry;
  const started = Date.now();
  await store.demand(asked);
  const waited = Date.now() - started;
  t.not(asked.current(Date.now()), null, `served after ${waited} ms`);
  t.ok(waited < 800, 'within the 800 ms a request waits');
  const calls = injector.calls.filter((c) => c.roleArn === role('r1')).map((c) => c.outcome);
  t.equal(calls[0], 'throttled');
  t.equal(calls.at(-1), 'passed');
});

t.test('a throttled key is fetched again as soon as its pod asks, without waiting out its back-off', async (t) => {
  const { store, injector } = await storeBehindInjector(t, { backoffBaseMs: 30_000, backoffMaxMs: 60_000 });
  injector.mode = 'throttle';
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'ns.app', externalId: null });
  t.ok(await eventually(() => entry.errorCode === 'Throttling', 5000));
  injector.mode = 'pass';
  const outcome = store.demand(entry);
  t.not(outcome, null, 'throttling is the account’s state, not the role’s: the pod’s request retries it');
  await outcome;
  t.not(entry.current(Date.now()), null);
});

t.test('another error keeps its back-off: the pod is answered with the error, STS is not called again', async (t) => {
  const { store, injector, moto } = await storeBehindInjector(t, { backoffBaseMs: 30_000, backoffMaxMs: 60_000 });
  await moto.stop(); // STS unreachable: the injector resets the connection
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'ns.app', externalId: null });
  t.ok(await eventually(() => entry.errorCode !== null, 5000));
  t.notOk(entry.errorCode === 'Throttling', `failed with ${entry.errorCode}`);
  const calls = injector.calls.length;
  t.equal(store.demand(entry), null);
  t.equal(injector.calls.length, calls);
});
