// IMDSv2 session tokens, issued here, never by the node's metadata service: a pod's token
// is good only at this proxy, only from the address it was issued to, and only until its
// TTL ends, so a pod never holds a token the node's metadata service would accept (one it
// could use wherever a path bypasses the rule, such as [fd00:ec2::254]). Bounded per
// address and in addresses, and rate-limited per address, so one pod that floods token
// requests evicts and slows only its own.

import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { TokenBucket } from '../rate-limit.js';

/** IMDS accepts token lifetimes of one second to six hours. */
export const MAX_TOKEN_TTL_SECONDS = 21_600;

/** Token requests one address may make: SDKs ask for one per credential fetch at most. */
export const TOKEN_REQUEST_LIMITS = { perSecond: 20, burst: 100 };

/** The TTL a token request asks for, or null when it is missing or out of range (400). */
export function parseTokenTtl(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,5}$/.test(value.trim())) return null;
  const seconds = Number(value.trim());
  return seconds >= 1 && seconds <= MAX_TOKEN_TTL_SECONDS ? seconds : null;
}

interface AddressTokens {
  /** Token to its expiry, newest kept. */
  tokens: LRUCache<string, number>;
  requests: TokenBucket;
}

export class TokenRegistry {
  private readonly byAddress: LRUCache<string, AddressTokens>;
  private readonly perAddress: number;

  constructor(maxAddresses = 4_096, perAddress = 64) {
    this.byAddress = new LRUCache({ max: maxAddresses });
    this.perAddress = perAddress;
  }

  /** Addresses holding tokens. */
  get size(): number {
    return this.byAddress.size;
  }

  /** A new token for `ip`, valid `ttlSeconds`; null when the address asks faster than its rate. */
  issue(ip: string, ttlSeconds: number, now: number): string | null {
    let entry = this.byAddress.get(ip);
    if (entry === undefined) {
      entry = { tokens: new LRUCache({ max: this.perAddress }), requests: new TokenBucket(TOKEN_REQUEST_LIMITS.perSecond, TOKEN_REQUEST_LIMITS.burst, now) };
      this.byAddress.set(ip, entry);
    }
    if (!entry.requests.take(now)) return null;
    // The shape IMDS tokens have (opaque base64 of about this length); SDKs treat it as opaque.
    const token = randomBytes(42).toString('base64');
    entry.tokens.set(token, now + ttlSeconds * 1000);
    return token;
  }

  valid(ip: string, token: string | undefined, now: number): boolean {
    if (token === undefined || token.length === 0) return false;
    const expiresAt = this.byAddress.get(ip)?.tokens.get(token);
    return expiresAt !== undefined && now < expiresAt;
  }
}
