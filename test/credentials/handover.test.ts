// The handover between two proxies on one node: its text (table tests), and the store's
// side of it against a real STS emulator (moto_server).

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HandedOver, HANDOVER_MAX_ENTRIES, HANDOVER_MAX_BYTES, handoverText, takeBack } from '../../lib/credentials/handover.js';
import { CredentialStore, type CredentialStoreOptions, credentialsUnready } from '../../lib/credentials/store.js';
import { StsRoleAssumer, type AssumedCredentials, type AssumeRoleRequest, type RoleAssumer } from '../../lib/credentials/sts.js';
import { MotoServer } from '../harness/moto.js';
import { CLOSED_ADDRESS } from '../harness/ports.js';

const role = (name: string): string => `arn:aws:iam::123456789012:role/${name}`;
const NOW = Date.parse('2026-12-04T12:00:00Z');

function item(name: string, expiresInMs: number, now = NOW, externalId: string | null = null): HandedOver {
  return {
    parameters: { roleArn: role(name), externalId, sessionName: `apps.${name}` },
    credentials: {
      accessKeyId: `ASIA${name.toUpperCase()}`,
      secretAccessKey: `secret-${name}`,
      sessionToken: `token-${name}`,
      expiration: new Date(now + expiresInMs),
      issuedAt: new Date(now - 60_000),
    },
  };
}

/** The handover text of `items`, with `change` applied to its first credentials' JSON. */
function textWith(change: (raw: Record<string, unknown>) => void): string {
  const document = JSON.parse(handoverText([item('web', 600_000)], NOW).text) as { credentials: Record<string, unknown>[] };
  change(document.credentials[0] as Record<string, unknown>);
  return JSON.stringify(document);
}

t.test('a handover text is taken back whole: parameters, keys and times', async (t) => {
  const items = [item('web', 600_000), item('batch', 900_000, NOW, 'ext-1')];
  const back = takeBack(handoverText(items, NOW).text, NOW);
  t.same(back, { items, expired: 0, invalid: 0 });
});

t.test('a text that is not a handover is refused whole, with the reason', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"version":1,', /not JSON/],
    ['an array', '[1,2]', /version undefined/],
    ['null', 'null', /not a JSON object/],
    ['another version', JSON.stringify({ version: 2, credentials: [] }), /version 2, this proxy reads 1/],
    ['no list', JSON.stringify({ version: 1, credentials: {} }), /no credentials list/],
    ['too many', JSON.stringify({ version: 1, credentials: new Array(HANDOVER_MAX_ENTRIES + 1).fill(0) }), /more than 2000 credentials/],
    ['too long', ' '.repeat(HANDOVER_MAX_BYTES + 1), /longer than/],
    ['more objects than credentials, refused before parsing', `{"version":1,"credentials":[${'{},'.repeat(2_000_000)}{}]}`, /more than 2000 credentials/],
  ];
  for (const [name, text, reason] of cases) t.throws(() => takeBack(text, NOW), reason, name);
});

t.test('credentials with a field missing, mistyped, too long or not a role ARN are passed over one by one', async (t) => {
  const cases: Array<[string, (raw: Record<string, unknown>) => void]> = [
    ['no access key', (raw) => delete raw.accessKeyId],
    ['empty secret', (raw) => (raw.secretAccessKey = '')],
    ['a number for a token', (raw) => (raw.sessionToken = 42)],
    ['an external ID of another type', (raw) => (raw.externalId = 7)],
    ['a role that is not a role ARN', (raw) => (raw.roleArn = 'arn:aws:iam::123456789012:user/alice')],
    ['a bare role name', (raw) => (raw.roleArn = 'web')],
    ['an expiration that is not a time', (raw) => (raw.expiration = 'soon')],
    ['a token longer than STS issues', (raw) => (raw.sessionToken = 'x'.repeat(8193))],
  ];
  for (const [name, change] of cases) t.same(takeBack(textWith(change), NOW), { items: [], expired: 0, invalid: 1 }, name);
  t.same(takeBack(JSON.stringify({ version: 1, credentials: ['web', null] }), NOW), { items: [], expired: 0, invalid: 2 }, 'not objects');
  t.equal(
    takeBack(
      textWith(() => undefined),
      NOW,
    ).items.length,
    1,
    'the unchanged text is taken',
  );
});

t.test('credentials already expired are counted, not taken', async (t) => {
  const back = takeBack(handoverText([item('gone', -1), item('web', 600_000)], NOW).text, NOW);
  t.equal(back.expired, 1);
  t.same(
    back.items.map((i) => i.parameters.roleArn),
    [role('web')],
  );
});

t.test('at most the bounds are written, in order, and what is written is read back', async (t) => {
  const items = Array.from({ length: HANDOVER_MAX_ENTRIES + 3 }, (_, i) => item(`r${i}`, 600_000));
  const written = handoverText(items, NOW);
  const counted = takeBack(written.text, NOW).items;
  t.equal(counted.length, HANDOVER_MAX_ENTRIES, 'the count');
  t.equal(written.count, HANDOVER_MAX_ENTRIES, 'and says so');
  t.same(counted.at(-1), items[HANDOVER_MAX_ENTRIES - 1]);
  // Tokens of 8 KiB (the longest read back): the bytes bound before the count.
  const large = items.map((i) => ({ ...i, credentials: { ...i.credentials, sessionToken: 't'.repeat(8192) } }));
  const { text, count } = handoverText(large, NOW);
  t.ok(Buffer.byteLength(text) <= HANDOVER_MAX_BYTES, 'the bytes');
  const back = takeBack(text, NOW).items;
  t.equal(back.length, count);
  t.ok(back.length > 900 && back.length < HANDOVER_MAX_ENTRIES, `${back.length} fit`);
  t.same(back[0], large[0]);
});

/** The real STS client, counting the calls it makes (they still go to moto). */
class CountingAssumer implements RoleAssumer {
  calls: Array<AssumeRoleRequest & { at: number }> = [];
  constructor(private readonly inner: StsRoleAssumer) {}
  assumeRole(request: AssumeRoleRequest): Promise<AssumedCredentials> {
    this.calls.push({ ...request, at: Date.now() });
    return this.inner.assumeRole(request);
  }
  close(): void {
    this.inner.close();
  }
}

function storeFor(moto: MotoServer, options: Partial<CredentialStoreOptions> = {}): { store: CredentialStore; sts: CountingAssumer } {
  const sts = new CountingAssumer(
    new StsRoleAssumer({ region: 'us-east-1', endpoint: moto.endpoint, credentials: { accessKeyId: 'AKIDNODE', secretAccessKey: 'node' }, maxAttempts: 1 }),
  );
  return { store: new CredentialStore(sts, { sessionTtlMs: 15 * 60_000, errorTtlMs: 0, ...options }), sts };
}

t.test('credentials one proxy hands over are served by the next at once, in-use keys first; one renewal shows STS works', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const old = storeFor(moto);
  const web = { roleArn: role('web'), externalId: null, sessionName: 'apps.web' };
  const batch = { roleArn: role('batch'), externalId: 'ext-1', sessionName: 'apps.batch' };
  const gone = { roleArn: role('gone'), externalId: null, sessionName: 'apps.gone' };
  for (const [owner, parameters] of [
    ['web-1', web],
    ['web-2', web],
    ['batch-1', batch],
    ['gone-1', gone],
  ] as const)
    old.store.acquire(owner, parameters);
  while (old.store.pending > 0) await sleep(10);
  old.store.release('gone-1'); // kept for its workload's next pod, handed over last
  const handed = old.store.handOver(Date.now());
  t.same(
    handed.map((h) => h.parameters.roleArn),
    [role('web'), role('batch'), role('gone')],
  );
  old.store.close();

  const next = storeFor(moto);
  t.teardown(() => next.store.close());
  const back = takeBack(handoverText(handed, Date.now()).text, Date.now());
  t.equal(next.store.takeOver(back.items, Date.now()), 3);
  const entry = next.store.acquire('web-1', web);
  const batchEntry = next.store.acquire('batch-1', batch);
  t.equal(entry.current(Date.now())?.accessKeyId, handed[0]?.credentials.accessKeyId, 'the same credentials, at once');
  t.equal(batchEntry.current(Date.now())?.accessKeyId, handed[1]?.credentials.accessKeyId);
  t.equal(next.store.stats.reused, 2);
  t.match(credentialsUnready(next.store.health(Date.now())), /^no AssumeRole has succeeded yet/, 'not ready on credentials it did not fetch');
  while (next.sts.calls.length === 0) await sleep(5);
  t.same(
    next.sts.calls.map((c) => c.roleArn),
    [role('web')],
    'one call: the first key a pod uses is renewed at once',
  );
  await entry.fetching;
  t.equal(credentialsUnready(next.store.health(Date.now())), null, 'ready once STS answered');
  t.equal(next.sts.calls.length, 1, 'the other keys wait for their renewal points');
  t.equal(batchEntry.current(Date.now())?.accessKeyId, handed[1]?.credentials.accessKeyId);
});

t.test('after a handover, a node whose STS calls fail is not ready, though it serves what it took over', async (t) => {
  const sts = new CountingAssumer(
    new StsRoleAssumer({
      region: 'us-east-1',
      endpoint: `http://${CLOSED_ADDRESS}`, // STS down
      credentials: { accessKeyId: 'AKIDNODE', secretAccessKey: 'node' },
      maxAttempts: 1,
    }),
  );
  const store = new CredentialStore(sts, { sessionTtlMs: 15 * 60_000, errorTtlMs: 0 });
  t.teardown(() => store.close());
  const now = Date.now();
  store.takeOver([item('web', 20 * 60_000, now)], now);
  const entry = store.acquire('web-1', item('web', 0).parameters);
  t.equal(entry.current(Date.now())?.accessKeyId, 'ASIAWEB', 'served');
  while (sts.calls.length === 0) await sleep(5);
  await entry.fetching;
  t.match(credentialsUnready(store.health(Date.now())), /^no role could be assumed: STS answered ECONNREFUSED for 1 of 1 roles in use/);
  t.equal(entry.current(Date.now())?.accessKeyId, 'ASIAWEB', 'still served while STS fails, until shortly before expiry');
});

t.test('a taken-over key a pod uses is renewed at the previous proxy’s point; one no pod takes up is dropped there', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  // Short grants, no jitter: issued 5 s ago for 8 s, renewed when the TTL (2 s) remains,
  // 1 s from now (not halfway through the 3 s left, as for a grant of 3 s made now).
  const { store, sts } = storeFor(moto, { sessionTtlMs: 2_000, staleMarginMs: 500, random: () => 0 });
  t.teardown(() => store.close());
  const now = Date.now();
  const issued = (name: string): HandedOver => {
    const taken = item(name, 3_000, now);
    return { ...taken, credentials: { ...taken.credentials, issuedAt: new Date(now - 5_000) } };
  };
  t.equal(store.takeOver([issued('used'), issued('unused')], now), 2);
  // A key of its own first: the node's first fetch shows STS works, so no taken-over key is renewed early.
  await store.acquire('other', { roleArn: role('other'), externalId: null, sessionName: 'apps.other' }).fetching;
  store.acquire('pod', issued('used').parameters);
  const renewals = (name: string): number[] => sts.calls.filter((c) => c.roleArn === role(name)).map((c) => c.at - now);
  await sleep(800 - (Date.now() - now));
  t.same(renewals('used'), [], 'nothing renewed before the point');
  while (renewals('used').length === 0 && Date.now() - now < 10_000) await sleep(20);
  const renewedAfter = renewals('used')[0] ?? Infinity;
  t.ok(renewedAfter >= 950 && renewedAfter < 1_400, `renewed ${renewedAfter} ms after the handover (its point: 1,000)`);
  t.same(renewals('unused'), [], 'only the key a pod uses is renewed');
  t.equal(store.size, 2, 'the unused key is dropped at its point');
});

t.test('keys held already, about to stop being served, or past the bound of kept entries are not taken over', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto, { retainedMax: 2 });
  t.teardown(() => store.close());
  const now = Date.now();
  const held = item('held', 600_000, now);
  store.acquire('pod', held.parameters);
  const items = [held, item('stale', 30_000, now), item('a', 600_000, now), item('b', 600_000, now), item('c', 600_000, now)];
  t.equal(store.takeOver(items, now), 2, 'a and b: held is held, stale is within the stale margin, c is past the bound');
  t.equal(sts.calls.length, 1, 'the held key was fetched by its pod, not replaced');
});
