// The credential store against a real STS emulator (moto_server).

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { CredentialStore, type CredentialEntry, type CredentialStoreOptions, type StsFailure } from '../../lib/credentials/store.js';
import { StsRoleAssumer, type AssumedCredentials, type AssumeRoleRequest, type RoleAssumer } from '../../lib/credentials/sts.js';
import { credentialDocument, PreparedAnswers } from '../../lib/imds/documents.js';
import { MotoServer } from '../harness/moto.js';

const ACCOUNT = '123456789012';
const role = (name: string): string => `arn:aws:iam::${ACCOUNT}:role/${name}`;
const KEYS = { accessKeyId: 'AKIDNODE', secretAccessKey: 'node-secret' };

/** The real STS client, with every call it made recorded; the calls still go to moto. */
class RecordingAssumer implements RoleAssumer {
  readonly calls: Array<{ at: number; request: AssumeRoleRequest; expiration?: number; error?: string }> = [];
  private readonly inner: StsRoleAssumer;
  constructor(inner: StsRoleAssumer) {
    this.inner = inner;
  }
  async assumeRole(request: AssumeRoleRequest): Promise<AssumedCredentials> {
    const call: (typeof this.calls)[number] = { at: Date.now(), request };
    this.calls.push(call);
    try {
      const credentials = await this.inner.assumeRole(request);
      call.expiration = credentials.expiration.getTime();
      return credentials;
    } catch (error) {
      call.error = (error as Error).message;
      throw error;
    }
  }
  close(): void {
    this.inner.close();
  }
}

function storeFor(moto: MotoServer, options: Partial<CredentialStoreOptions> = {}, keys = KEYS): { store: CredentialStore; sts: RecordingAssumer } {
  const sts = new RecordingAssumer(new StsRoleAssumer({ region: 'us-east-1', endpoint: moto.endpoint, credentials: keys, maxAttempts: 1 }));
  const store = new CredentialStore(sts, { sessionTtlMs: 15 * 60_000, errorTtlMs: 0, ...options });
  return { store, sts };
}

async function settled(entry: CredentialEntry): Promise<void> {
  await entry.fetching;
}

function document(entry: CredentialEntry): Record<string, string> | null {
  const credentials = entry.current(Date.now());
  return credentials === null ? null : (JSON.parse(credentialDocument(credentials)) as Record<string, string>);
}

t.test('a pod known to the store gets its credentials from memory: AssumeRole round trip', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto);
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'demo.web', externalId: null });
  await settled(entry);
  const doc = document(entry);
  t.equal(doc?.Code, 'Success');
  t.equal(doc?.Type, 'AWS-HMAC');
  t.match(doc?.AccessKeyId, /^ASIA/);
  t.ok(doc?.Token);
  t.match(doc?.Expiration, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const request = sts.calls[0]?.request;
  t.same(request, { roleArn: role('app'), sessionName: 'demo.web', externalId: null, durationSeconds: 1800 }, 'DurationSeconds is twice the TTL');
  const validFor = (sts.calls[0]?.expiration ?? 0) - Date.now();
  t.ok(validFor > 29 * 60_000, `the answer carries ${Math.round(validFor / 60_000)} minutes`);
});

t.test('single-flight: many pods needing one key at once make one STS call', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto);
  t.teardown(() => store.close());
  const entries = Array.from({ length: 50 }, (_, n) => store.acquire(`pod-${n}`, { roleArn: role('shared'), sessionName: 'demo.web', externalId: null }));
  await Promise.all(entries.map(settled));
  t.equal(sts.calls.length, 1, 'one STS call');
  t.ok(
    entries.every((e) => e === entries[0]),
    'one shared entry',
  );
  t.equal(store.stats.stsCalls, 1);
});

t.test('external IDs are part of the key: a pod never gets credentials fetched with another pod’s', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto);
  t.teardown(() => store.close());
  const withId = store.acquire('pod-a', { roleArn: role('partner'), sessionName: 'demo.web', externalId: 'secret-id' });
  const without = store.acquire('pod-b', { roleArn: role('partner'), sessionName: 'demo.web', externalId: null });
  const otherId = store.acquire('pod-c', { roleArn: role('partner'), sessionName: 'demo.web', externalId: 'other-id' });
  await Promise.all([withId, without, otherId].map(settled));
  t.equal(new Set([withId, without, otherId]).size, 3, 'three entries');
  t.equal(sts.calls.length, 3, 'three STS calls');
  t.same(sts.calls.map((c) => c.request.externalId).sort(), [null, 'other-id', 'secret-id'].sort());
  const keys = [withId, without, otherId].map((e) => document(e)?.AccessKeyId);
  t.equal(new Set(keys).size, 3, 'three different credentials');
});

t.test('credentials are renewed ahead of expiry, and every answer carries at least the TTL', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const ttl = 1500;
  const { store, sts } = storeFor(moto, { sessionTtlMs: ttl, staleMarginMs: 200 });
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'demo.web', externalId: null });
  await settled(entry);
  const first = document(entry)?.AccessKeyId;
  const minimum = { validity: Infinity };
  const deadline = Date.now() + 4200;
  while (Date.now() < deadline) {
    const valid = entry.expiresAt - Date.now();
    if (entry.current(Date.now()) !== null) minimum.validity = Math.min(minimum.validity, valid);
    await sleep(20);
  }
  t.ok(sts.calls.length >= 3, `${sts.calls.length} STS calls in 4.2 s with 3 s credentials`);
  for (let n = 1; n < sts.calls.length; n++) {
    const left = (sts.calls[n - 1]?.expiration ?? 0) - (sts.calls[n]?.at ?? 0);
    // Renewed with the TTL left, spread up to 10% earlier (the default jitter).
    t.ok(left >= ttl - 50 && left <= ttl * 1.1 + 50, `renewal ${n} with ${left} ms left (TTL ${ttl})`);
  }
  t.ok(minimum.validity >= ttl * 0.85 - 100, `every answer had at least ${minimum.validity} ms left`);
  t.not(document(entry)?.AccessKeyId, first, 'renewed credentials are new ones');
  t.equal(store.stats.stsErrors, 0);
});

t.test('roles fetched together are renewed at spread times, not all at once', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const ttl = 1500;
  const draws = [0, 0.5, 1];
  const { store, sts } = storeFor(moto, { sessionTtlMs: ttl, staleMarginMs: 200, renewalJitter: 0.4, random: () => draws.shift() ?? 0 });
  t.teardown(() => store.close());
  const entries = ['a', 'b', 'c'].map((name) => store.acquire(`pod-${name}`, { roleArn: role(name), sessionName: name, externalId: null }));
  await Promise.all(entries.map(settled));
  await sleep(ttl * 1.3);
  const renewals = sts.calls
    .slice(3)
    .map((call) => call.at - (sts.calls.find((c) => c.request.roleArn === call.request.roleArn)?.at ?? 0))
    .sort((a, b) => a - b);
  t.equal(renewals.length, 3, 'each role renewed once');
  t.ok(
    (renewals[2] ?? 0) - (renewals[0] ?? 0) >= ttl * 0.3,
    `renewals spread over ${(renewals[2] ?? 0) - (renewals[0] ?? 0)} ms: ${renewals.join(', ')} ms after the first fetch`,
  );
});

t.test('while STS is down the last good credentials are served until shortly before expiry, then recovered', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const ttl = 2000;
  const margin = 1000;
  const { store, sts } = storeFor(moto, { sessionTtlMs: ttl, staleMarginMs: margin, backoffBaseMs: 200, backoffMaxMs: 400, renewalJitter: 0 });
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'demo.web', externalId: null });
  await settled(entry);
  const good = document(entry)?.AccessKeyId;
  const expiresAt = entry.expiresAt;
  await moto.stop();

  await sleep(Math.max(0, expiresAt - ttl - Date.now()) + 400); // past the renewal time
  t.ok(store.stats.stsErrors >= 1, 'the renewal failed');
  t.equal(document(entry)?.AccessKeyId, good, 'still serving the last good credentials');
  t.match(entry.lastError ?? '', /assume role arn:aws:iam::123456789012:role\/app/);

  await sleep(Math.max(0, expiresAt - margin - Date.now()) + 50);
  t.equal(entry.current(Date.now()), null, 'never served within the margin of expiry');
  const errorsBefore = store.stats.stsErrors;
  await sleep(900);
  t.ok(store.stats.stsErrors > errorsBefore, 'retries continue with back-off');
  const retryGaps = sts.calls.slice(1).map((c, n) => c.at - (sts.calls[n]?.at ?? 0));
  t.ok(
    retryGaps.slice(1).every((gap) => gap >= 90),
    `retries spaced by back-off: ${retryGaps.join(', ')} ms`,
  );

  await moto.start();
  const restarted = Date.now();
  while (entry.current(Date.now()) === null && Date.now() - restarted < 5000) await sleep(20);
  t.ok(entry.current(Date.now()) !== null, `recovered ${Date.now() - restarted} ms after STS came back`);
  t.not(document(entry)?.AccessKeyId, good, 'with new credentials');
  t.equal(entry.lastError, null);
});

t.test(
  'an entry whose last pod leaves keeps its credentials until its renewal point: the workload’s next pod is answered with no STS call; then it is dropped, not renewed',
  async (t) => {
    const moto = await MotoServer.start();
    t.teardown(() => moto.stop());
    // Credentials for 2 s, renewed when less than 1 s remains.
    const { store, sts } = storeFor(moto, { sessionTtlMs: 1000, staleMarginMs: 100 });
    t.teardown(() => store.close());
    const parameters = { roleArn: role('app'), sessionName: 'demo.job', externalId: null };
    const first = store.acquire('pod-a', parameters);
    await settled(first);
    store.release('pod-a');
    t.equal(store.size, 1, 'kept with no pod using it');
    t.equal(store.retainedCount, 1);
    const calls = sts.calls.length;
    const next = store.acquire('pod-b', parameters); // the Job's retry
    t.equal(next, first, 'the same entry');
    t.not(document(next), null, 'credentials at once');
    t.equal(sts.calls.length, calls, 'no STS call');
    t.equal(store.stats.reused, 1, 'counted as reused');
    t.equal(store.retainedCount, 0, 'in use again');
    store.release('pod-b');
    await sleep(1500);
    t.ok(first.dropped, 'dropped at its renewal point');
    t.equal(store.size, 0);
    t.equal(sts.calls.length, calls, 'not renewed');
    t.equal(store.stats.dropped, 1, 'counted as dropped');
  },
);

t.test('a renewal in flight when the last pod leaves is kept: its answer serves the workload’s next pod with no further STS call', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto, { sessionTtlMs: 1000, staleMarginMs: 100, renewalJitter: 0 });
  t.teardown(() => store.close());
  const parameters = { roleArn: role('app'), sessionName: 'demo.job', externalId: null };
  const entry = store.acquire('pod-a', parameters);
  await settled(entry);
  const first = entry.expiresAt;
  const deadline = Date.now() + 5000;
  while (entry.fetching === null && Date.now() < deadline) await sleep(5);
  t.not(entry.fetching, null, 'the renewal is in flight');
  store.release('pod-a');
  t.equal(store.retainedCount, 1, 'kept');
  await settled(entry);
  t.ok(entry.expiresAt > first, 'the renewal’s answer is kept');
  const calls = sts.calls.length;
  t.equal(store.acquire('pod-b', parameters), entry, 'the next pod gets the same entry');
  t.not(document(entry), null);
  t.equal(sts.calls.length, calls, 'no further STS call');
});

t.test('retained entries are bounded: past the bound the oldest is dropped', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store } = storeFor(moto, { retainedMax: 2 });
  t.teardown(() => store.close());
  const entries = [];
  for (const name of ['one', 'two', 'three']) {
    const entry = store.acquire(`pod-${name}`, { roleArn: role(name), sessionName: `demo.${name}`, externalId: null });
    await settled(entry);
    entries.push(entry);
  }
  for (const name of ['one', 'two', 'three']) store.release(`pod-${name}`);
  t.equal(store.retainedCount, 2);
  t.same(
    entries.map((e) => e.dropped),
    [true, false, false],
    'the first released is the first dropped',
  );
  t.equal(store.stats.dropped, 1);
});

t.test('an entry whose last pod leaves before its credentials arrive is dropped at once, its answer ignored', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store } = storeFor(moto);
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'demo.web', externalId: null });
  store.release('pod-a');
  t.equal(store.size, 0);
  t.ok(entry.dropped);
  await settled(entry);
  t.equal(entry.credentials, null, 'the late answer is not kept');
  t.same(store.ownersOf(entry.key, 10), [], 'the pod holds no key');
});

t.test('a pod that changes role moves to the new key and releases the old one', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store } = storeFor(moto);
  t.teardown(() => store.close());
  const first = store.acquire('pod-a', { roleArn: role('one'), sessionName: 'demo.web', externalId: null });
  const second = store.acquire('pod-a', { roleArn: role('two'), sessionName: 'demo.web', externalId: null });
  await settled(second);
  t.not(first, second);
  t.ok(first.dropped, 'old key dropped');
  t.same(store.ownersOf(second.key, 10), ['pod-a'], 'the pod holds the new key');
  t.equal(store.size, 1);
});

t.test('the node-wide STS rate limit spreads a burst of new keys', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto, { stsRatePerSecond: 10, stsBurst: 3 });
  t.teardown(() => store.close());
  const entries = Array.from({ length: 10 }, (_, n) => store.acquire(`pod-${n}`, { roleArn: role(`r${n}`), sessionName: `ns.w${n}`, externalId: null }));
  const started = Date.now();
  while (entries.some((e) => e.credentials === null) && Date.now() - started < 5000) await sleep(10);
  t.ok(
    entries.every((e) => e.credentials !== null),
    'all fetched',
  );
  const span = (sts.calls.at(-1)?.at ?? 0) - (sts.calls[0]?.at ?? 0);
  t.ok(span >= 600, `10 calls at 10/s with a burst of 3 took ${span} ms`);
  t.ok(store.stats.rateLimited > 0);
});

t.test('the endpoint can come from AWS_ENDPOINT_URL_STS, as with every AWS SDK', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const saved = process.env.AWS_ENDPOINT_URL_STS;
  process.env.AWS_ENDPOINT_URL_STS = moto.endpoint;
  t.teardown(() => {
    if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
    else process.env.AWS_ENDPOINT_URL_STS = saved;
  });
  const sts = new StsRoleAssumer({ region: 'us-east-1', credentials: KEYS, maxAttempts: 1 });
  t.teardown(() => sts.close());
  const credentials = await sts.assumeRole({ roleArn: role('app'), sessionName: 'demo.web', externalId: null, durationSeconds: 900 });
  t.match(credentials.accessKeyId, /^ASIA/);
});

t.test('AccessDenied from IAM-enforcing STS is a clear error and does not disturb other roles', async (t) => {
  const moto = await MotoServer.start({ initialNoAuthActionCount: 3 });
  t.teardown(() => moto.stop());
  const key = await moto.nodeUser(role('allowed-*'));
  const failures: StsFailure[] = [];
  const { store } = storeFor(moto, { backoffBaseMs: 60_000, onFailure: (f) => failures.push(f) }, key);
  t.teardown(() => store.close());
  const allowed = store.acquire('pod-a', { roleArn: role('allowed-app'), sessionName: 'demo.a', externalId: null });
  const denied = store.acquire('pod-b', { roleArn: role('denied-app'), sessionName: 'demo.b', externalId: null });
  await Promise.all([settled(allowed), settled(denied)]);
  t.ok(document(allowed)?.AccessKeyId, 'the allowed role has credentials');
  t.equal(denied.current(Date.now()), null, 'the denied role has none');
  t.match(denied.lastError ?? '', /^assume role arn:aws:iam::123456789012:role\/denied-app: AccessDenied: .*not authorized to perform: sts:AssumeRole/);
  t.equal(denied.lastError?.includes('\n'), false, 'one line');
  t.equal(denied.errorCode, 'AccessDenied');
  const answer = new PreparedAnswers()
    .stsError(denied.errorCode ?? '')
    .bytes(0, false)
    .toString();
  t.match(answer, /^HTTP\/1\.1 500 Internal Server Error\r\n/, 'answered 500');
  t.ok(answer.endsWith('\r\n\r\ncredentials unavailable: STS answered AccessDenied\n'), 'the pod is told STS’s code only');
  t.notMatch(answer, /user\/node|not authorized/, 'never STS’s text, which names the node’s identity');
  t.same(
    failures.map((f) => [f.parameters.roleArn, f.code, f.failures]),
    [[role('denied-app'), 'AccessDenied', 1]],
    'the log is told everything, once',
  );
  t.match(failures[0]?.message, /not authorized to perform: sts:AssumeRole/);
  t.ok((failures[0]?.retryInMs ?? 0) > 0, 'with when it is tried again');
});

t.test('InvalidClientTokenId (the node’s own key unknown to STS) is a clear error', async (t) => {
  const moto = await MotoServer.start({ initialNoAuthActionCount: 0 });
  t.teardown(() => moto.stop());
  const { store } = storeFor(moto, { backoffBaseMs: 60_000 }, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'nope' });
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'demo.web', externalId: null });
  await settled(entry);
  t.equal(entry.current(Date.now()), null);
  t.match(entry.lastError ?? '', /InvalidClientTokenId/);
});

t.test('errors are remembered for the error TTL: no new STS call before it ends', async (t) => {
  const moto = await MotoServer.start({ initialNoAuthActionCount: 0 });
  t.teardown(() => moto.stop());
  const { store, sts } = storeFor(moto, { errorTtlMs: 800, backoffBaseMs: 10, backoffMaxMs: 20 }, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'nope' });
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: role('app'), sessionName: 'demo.web', externalId: null });
  await settled(entry);
  await sleep(600);
  t.equal(sts.calls.length, 1, 'no retry within the error TTL');
  await sleep(600);
  t.equal(sts.calls.length, 2, 'one retry after it');
});
