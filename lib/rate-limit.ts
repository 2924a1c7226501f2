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

  /** A new rate and burst from `now` on; tokens above the new burst are given up. */
  setRate(perSecond: number, burst: number, now: number): void {
    this.refill(now);
    this.perMs = perSecond / 1000;
    this.capacity = Math.max(1, burst);
    this.tokens = Math.min(this.tokens, this.capacity);
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
 * - Cut on `Throttling`: halved, then not again until calls sent at the new rate can
 *   have come back (`holdMs`, or the time between two calls at the new rate, whichever
 *   is longer): the throttling of calls already sent is the same signal, and taking it
 *   again would sink a slow node to the minimum. A fleet over the limit halves until it
 *   is under it, so it ends between half the limit and the limit.
 * - Regained on success, slowly: the rate doubles every `doublingMs` of calls that
 *   succeed, up to the maximum. Growth in proportion to the rate keeps the fleet's pace
 *   the same whatever its size (a fixed step per node would grow a 5,000-node fleet
 *   5,000 times as fast), and slow enough that probing the limit again costs little.
 */
export interface AdaptiveRatePolicy {
  maxPerSecond: number;
  minPerSecond: number;
  /** The rate after a throttling, as a share of the rate before. */
  decrease: number;
  holdMs: number;
  doublingMs: number;
}

/** Calls a pod is waiting for: the load kube2iam would make; regained within seconds. */
export const DEMAND_RATE_POLICY: Omit<AdaptiveRatePolicy, 'maxPerSecond'> = {
  minPerSecond: 0.05,
  decrease: 0.5,
  holdMs: 500,
  doublingMs: 10_000,
};

/** Calls no pod waits for (prefetches, renewals, retries): the load this proxy adds; it yields to any throttling and comes back over minutes. */
export const BACKGROUND_RATE_POLICY: Omit<AdaptiveRatePolicy, 'maxPerSecond'> = {
  minPerSecond: 0.01,
  decrease: 0.5,
  holdMs: 500,
  doublingMs: 60_000,
};

export interface AdaptiveRateState {
  rate: number;
  /** When the rate last changed. */
  changedAt: number;
  throttledAt: number;
}

export function initialRate(policy: AdaptiveRatePolicy, now: number): AdaptiveRateState {
  return { rate: policy.maxPerSecond, changedAt: now, throttledAt: -Infinity };
}

export function afterThrottling(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy): AdaptiveRateState {
  if (now - state.throttledAt < Math.max(policy.holdMs, 1000 / state.rate)) return state;
  return { rate: Math.max(policy.minPerSecond, state.rate * policy.decrease), changedAt: now, throttledAt: now };
}

export function afterSuccess(state: AdaptiveRateState, now: number, policy: AdaptiveRatePolicy): AdaptiveRateState {
  if (state.rate >= policy.maxPerSecond || now <= state.changedAt) return state;
  return { ...state, rate: Math.min(policy.maxPerSecond, state.rate * 2 ** ((now - state.changedAt) / policy.doublingMs)), changedAt: now };
}

/** Exponential back-off with equal jitter: half the step fixed, half random. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** A token bucket whose rate follows throttling by an AdaptiveRatePolicy (the burst keeps its share of the rate). */
export class AdaptiveBucket {
  private readonly policy: AdaptiveRatePolicy;
  private readonly burstSeconds: number;
  private readonly bucket: TokenBucket;
  private state: AdaptiveRateState;

  constructor(policy: AdaptiveRatePolicy, burstSeconds: number, now: number) {
    this.policy = policy;
    this.burstSeconds = burstSeconds;
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
    return this.bucket.take(now);
  }

  throttled(now: number): void {
    this.adapt(afterThrottling(this.state, now, this.policy), now);
  }

  succeeded(now: number): void {
    this.adapt(afterSuccess(this.state, now, this.policy), now);
  }

  private adapt(state: AdaptiveRateState, now: number): void {
    if (state === this.state) return;
    this.state = state;
    this.bucket.setRate(state.rate, state.rate * this.burstSeconds, now);
  }
}
