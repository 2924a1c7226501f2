// Rates this node holds itself to: a token bucket (the calls it makes to STS, so a node
// starting hundreds of pods stays under STS's quota; the live API reads a terminating
// pod's requests can cause), the STS rate adapting to throttling, and the back-off
// between failed attempts.

export class TokenBucket {
  private perMs: number;
  private capacity: number;
  private tokens: number;
  private updatedAt: number;

  constructor(perSecond: number, burst: number, now: number) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError('rate and burst must be positive');
    this.perMs = perSecond / 1000;
    this.capacity = burst;
    this.tokens = burst;
    this.updatedAt = now;
  }

  private refill(now: number): void {
    if (now > this.updatedAt) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.updatedAt) * this.perMs);
      this.updatedAt = now;
    }
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** A new rate and burst from `now` on: tokens above the new burst are given up, or all but `share` of one (where in the new interval the next token comes). */
  setRate(perSecond: number, burst: number, now: number, share?: number): void {
    this.refill(now);
    this.perMs = perSecond / 1000;
    this.capacity = Math.max(1, burst);
    this.tokens = share ?? Math.min(this.tokens, this.capacity);
  }

  /** When the next token will be there. */
  nextAt(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? now : now + Math.ceil((1 - this.tokens) / this.perMs);
  }
}

/**
 * How a node's STS rate follows the account's throttling, with no coordinator: every
 * node of a fleet shares one account-wide STS limit that none of them knows.
 * - Cut on `Throttling`, by `decrease` (`backlogDecrease` while pods wait for several keys).
 *   What is cut is the allowance, unless the node sends
 *   less than it may and the cut would not slow it at all: then the rate it was sending
 *   at (measured over about `measureMs`). Calls no pod waits for are always cut from
 *   what was sent (a node prefetching a few keys at random points of a window sends far
 *   under its allowance). Calls pods wait for are cut from what was sent only in a storm,
 *   when most of them were throttled (`fromSendingShare` of at least `fromSendingCalls`): a
 *   node that sent a few in one busy second and cut from its sending rate would make
 *   its other pods wait seconds.
 * - Only a call sent after the last cut can cut again: the throttling of calls already
 *   sent is the same signal, and taking it again would sink a slow node to the minimum.
 *   A fleet over the limit cuts until it is under it, so it ends between the last cut's
 *   share of the limit and the limit.
 * - Regained on success, slowly: the rate doubles every `doublingMs`, up to the maximum.
 *   Growth in proportion to the rate keeps the fleet's pace the same whatever its size (a
 *   fixed step per node would grow a 5,000-node fleet 5,000 times as fast).
 * - But not while more than `quietShare` of the node's measured calls were throttled. A
 *   node hears of the account only through its own calls, so one growing between them
 *   keeps a fleet that still asks over the limit by about N·2·ln2/doubling calls/s (8/s
 *   for 60 nodes doubling every 10 s, as the simulation's all-nodes start showed). The
 *   hold narrows that; it cannot close it without slowing the node that is left asking
 *   once the others are served.
 */
export interface AdaptiveRatePolicy {
  maxPerSecond: number;
  minPerSecond: number;
  /** The rate after a throttling, as a share of the rate before. */
  decrease: number;
  /**
   * The same while pods wait for two keys or more: each is a call the node has still to
   * make, so its pace must fall faster than one retrying a single key.
   */
  backlogDecrease: number;
  doublingMs: number;
  /** The rate grows only while at most this share of the measured calls were throttled. */
  quietShare: number;
  /** The time constant of the measured sending rate: calls this long ago count 1/e. */
  measureMs: number;
  /**
   * Cut from the measured sending rate (when under the allowance) once at least this
   * share of the measured calls, and at least this many, were throttled: a storm (fewer
   * calls say little of a share). 0 and 0: on every throttling.
   */
  fromSendingShare: number;
  fromSendingCalls: number;
}

/** Calls a pod is waiting for: the load kube2iam would make; regained within seconds. */
export const DEMAND_RATE_POLICY: Omit<AdaptiveRatePolicy, 'maxPerSecond'> = {
  minPerSecond: 0.05,
  // Halved for one key (a new workload's pods on the node, retrying it), quartered for
  // several: a node is cut at most once per call it sends, and in a cold start of every
  // node halving left the fleet over the limit 10 s into the storm; quartering for one
  // key too made a new Deployment's pods wait half as long again (the fleet simulation).
  decrease: 0.5,
  backlogDecrease: 0.25,
  doublingMs: 10_000,
  quietShare: 0.2,
  measureMs: 5_000,
  fromSendingShare: 0.5,
  // A pod's call and its two quick retries, throttled in one busy second, are no storm.
  fromSendingCalls: 8,
};

/** Calls no pod waits for (prefetches, renewals, retries): the load this proxy adds; it yields to any throttling and comes back over minutes. */
export const BACKGROUND_RATE_POLICY: Omit<AdaptiveRatePolicy, 'maxPerSecond'> = {
  minPerSecond: 0.01,
  decrease: 0.5,
  backlogDecrease: 0.5,
  doublingMs: 60_000,
  quietShare: 0.2,
  // Background calls are sparse by design (spread over a window, renewals over a period).
  measureMs: 10_000,
  // Any throttling: a node prefetching at random points of a window sends far under its allowance.
  fromSendingShare: 0,
  fromSendingCalls: 0,
};

export interface AdaptiveRateState {
  rate: number;
  /** When the rate last changed. */
  changedAt: number;
  /** When it was last cut: calls sent before then are the same signal. */
  throttledAt: number;
  /** Calls sent, and of them throttled, each weighted by e^(-age / measureMs), as of `countedAt`. */
  sent: number;
  refused: number;
  countedAt: number;
}

export function initialRate(policy: AdaptiveRatePolicy, now: number): AdaptiveRateState {
  return { rate: policy.maxPerSecond, changedAt: now, throttledAt: -Infinity, sent: 0, refused: 0, countedAt: now };
}

/** The rate the node has been sending at, calls per second (a steady rate r reads r). */
export function sendingRate(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy): number {
  return (state.sent * decay(state, now, policy) * 1000) / policy.measureMs;
}

function decay(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy): number {
  return now > state.countedAt ? Math.exp((state.countedAt - now) / policy.measureMs) : 1;
}

function counted(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy, sent: number, refused: number): AdaptiveRateState {
  const d = decay(state, now, policy);
  return { ...state, sent: state.sent * d + sent, refused: state.refused * d + refused, countedAt: Math.max(now, state.countedAt) };
}

export function afterCall(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy): AdaptiveRateState {
  return counted(state, now, policy, 1, 0);
}

/** A call sent at `sentAt` was throttled at `now`, while pods waited for `keysWaiting` keys. */
export function afterThrottling(state: AdaptiveRateState, sentAt: number, now: number, policy: AdaptiveRatePolicy, keysWaiting = 0): AdaptiveRateState {
  const next = counted(state, now, policy, 0, 1);
  if (sentAt < state.throttledAt) return next;
  const sending = sendingRate(next, now, policy);
  const fromSending = next.refused >= policy.fromSendingCalls && next.refused >= policy.fromSendingShare * next.sent;
  const from = fromSending ? Math.min(state.rate, sending) : state.rate;
  const decrease = keysWaiting >= 2 ? policy.backlogDecrease : policy.decrease;
  return { ...next, rate: Math.max(policy.minPerSecond, from * decrease), changedAt: now, throttledAt: now };
}

export function afterSuccess(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy): AdaptiveRateState {
  if (state.rate >= policy.maxPerSecond) return state;
  const measured = counted(state, now, policy, 0, 0);
  // Still busy: growth starts from here once it is not.
  if (measured.refused > policy.quietShare * measured.sent) return { ...state, changedAt: Math.max(now, state.changedAt) };
  if (now <= state.changedAt) return state;
  return { ...state, rate: Math.min(policy.maxPerSecond, state.rate * 2 ** ((now - state.changedAt) / policy.doublingMs)), changedAt: now };
}

/** Exponential back-off with equal jitter: half the step fixed, half random. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}

/**
 * A token bucket whose rate follows throttling by an AdaptiveRatePolicy (the burst keeps
 * its share of the rate). After a cut the next token comes at a random point of the new
 * call interval: nodes throttled in the same second would otherwise all call again in
 * the same later second, and be throttled together again.
 */
export class AdaptiveBucket {
  private readonly policy: AdaptiveRatePolicy;
  private readonly burstSeconds: number;
  private readonly random: () => number;
  private readonly bucket: TokenBucket;
  private state: AdaptiveRateState;

  constructor(policy: AdaptiveRatePolicy, burstSeconds: number, now: number, random: () => number) {
    this.policy = policy;
    this.burstSeconds = burstSeconds;
    this.random = random;
    this.state = initialRate(policy, now);
    this.bucket = new TokenBucket(policy.maxPerSecond, policy.maxPerSecond * burstSeconds, now);
  }

  get rate(): number {
    return this.state.rate;
  }

  /** When a token is there; `take` after it succeeds. */
  nextAt(now: number): number {
    return this.bucket.nextAt(now);
  }

  take(now: number): boolean {
    if (!this.bucket.take(now)) return false;
    this.state = afterCall(this.state, now, this.policy);
    return true;
  }

  /** A call sent at `sentAt` was throttled, while pods waited for `keysWaiting` keys. */
  throttled(sentAt: number, now: number, keysWaiting = 0): void {
    const state = afterThrottling(this.state, sentAt, now, this.policy, keysWaiting);
    const cut = state.throttledAt !== this.state.throttledAt;
    this.state = state;
    if (cut) this.bucket.setRate(state.rate, state.rate * this.burstSeconds, now, this.random());
  }

  succeeded(now: number): void {
    const state = afterSuccess(this.state, now, this.policy);
    if (state === this.state) return;
    this.state = state;
    this.bucket.setRate(state.rate, state.rate * this.burstSeconds, now);
  }
}
