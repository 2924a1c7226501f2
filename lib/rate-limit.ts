// Rates this node holds itself to: a token bucket (the calls it makes to STS, so a node
// starting hundreds of pods stays under STS's quota; the live API reads a terminating
// pod's requests can cause) and the back-off between failed attempts.

export class TokenBucket {
  private readonly perMs: number;
  private readonly capacity: number;
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

  /** When the next token will be there. */
  nextAt(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? now : now + Math.ceil((1 - this.tokens) / this.perMs);
  }
}

/** Exponential back-off with equal jitter: half the step fixed, half random. */
export function backoffDelay(failures: number, baseMs: number, maxMs: number, random: () => number): number {
  const step = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}
