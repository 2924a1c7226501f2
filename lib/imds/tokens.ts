// IMDSv2 session tokens issued through this proxy. With --imdsv2-required a credential
// request must carry one that was issued to the same source IP and has not expired, so
// a plain GET made through an SSRF hole in a pod (which cannot send the token PUT)
// gets no credentials. Bounded: a flood of token requests evicts the oldest ones.

import { LRUCache } from 'lru-cache';

/** IMDS accepts token lifetimes of one second to six hours. */
export const MAX_TOKEN_TTL_SECONDS = 21_600;

/** The TTL a token request asks for, or null when it is missing or out of range (400). */
export function parseTokenTtl(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,5}$/.test(value.trim())) return null;
  const seconds = Number(value.trim());
  return seconds >= 1 && seconds <= MAX_TOKEN_TTL_SECONDS ? seconds : null;
}

export class TokenRegistry {
  // Keyed by IP and token together: an upstream that hands every caller the same token
  // (moto does) must still not let one pod's token stand for another's.
  private readonly expiries: LRUCache<string, number>;

  constructor(max = 100_000) {
    this.expiries = new LRUCache({ max });
  }

  get size(): number {
    return this.expiries.size;
  }

  issued(ip: string, token: string, ttlSeconds: number, now: number): void {
    this.expiries.set(`${ip} ${token}`, now + ttlSeconds * 1000);
  }

  valid(ip: string, token: string | undefined, now: number): boolean {
    if (token === undefined || token.length === 0) return false;
    const expiresAt = this.expiries.get(`${ip} ${token}`);
    return expiresAt !== undefined && now < expiresAt;
  }
}
