// Who a ServiceAccount token belongs to, as the API server says (TokenReview): the only
// source of identity for the container-credentials endpoint. A review is kept, by the
// token's hash (the token itself is a bearer secret), until the token expires; a refusal
// for a few seconds, so a pod retrying a bad token costs the API server nothing more.
// Reviews are single-flight per token and rate-limited per caller address and per node,
// so one pod sending forged tokens spends its own share, not its neighbours'. A review
// that could not be made is never a refusal: the pod hears "try again", not "you are
// nobody".

import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { TokenBucket } from '../rate-limit.js';
import { MAX_TOKEN_BYTES, readServiceAccountToken, type ServiceAccountClaims } from './service-account-token.js';

export type TokenVerdict =
  | { kind: 'pod'; namespace: string; serviceAccount: string; podName: string; podUid: string }
  /** 401: not a valid token for this audience; 403: valid, but bound to no pod. */
  | { kind: 'refused'; status: 401 | 403; reason: string }
  /** The review could not be made (API unreachable, refused us, or this node's review rate spent). */
  | { kind: 'unavailable'; reason: string };

/** The status of a TokenReview as the API server answers it (authentication.k8s.io/v1). */
export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; extra?: Record<string, string[] | undefined> };
  audiences?: string[];
  error?: string;
}

const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** What the API server's answer means for a token presented with `audience`. Pure. */
export function reviewVerdict(status: TokenReviewStatus | undefined, audience: string): TokenVerdict {
  if (status?.authenticated !== true)
    return refused(401, `the API server did not authenticate the token: ${status?.error?.slice(0, 200) || 'no reason given'}`);
  // An API server that ignores spec.audiences (one older than 1.13) answers for its own.
  if (!status.audiences?.includes(audience)) return refused(401, `the token is not for audience ${audience}`);
  const user = SERVICE_ACCOUNT_USER.exec(status.user?.username ?? '');
  if (user === null) return refused(403, 'the token is not a service account token');
  const names = status.user?.extra?.[POD_NAME];
  const uids = status.user?.extra?.[POD_UID];
  if (names?.length !== 1 || uids?.length !== 1) return refused(403, 'the token is not bound to a pod (use a projected service account token)');
  return { kind: 'pod', namespace: user[1] as string, serviceAccount: user[2] as string, podName: names[0] as string, podUid: uids[0] as string };
}

type Refusal = Extract<TokenVerdict, { kind: 'refused' }>;

/**
 * Refuses, from the token's own claims, what the API server would refuse too, before
 * asking it; else the claims, for the review to be made. Pure.
 */
export function screenToken(token: string, audience: string, now: number): Refusal | { kind: 'claims'; claims: ServiceAccountClaims } {
  const reading = readServiceAccountToken(token);
  if (reading.kind === 'malformed') return refused(401, reading.reason);
  const claims = reading.claims;
  if (claims.expiresAt <= now) return refused(401, 'the token has expired');
  if (claims.notBefore > now + CLOCK_SKEW_MS) return refused(401, 'the token is not valid yet');
  if (!claims.audiences.includes(audience)) return refused(401, `the token is not for audience ${audience}`);
  if (claims.pod === null) return refused(403, 'the token is not bound to a pod (use a projected service account token)');
  return reading;
}

/** The API server allows this much skew on nbf, as its own validator does. */
const CLOCK_SKEW_MS = 60_000;

function refused(status: 401 | 403, reason: string): Refusal {
  return { kind: 'refused', status, reason };
}

export interface TokenReviewerOptions {
  audience: string;
  /** Reviews kept at most (each is a hash and a few strings). */
  maxEntries: number;
  /** How long a refusal is kept. */
  refusalTtlMs: number;
  /** TokenReviews per second this node makes at most, and its burst. */
  reviewsPerSecond: number;
  burst: number;
  /** The same for the tokens one caller address presents (a pod needs one an hour). */
  perCaller: { perSecond: number; burst: number };
  /** Caller addresses whose rate is tracked at most. */
  maxCallers: number;
}

export const DEFAULT_TOKEN_REVIEWER_OPTIONS: Omit<TokenReviewerOptions, 'audience'> = {
  maxEntries: 4096,
  refusalTtlMs: 10_000,
  reviewsPerSecond: 20,
  burst: 100,
  perCaller: { perSecond: 1, burst: 5 },
  maxCallers: 4096,
};

export class TokenReviewStats {
  /** TokenReviews sent to the API server. */
  reviews = 0;
  /** Answered from a review kept. */
  cached = 0;
  /** Refused by the token's own claims, with no review. */
  refusedEarly = 0;
  /** Reviews that failed (the API server unreachable or refusing us). */
  failed = 0;
  /** Reviews not made: the caller's or this node's review rate was spent. */
  limited = 0;
}

/** Asks the API server about a token (the `create` of a TokenReview); rejects when it cannot. */
export type ReviewToken = (token: string, audience: string) => Promise<TokenReviewStatus | undefined>;

interface Kept {
  verdict: TokenVerdict;
  until: number;
}

export class TokenReviewer {
  readonly stats = new TokenReviewStats();
  private readonly kept: LRUCache<string, Kept>;
  private readonly inFlight = new Map<string, Promise<TokenVerdict>>();
  private readonly rate: TokenBucket;
  private readonly callers: LRUCache<string, TokenBucket>;

  constructor(
    private readonly review: ReviewToken,
    private readonly options: TokenReviewerOptions,
    private readonly onFailure: (error: unknown) => void = () => {},
    now = Date.now(),
  ) {
    this.kept = new LRUCache({ max: options.maxEntries });
    this.rate = new TokenBucket(options.reviewsPerSecond, options.burst, now);
    this.callers = new LRUCache({ max: options.maxCallers });
  }

  get size(): number {
    return this.kept.size;
  }

  /**
   * Whose token this is, presented from `caller` (an address); kept verdicts are answered
   * at once. `callerIsPod`: a pod claims that address. An address no pod claims is the
   * node's, shared by every pod on the host network, so its review rate is counted per
   * pod the token names: one such pod sending forged tokens spends only that share.
   */
  verify(token: string, caller: string, callerIsPod: boolean, now: number): TokenVerdict | Promise<TokenVerdict> {
    // A token of over MAX_TOKEN_BYTES is refused by its claims below, never hashed.
    const hash = token.length <= MAX_TOKEN_BYTES ? createHash('sha256').update(token).digest('base64') : '';
    const kept = hash === '' ? undefined : this.kept.get(hash);
    if (kept !== undefined && now < kept.until) {
      this.stats.cached++;
      return kept.verdict;
    }
    const screened = screenToken(token, this.options.audience, now);
    if (screened.kind === 'refused') {
      this.stats.refusedEarly++;
      return screened;
    }
    const pending = this.inFlight.get(hash);
    if (pending !== undefined) return pending;
    if (!this.callerRate(callerIsPod ? caller : `${caller}/${screened.claims.pod?.uid}`, now).take(now)) {
      this.stats.limited++;
      return { kind: 'unavailable', reason: 'too many new tokens from this address; retry' };
    }
    if (!this.rate.take(now)) {
      this.stats.limited++;
      return { kind: 'unavailable', reason: 'too many new tokens on this node; retry' };
    }
    const reviewed = this.reviewNow(token, hash, screened.claims.expiresAt);
    this.inFlight.set(hash, reviewed);
    return reviewed;
  }

  private callerRate(caller: string, now: number): TokenBucket {
    let bucket = this.callers.get(caller);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.options.perCaller.perSecond, this.options.perCaller.burst, now);
      this.callers.set(caller, bucket);
    }
    return bucket;
  }

  private async reviewNow(token: string, hash: string, expiresAt: number): Promise<TokenVerdict> {
    this.stats.reviews++;
    try {
      const verdict = reviewVerdict(await this.review(token, this.options.audience), this.options.audience);
      // A token the API server accepted is the one whose claims were read: its expiry is its own.
      const until = verdict.kind === 'pod' ? expiresAt : Date.now() + this.options.refusalTtlMs;
      this.kept.set(hash, { verdict, until });
      return verdict;
    } catch (error) {
      this.stats.failed++;
      this.onFailure(error);
      return { kind: 'unavailable', reason: 'the API server could not review the token; retry' };
    } finally {
      this.inFlight.delete(hash);
    }
  }
}
