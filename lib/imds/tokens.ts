// IMDSv2 session tokens issued through this proxy. With --imdsv2-required a credential
// request must carry one that was issued to the same source IP and has not expired, so
// a plain GET made through an SSRF hole in a pod (which cannot send the token PUT)
// gets no credentials. Bounded per address and in addresses.

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
  // Per address, so a pod that floods token requests evicts only its own tokens, never
  // another pod's (which would then be refused, and botocore does not retry a 401).
  // Keyed by address and token together: an upstream that hands every caller the same
  // token (moto does) must still not let one pod's token stand for another's.
  private readonly byAddress: LRUCache<string, LRUCache<string, number>>;
  private readonly perAddress: number;

  constructor(maxAddresses = 4_096, perAddress = 64) {
    this.byAddress = new LRUCache({ max: maxAddresses });
    this.perAddress = perAddress;
  }

  /** Addresses holding tokens. */
  get size(): number {
    return this.byAddress.size;
  }

  issued(ip: string, token: string, ttlSeconds: number, now: number): void {
    let tokens = this.byAddress.get(ip);
    if (tokens === undefined) {
      tokens = new LRUCache({ max: this.perAddress });
      this.byAddress.set(ip, tokens);
    }
    tokens.set(token, now + ttlSeconds * 1000);
  }

  valid(ip: string, token: string | undefined, now: number): boolean {
    if (token === undefined || token.length === 0) return false;
    const expiresAt = this.byAddress.get(ip)?.get(token);
    return expiresAt !== undefined && now < expiresAt;
  }
}
