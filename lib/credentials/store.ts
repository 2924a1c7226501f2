// CredentialStore: credentials for every (role ARN, external ID, session name) that an
// indexed pod uses, fetched as soon as the pod is known and renewed ahead of expiry, so
// a request is answered from memory and never waits for STS.
//
// - Keyed by every parameter sent to STS, never by role ARN alone: a pod only ever gets
//   credentials fetched with its own parameters.
// - Single-flight: one STS call per key at a time, however many pods or requests need it.
// - Renewal: DurationSeconds is twice the session TTL, and an entry is renewed (with a
//   little jitter) when less than the TTL remains, so answers carry at least the TTL.
// - Failures: per-key exponential back-off with jitter, errors remembered for the error
//   TTL. While STS fails, the last good credentials are served until `staleMarginMs`
//   before they expire; never after.
// - Fleet load: the node's STS calls are paced in two classes, each by a token bucket
//   whose rate is cut when STS throttles the account (AdaptiveRatePolicy), under one
//   fixed bucket (`stsRatePerSecond`) for both. Calls a pod waits for (`demand`) go first
//   and come back within seconds; calls no pod waits for (prefetches, renewals) yield to
//   any throttling and come back over minutes, so the load this proxy adds to pods' own
//   gives way first. Keys the first pod listing brings are fetched over
//   `prefetchWindowMs`, not in one burst, so a rollout restarting hundreds of nodes does
//   not land on STS at once.
// - Restarts: credentials a previous proxy on the node handed over (handover.ts) are
//   taken as entries no pod uses yet (below), so a rollout refetches nothing it held;
//   the first a pod uses is renewed within seconds, so readiness still shows STS works.
// - An entry whose last pod leaves keeps its credentials, not renewed, until its renewal
//   point (the next pod of the same workload, a Job's retry or a Recreate rollout's, is
//   answered at once, with no STS call, even while STS is slow); then it is dropped. At
//   most `retainedMax` such entries are kept, the oldest dropped first.

import type { HandedOver } from './handover.js';
import { AdaptiveBucket, type AdaptiveRatePolicy, BACKGROUND_RATE_POLICY, backoffDelay, DEMAND_RATE_POLICY, TokenBucket } from '../rate-limit.js';
import { type RenewalPolicy, renewalAfterHandover, renewalAt, servableUntil } from './renewal.js';
import { RefreshScheduler, type Scheduled } from './scheduler.js';
import { AssumeRoleError, type AssumedCredentials, type AssumeRoleRequest, isThrottling, type RoleAssumer } from './sts.js';

export type CredentialParameters = Omit<AssumeRoleRequest, 'durationSeconds'>;

export interface CredentialStoreOptions {
  /** kube2iam's --iam-role-session-ttl: credentials last twice this and are renewed when less remains. */
  sessionTtlMs: number;
  /** kube2iam's --iam-role-error-ttl: an error is answered, and not retried, for this long. */
  errorTtlMs: number;
  /** Credentials this close to expiry are never served. */
  staleMarginMs: number;
  /** STS calls per second for the whole node at most, and the burst allowed (its share of the rate is kept when the rate adapts). */
  stsRatePerSecond: number;
  stsBurst: number;
  /** How the rate of calls pods wait for, and of the others, follow throttling, each up to `stsRatePerSecond`. */
  demandRate: Omit<AdaptiveRatePolicy, 'maxPerSecond'>;
  backgroundRate: Omit<AdaptiveRatePolicy, 'maxPerSecond'>;
  /** Keys of the pods listed at start are fetched at random points of this window from the store's start (one at once, for readiness). */
  prefetchWindowMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Renewals are spread over this fraction of the TTL before their due time. */
  renewalJitter: number;
  random: () => number;
  /** Entries no pod uses that are kept for the next pod of their workload, at most. */
  retainedMax: number;
  /** Told of every failed AssumeRole, with STS's whole message (for the log, never for a pod). */
  onFailure: (failure: StsFailure) => void;
}

export interface StsFailure {
  key: string;
  parameters: CredentialParameters;
  /** Pods answered from this key (they get 500 until a success). */
  pods: number;
  /** STS's error code (`AccessDenied`, `Throttling`, ...); the only part a pod is told. */
  code: string;
  message: string;
  /** Failures in a row for this key. */
  failures: number;
  retryInMs: number;
}

/** After a handover, the first key a pod uses is renewed within this long (and `prefetchWindowMs`), for readiness. */
export const HANDOVER_CHECK_SPREAD_MS = 10_000;

/** A throttled call a pod waits for is tried again this many times within its wait, 150..300 ms apart (paced as a pod's call). */
const QUICK_RETRIES = 2;
const QUICK_RETRY_MS = 300;

export const DEFAULT_STORE_OPTIONS: Omit<CredentialStoreOptions, 'sessionTtlMs' | 'errorTtlMs'> = {
  staleMarginMs: 60_000,
  stsRatePerSecond: 20,
  stsBurst: 40,
  demandRate: DEMAND_RATE_POLICY,
  backgroundRate: BACKGROUND_RATE_POLICY,
  prefetchWindowMs: 0,
  backoffBaseMs: 1_000,
  backoffMaxMs: 60_000,
  renewalJitter: 0.1,
  random: Math.random,
  retainedMax: 1_000,
  onFailure: () => undefined,
};

/** The parameters as one string; the only identity an entry has. */
/** How long a pod's request waits for a fetch of its credentials before it is answered with what there is. */
export const FETCH_WAIT_MS = 800;

/**
 * A pod asked and `entry` has no credentials to serve: demands them (`demand`, the
 * store's) and calls `answer` once that fetch settles or FETCH_WAIT_MS has passed, or at
 * once when nothing will come; `fail` gets an error thrown on the way.
 */
export function answerAfterFetch(
  entry: CredentialEntry,
  demand: (entry: CredentialEntry) => Promise<void> | null,
  answer: () => void,
  fail: (error: unknown) => void,
): void {
  const outcome = demand(entry);
  if (outcome === null) {
    answer();
    return;
  }
  Promise.race([outcome, new Promise((resolve) => setTimeout(resolve, FETCH_WAIT_MS).unref())])
    .then(answer)
    .catch(fail);
}

export function credentialKey(p: CredentialParameters): string {
  return JSON.stringify([p.roleArn, p.externalId, p.sessionName]);
}

export interface StoreHealth {
  /** Keys at least one pod uses. */
  inUse: number;
  /** Of them, with credentials to serve. */
  serving: number;
  /** Of them, with none and a failure as the last outcome. */
  failing: number;
  /** The failing keys by STS's error code. */
  codes: Record<string, number>;
  /** Of them, served with credentials handed over while no AssumeRole of this proxy has succeeded yet. */
  unverified: number;
}

/**
 * Why this node cannot serve credentials at all, or null. Ready when no pod needs a role
 * yet or some role in use has credentials: a wrong region, node credentials STS refuses
 * or a node role no role trusts fail every key, while one team's broken role fails only
 * its own: its pods get 500 and the log names it. (Where it is the only role in use on
 * the node, the node shows not ready until it is fixed or its pods leave.)
 */
export function credentialsUnready(health: StoreHealth): string | null {
  if (health.inUse === 0 || health.serving > 0) return null;
  if (health.failing < health.inUse)
    return health.unverified > 0 ? 'no AssumeRole has succeeded yet (credentials handed over are served meanwhile)' : 'credentials not fetched yet';
  const codes = Object.entries(health.codes)
    .map(([code, n]) => `${code} for ${n}`)
    .join(', ');
  return `no role could be assumed: STS answered ${codes} of ${health.inUse} roles in use (the log names them)`;
}

/** Credentials as STS issued them, with when: the data an answer is rendered from. */
export interface IssuedCredentials extends AssumedCredentials {
  issuedAt: Date;
}

export class CredentialEntry implements Scheduled {
  readonly key: string;
  readonly parameters: CredentialParameters;
  /** The latest credentials; null until the first success. */
  credentials: IssuedCredentials | null = null;
  expiresAt = 0;
  /** `credentials` may be served until this time. */
  servableUntil = 0;
  /** The last STS failure, one line; null after a success. */
  lastError: string | null = null;
  /** STS's error code of the last failure (all a pod is told of it); null after a success. */
  errorCode: string | null = null;
  /** `credentials` came from the previous proxy on the node, not from this one's STS calls. */
  handedOver = false;
  errorUntil = 0;
  failures = 0;
  users = 0;
  dropped = false;
  /** The STS call in flight, if any (single-flight). */
  fetching: Promise<void> | null = null;
  dueAt = 0;
  heapIndex = -1;
  /** Waiting in one of the store's queues for an STS token. */
  queued = false;
  /** A pod asked while there was nothing to serve: goes ahead of prefetches and renewals. */
  demanded = false;
  /** Throttled calls tried again at once for the pod waiting (at most QUICK_RETRIES). */
  quickRetries = 0;
  /** Settles the promises `CredentialStore.demand` gave out, at the next outcome. */
  settle: (() => void) | null = null;
  settled: Promise<void> | null = null;

  constructor(key: string, parameters: CredentialParameters) {
    this.key = key;
    this.parameters = parameters;
  }

  /** The document to answer with at `now`, or null when there are no servable credentials. */
  current(now: number): IssuedCredentials | null {
    return now < this.servableUntil ? this.credentials : null;
  }
}

export class CredentialStats {
  stsCalls = 0;
  stsErrors = 0;
  stsLatencyTotalMs = 0;
  stsLatencyMaxMs = 0;
  renewals = 0;
  rateLimited = 0;
  /** Entries dropped: at their renewal point with no pod using them, or past `retainedMax`. */
  dropped = 0;
  /** Pods answered from an entry their workload's earlier pod left, with no STS call. */
  reused = 0;
  /** Calls STS refused for the account's rate (`Throttling`). */
  throttled = 0;
  /** Fetches a pod's request moved ahead of prefetches and renewals. */
  demanded = 0;
}

/** Entries waiting for a token, first come first served. */
class EntryQueue {
  private items: CredentialEntry[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(entry: CredentialEntry): void {
    this.items.push(entry);
  }

  peek(): CredentialEntry | undefined {
    return this.items[this.head];
  }

  shift(): void {
    if (++this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
  }
}

export class CredentialStore {
  readonly stats = new CredentialStats();
  private readonly options: CredentialStoreOptions;
  private readonly renewal: RenewalPolicy;
  private readonly assumer: RoleAssumer;
  private readonly entries = new Map<string, CredentialEntry>();
  private readonly owners = new Map<string, CredentialEntry>();
  /** Entries no pod uses, with credentials still good, oldest first (a Map keeps insertion order). */
  private readonly retained = new Map<string, CredentialEntry>();
  private readonly scheduler: RefreshScheduler<CredentialEntry>;
  /** Every call takes a token here and one from its class's bucket. */
  private readonly bucket: TokenBucket;
  private readonly demandPace: AdaptiveBucket;
  private readonly backgroundPace: AdaptiveBucket;
  /** Due entries waiting for a token: those pods asked for first; drained by one timer. */
  private readonly demandQueue = new EntryQueue();
  private readonly queue = new EntryQueue();
  private drainTimer: NodeJS.Timeout | null = null;
  private drainAt = Infinity;
  private readonly startedAt = Date.now();
  /** A key has been fetched without waiting for the window (the first shows STS works). */
  private fetchedFirst = false;
  /** An AssumeRole of this proxy has succeeded: credentials handed over count for readiness from then. */
  private stsAnswered = false;
  /** Until the pods listed at start are all known (`listed`), new keys are spread over the window. */
  private starting = true;
  private closed = false;

  constructor(assumer: RoleAssumer, options: Partial<CredentialStoreOptions> & Pick<CredentialStoreOptions, 'sessionTtlMs' | 'errorTtlMs'>) {
    this.assumer = assumer;
    this.options = { ...DEFAULT_STORE_OPTIONS, ...options };
    this.renewal = { sessionTtlMs: this.options.sessionTtlMs, staleMarginMs: this.options.staleMarginMs, jitter: this.options.renewalJitter };
    this.scheduler = new RefreshScheduler((entry, now) => this.renewalDue(entry, now));
    const o = this.options;
    this.bucket = new TokenBucket(o.stsRatePerSecond, o.stsBurst, this.startedAt);
    const burstSeconds = o.stsBurst / o.stsRatePerSecond;
    this.demandPace = new AdaptiveBucket({ ...o.demandRate, maxPerSecond: o.stsRatePerSecond }, burstSeconds, this.startedAt, o.random);
    this.backgroundPace = new AdaptiveBucket({ ...o.backgroundRate, maxPerSecond: o.stsRatePerSecond }, burstSeconds, this.startedAt, o.random);
  }

  /** The node's STS rates now, calls per second: `stsRatePerSecond`, less while STS throttles. */
  get stsRates(): { demand: number; background: number } {
    return { demand: this.demandPace.rate, background: this.backgroundPace.rate };
  }

  get size(): number {
    return this.entries.size;
  }

  /** Entries kept for a workload's next pod. */
  get retainedCount(): number {
    return this.retained.size;
  }

  /**
   * `owner` (a pod) uses credentials with these parameters from now on. A new key is
   * fetched at once. Returns the entry the owner's requests are answered from.
   */
  acquire(owner: string, parameters: CredentialParameters): CredentialEntry {
    const key = credentialKey(parameters);
    const previous = this.owners.get(owner);
    if (previous !== undefined) {
      if (previous.key === key) return previous;
      this.releaseEntry(previous);
    }
    let entry = this.entries.get(key);
    const created = entry === undefined;
    if (entry === undefined) {
      entry = new CredentialEntry(key, parameters);
      this.entries.set(key, entry);
    } else if (entry.users === 0) {
      this.retained.delete(key);
      this.stats.reused++;
    }
    entry.users++;
    this.owners.set(owner, entry);
    if (created) this.firstFetch(entry, Date.now());
    else if (entry.handedOver && !this.fetchedFirst) {
      // Readiness must still show STS works for this node: a rollout of a build that
      // cannot reach STS stops at its first nodes, not when the handed-over grants run
      // out. At a random point of a few seconds, so a batch of nodes restarted together
      // does not call together.
      this.fetchedFirst = true;
      const now = Date.now();
      this.scheduler.schedule(entry, now + this.options.random() * Math.min(this.options.prefetchWindowMs, HANDOVER_CHECK_SPREAD_MS));
    }
    return entry;
  }

  /**
   * A pod asked for the entry's credentials and there are none to serve: its fetch goes
   * ahead of every prefetch and renewal (and past the back-off of a throttled call,
   * which is the account's state, not the role's). Settles at the entry's next outcome;
   * null when nothing will come (an error within the error TTL or its back-off, a
   * dropped entry): the pod is answered with what there is.
   */
  demand(entry: CredentialEntry): Promise<void> | null {
    if (entry.dropped || this.closed) return null;
    const now = Date.now();
    if (entry.fetching === null) {
      const throttled = entry.errorCode !== null && isThrottling(entry.errorCode);
      if (entry.errorCode !== null && !throttled && (now < entry.errorUntil || (entry.heapIndex !== -1 && entry.dueAt > now))) return null;
      if (!entry.demanded) {
        this.stats.demanded++;
        entry.demanded = true;
        if (entry.queued) {
          this.demandQueue.push(entry);
          this.armDrain(now);
        } else {
          this.scheduler.cancel(entry);
          entry.errorUntil = 0;
          this.renewalDue(entry, now);
        }
      }
    }
    if (entry.settled === null) entry.settled = new Promise<void>((resolve) => (entry.settle = resolve));
    return entry.settled;
  }

  /** `owner` is gone or no longer uses credentials. */
  release(owner: string): void {
    const entry = this.owners.get(owner);
    if (entry === undefined) return;
    this.owners.delete(owner);
    this.releaseEntry(entry);
  }

  /** How the keys pods use stand at `now` (readiness). */
  health(now: number): StoreHealth {
    const health: StoreHealth = { inUse: 0, serving: 0, failing: 0, codes: {}, unverified: 0 };
    for (const entry of this.entries.values()) {
      if (entry.users === 0) continue;
      health.inUse++;
      const current = entry.current(now) !== null;
      if (current && (this.stsAnswered || !entry.handedOver)) health.serving++;
      else if (entry.errorCode !== null) {
        health.failing++;
        health.codes[entry.errorCode] = (health.codes[entry.errorCode] ?? 0) + 1;
      } else if (current) health.unverified++;
    }
    return health;
  }

  /** Up to `max` of the owners answered from `key` (pods named in a failure's log line). */
  ownersOf(key: string, max: number): string[] {
    const out: string[] = [];
    for (const [owner, entry] of this.owners) {
      if (entry.key !== key) continue;
      out.push(owner);
      if (out.length === max) break;
    }
    return out;
  }

  /** Entries with a call in flight or waiting for a token (for tests and stats). */
  get pending(): number {
    let n = this.queue.length + this.demandQueue.length;
    for (const entry of this.entries.values()) if (entry.fetching !== null) n++;
    return n;
  }

  /** Keys pods are waiting for (`demand` gave out a promise not yet settled): how much a throttled node has still to ask. */
  private keysAwaited(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.settled !== null) n++;
    return n;
  }

  close(): void {
    this.closed = true;
    this.scheduler.close();
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.assumer.close();
  }

  private releaseEntry(entry: CredentialEntry): void {
    if (--entry.users > 0) return;
    // Kept while it has good credentials, a renewal in flight included (its answer is kept
    // too, until the next renewal point); one waiting for an STS token is dropped at its turn.
    if (this.options.retainedMax > 0 && entry.current(Date.now()) !== null) {
      this.retained.set(entry.key, entry);
      if (this.retained.size > this.options.retainedMax) this.drop(this.retained.values().next().value as CredentialEntry);
      return;
    }
    this.drop(entry);
  }

  private drop(entry: CredentialEntry): void {
    entry.dropped = true;
    this.entries.delete(entry.key);
    this.retained.delete(entry.key);
    this.scheduler.cancel(entry);
    this.stats.dropped++;
  }

  /** Every entry's credentials still served at `now`, those pods use first: what this proxy hands to the next on its node. */
  handOver(now: number): HandedOver[] {
    const inUse: HandedOver[] = [];
    const unused: HandedOver[] = [];
    for (const entry of this.entries.values()) {
      const credentials = entry.current(now);
      if (credentials !== null) (entry.users > 0 ? inUse : unused).push({ parameters: entry.parameters, credentials });
    }
    return inUse.concat(unused);
  }

  /**
   * Credentials the previous proxy on this node handed over, taken before any pod is
   * known, as entries no pod uses: a pod whose key is among them is answered at once
   * with no STS call, and the entry is renewed at the point the previous proxy had
   * (`renewalAfterHandover`); one no pod takes up is dropped there. At most
   * `retainedMax` are taken; returns how many.
   */
  takeOver(items: HandedOver[], now: number): number {
    const o = this.options;
    let taken = 0;
    for (const { parameters, credentials } of items) {
      if (this.retained.size >= o.retainedMax) break;
      const key = credentialKey(parameters);
      if (this.entries.has(key) || servableUntil(credentials.expiration.getTime(), o.staleMarginMs) <= now) continue;
      const entry = new CredentialEntry(key, parameters);
      this.grant(entry, credentials);
      entry.handedOver = true;
      this.entries.set(key, entry);
      this.retained.set(key, entry);
      this.scheduler.schedule(entry, renewalAfterHandover(now, credentials.issuedAt.getTime(), entry.expiresAt, this.renewal, o.random(), o.prefetchWindowMs));
      taken++;
    }
    return taken;
  }

  /** The pods listed at start are all known: keys from now on are a new pod's, fetched at once. */
  listed(): void {
    this.starting = false;
  }

  /** A new key: fetched at once, or, listed at start, at a random point of the window. */
  private firstFetch(entry: CredentialEntry, now: number): void {
    const windowEnd = this.startedAt + this.options.prefetchWindowMs;
    if (!this.starting || now >= windowEnd || !this.fetchedFirst) {
      this.fetchedFirst = true;
      this.renewalDue(entry, now);
      return;
    }
    this.scheduler.schedule(entry, now + this.options.random() * (windowEnd - now));
  }

  /** The entry's fetch or renewal is due: start it unless a limit says later. */
  private renewalDue(entry: CredentialEntry, now: number): void {
    if (entry.dropped || entry.fetching !== null || entry.queued || this.closed) return;
    if (entry.users === 0) {
      // A retained entry's renewal point: no pod came back for it.
      this.drop(entry);
      return;
    }
    if (now < entry.errorUntil) {
      this.scheduler.schedule(entry, entry.errorUntil);
      return;
    }
    if (this.queue.length === 0 && this.demandQueue.length === 0 && this.takeToken(entry.demanded, now)) {
      this.fetch(entry, now);
      return;
    }
    // Out of tokens: wait in line, so a burst costs one timer, not a reschedule per entry.
    this.stats.rateLimited++;
    entry.queued = true;
    (entry.demanded ? this.demandQueue : this.queue).push(entry);
    this.armDrain(now);
  }

  /** A token from the node's bucket and from the class's, or neither. */
  private takeToken(demanded: boolean, now: number): boolean {
    const pace = demanded ? this.demandPace : this.backgroundPace;
    if (this.bucket.nextAt(now) > now || pace.nextAt(now) > now) return false;
    return this.bucket.take(now) && pace.take(now);
  }

  /** Arms the drain for the first queued call's token; earlier when a pod's call joins behind a slow background one. */
  private armDrain(now: number): void {
    if (this.closed) return;
    const pace = this.demandQueue.length > 0 ? this.demandPace : this.backgroundPace;
    const at = Math.max(now + 1, this.bucket.nextAt(now), pace.nextAt(now));
    if (this.drainTimer !== null) {
      if (at >= this.drainAt) return;
      clearTimeout(this.drainTimer);
    }
    this.drainAt = at;
    this.drainTimer = setTimeout(this.drain, at - now);
    this.drainTimer.unref();
  }

  private readonly drain = (): void => {
    this.drainTimer = null;
    this.drainAt = Infinity;
    const now = Date.now();
    if (this.drainQueue(this.demandQueue, now)) this.drainQueue(this.queue, now);
    if (this.queue.length + this.demandQueue.length > 0) this.armDrain(now);
  };

  /** Starts the queue's entries while there are tokens; true when it is empty. */
  private drainQueue(queue: EntryQueue, now: number): boolean {
    for (let entry = queue.peek(); entry !== undefined; entry = queue.peek()) {
      // An entry pods asked for is in both queues: the first to reach it starts it.
      const wanted = entry.queued && !entry.dropped && entry.users > 0;
      if (wanted && !this.takeToken(queue === this.demandQueue, now)) return false;
      queue.shift();
      if (!entry.queued) continue;
      entry.queued = false;
      if (wanted) this.fetch(entry, now);
      else if (!entry.dropped) this.drop(entry); // its last pod left while it waited: nothing to renew it for
    }
    return true;
  }

  private fetch(entry: CredentialEntry, started: number): void {
    const o = this.options;
    const renewal = entry.credentials !== null;
    const demanded = entry.demanded;
    const pace = demanded ? this.demandPace : this.backgroundPace;
    entry.demanded = false;
    let retrying = false;
    this.stats.stsCalls++;
    if (renewal) this.stats.renewals++;
    entry.fetching = this.assumer
      .assumeRole({ ...entry.parameters, durationSeconds: Math.round((2 * o.sessionTtlMs) / 1000) })
      .then(
        (credentials) => {
          const now = Date.now();
          this.recordLatency(now - started);
          this.stsAnswered = true;
          if (entry.dropped) return;
          this.grant(entry, { ...credentials, issuedAt: new Date(now) });
          entry.handedOver = false;
          entry.lastError = null;
          entry.errorCode = null;
          entry.errorUntil = 0;
          entry.failures = 0;
          entry.quickRetries = 0;
          pace.succeeded(now);
          // A regained rate brings queued calls' tokens nearer than the drain armed at the lower one.
          if (this.queue.length + this.demandQueue.length > 0) this.armDrain(now);
          this.scheduler.schedule(entry, renewalAt(now, entry.expiresAt, this.renewal, o.random()));
        },
        (error: unknown) => {
          const now = Date.now();
          this.recordLatency(now - started);
          this.stats.stsErrors++;
          if (entry.dropped) return;
          entry.failures++;
          const code = error instanceof AssumeRoleError ? error.code : 'Error';
          if (isThrottling(code)) {
            // Any throttling makes the calls no pod waits for give way.
            this.stats.throttled++;
            pace.throttled(started, now, this.keysAwaited());
            if (pace !== this.backgroundPace) this.backgroundPace.throttled(started, now);
          }
          const message = (error instanceof Error ? error.message : String(error)).replace(/[\r\n]+/g, ' ');
          entry.lastError = `assume role ${entry.parameters.roleArn}: ${message}`;
          entry.errorCode = code;
          entry.errorUntil = now + o.errorTtlMs;
          let delay = Math.max(o.errorTtlMs, backoffDelay(entry.failures, o.backoffBaseMs, o.backoffMaxMs, o.random));
          // A pod is waiting: a throttled call is tried again within its wait (STS frees
          // a share of the account's limit every moment), paced as a pod's call.
          retrying = demanded && isThrottling(code) && entry.settle !== null && entry.quickRetries < QUICK_RETRIES;
          if (retrying) {
            entry.quickRetries++;
            entry.demanded = true;
            entry.errorUntil = 0;
            delay = Math.round(QUICK_RETRY_MS / 2 + (o.random() * QUICK_RETRY_MS) / 2);
          }
          this.scheduler.schedule(entry, now + delay);
          o.onFailure({ key: entry.key, parameters: entry.parameters, pods: entry.users, code, message, failures: entry.failures, retryInMs: delay });
        },
      )
      .finally(() => {
        entry.fetching = null;
        if (retrying) return;
        entry.quickRetries = 0;
        const settle = entry.settle;
        entry.settle = null;
        entry.settled = null;
        settle?.();
      });
  }

  private grant(entry: CredentialEntry, credentials: IssuedCredentials): void {
    entry.credentials = credentials;
    entry.expiresAt = credentials.expiration.getTime();
    entry.servableUntil = servableUntil(entry.expiresAt, this.options.staleMarginMs);
  }

  private recordLatency(ms: number): void {
    this.stats.stsLatencyTotalMs += ms;
    if (ms > this.stats.stsLatencyMaxMs) this.stats.stsLatencyMaxMs = ms;
  }
}
