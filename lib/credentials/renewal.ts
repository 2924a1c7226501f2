// When credentials are renewed, and until when they are served: pure functions of the
// grant's times and the policy, so the rule that once let short grants lapse (renewed
// after they stopped being served) is tested in microseconds, not against STS.

export interface RenewalPolicy {
  /** kube2iam's --iam-role-session-ttl: renewed when less than this remains. */
  sessionTtlMs: number;
  /** Credentials this close to expiry are never served. */
  staleMarginMs: number;
  /** Renewals are spread over this fraction of the TTL before their point. */
  jitter: number;
}

/** Credentials expiring at `expiresAt` are served until this time. */
export function servableUntil(expiresAt: number, staleMarginMs: number): number {
  return expiresAt - staleMarginMs;
}

/**
 * When credentials granted at `now` until `expiresAt` are renewed: when less than the TTL
 * remains; if STS granted less than asked, at half of what it granted, or, when that is
 * already past the end of serving (a grant under twice the stale margin), halfway to
 * that end, so renewed credentials arrive before the old ones stop being served. Then
 * earlier by `spread` (0..1) of the jitter window, so roles fetched together are not
 * renewed together.
 */
export function renewalAt(now: number, expiresAt: number, policy: RenewalPolicy, spread: number): number {
  const until = servableUntil(expiresAt, policy.staleMarginMs);
  let at = Math.max(expiresAt - policy.sessionTtlMs, now + (expiresAt - now) / 2);
  if (at >= until && until > now) at = now + (until - now) / 2;
  return at - spread * policy.jitter * Math.min(policy.sessionTtlMs, at - now);
}

/**
 * When credentials another proxy got at `issuedAt` and handed over at `now` are renewed:
 * at the point that proxy had (from their issue, so answers keep carrying the TTL and the
 * node's renewals stay as spread as its grants were); one already past, at a point
 * `spread` (0..1) into `windowMs` from now, and before half the time left to serve them.
 */
export function renewalAfterHandover(now: number, issuedAt: number, expiresAt: number, policy: RenewalPolicy, spread: number, windowMs: number): number {
  const at = renewalAt(Math.min(issuedAt, now), expiresAt, policy, spread);
  if (at > now) return at;
  return now + spread * Math.min(windowMs, (servableUntil(expiresAt, policy.staleMarginMs) - now) / 2);
}
