// Naming the caller of a request by its source IP. A known owner answers at once; an IP
// the index does not know yet (a pod that asks before its watch event arrived) or one
// that is ambiguous waits for the index to change, woken by the event itself, up to
// the bound (--backoff-max-elapsed-time).
//
// An IP whose owner is terminating is confirmed with the API server first: the network
// plugin may already have given it to a new pod whose event has not arrived, and that
// pod must not be answered as the old one.

import { LRUCache } from 'lru-cache';
import { TokenBucket } from '../rate-limit.js';
import type { PodIndex } from './pod-index.js';
import { normalizeIp } from './ip.js';
import { podIsActive, type PodRecord } from './pod.js';

export type Caller = { kind: 'pod'; pod: PodRecord } | { kind: 'unknown'; reason: string };

/** The pods holding an IP now, read from the API server (a consistent read, not the watch). */
export type LiveClaims = (ip: string) => Promise<PodRecord[]>;

/**
 * Live reads (consistent pod listings) one IP's requests and the whole node may cause:
 * a terminating pod that keeps calling must not turn into a stream of listings against
 * the API server. Past either, the request gets 404 with the reason.
 */
export const LIVE_READ_LIMITS = { perIpPerSecond: 1, perIpBurst: 4, perNodePerSecond: 20, perNodeBurst: 40 };

export interface CallerOptions {
  waitMs: number;
  /** The live lookup; null when pods come from a file, which has no later truth to ask. */
  liveClaims: LiveClaims | null;
  /** --resolve-duplicate-cache-ips: an ambiguous IP is settled by the live lookup. */
  resolveDuplicates: boolean;
}

/**
 * --resolve-duplicate-cache-ips: the one pod holding the IP that is running and not
 * terminating, if there is exactly one (kube2iam takes the first, which can be the wrong one).
 */
export function runningClaimant(live: readonly PodRecord[]): string | null {
  const running = live.filter((p) => p.phase === 'Running' && podIsActive(p) && !p.terminating);
  return running.length === 1 ? (running[0] as PodRecord).uid : null;
}

/**
 * Whether a terminating owner is still the one at its IP: 'moved' when another pod that
 * is not terminating holds it now (even one still starting: the IP is no longer the old
 * pod's), 'gone' when the owner no longer does or has stopped.
 */
export function terminatingOwnerVerdict(owner: PodRecord, live: readonly PodRecord[]): 'owner' | 'moved' | 'gone' {
  if (live.some((p) => p.uid !== owner.uid && podIsActive(p) && !p.terminating)) return 'moved';
  return live.some((p) => p.uid === owner.uid && podIsActive(p)) ? 'owner' : 'gone';
}

interface LiveReads {
  current: Promise<PodRecord[]>;
  next: Promise<PodRecord[]> | null;
}

/** A live read this request may not cause: over the IP's or the node's rate. */
const LIMITED = 'limited';

const ignore = (): void => {};

export class CallerResolver {
  /** Live reads by IP: a request shares only a read started after it arrived. */
  private readonly reads = new Map<string, LiveReads>();
  /** Live lookups made, and refused for the rate (stats). */
  liveLookups = 0;
  liveLookupsLimited = 0;
  private readonly nodeReads = new TokenBucket(LIVE_READ_LIMITS.perNodePerSecond, LIVE_READ_LIMITS.perNodeBurst, Date.now());
  /** Bounded: a bucket forgotten early only lets an IP start over at its burst. */
  private readonly ipReads = new LRUCache<string, TokenBucket>({ max: 4096 });

  constructor(
    private readonly index: PodIndex,
    private readonly options: CallerOptions,
  ) {}

  /** The owner of an already normalised IP, if the index knows it now and needs no confirmation. */
  known(ip: string): PodRecord | null {
    const owner = this.index.lookup(ip)?.owner ?? null;
    return owner?.terminating && this.options.liveClaims !== null ? null : owner;
  }

  async resolve(address: string): Promise<Caller> {
    const ip = normalizeIp(address);
    if (ip === null) return { kind: 'unknown', reason: `invalid source address ${address}` };
    const deadline = Date.now() + this.options.waitMs;
    for (;;) {
      const owner = this.index.lookup(ip)?.owner ?? null;
      if (owner !== null && (!owner.terminating || this.options.liveClaims === null)) return { kind: 'pod', pod: owner };
      if (owner !== null && Date.now() < deadline) {
        const live = await this.liveClaimsBefore(ip, deadline);
        if (live === LIMITED)
          return {
            kind: 'unknown',
            reason: `too many live lookups for IP ${ip} (terminating pod ${owner.namespace}/${owner.name}): try again in a few seconds`,
          };
        if (live === null) return { kind: 'unknown', reason: `cannot confirm that terminating pod ${owner.namespace}/${owner.name} still holds IP ${ip}` };
        if (terminatingOwnerVerdict(owner, live) === 'owner') return { kind: 'pod', pod: owner };
        // Another pod has the IP now, or will: wait for the watch to say which.
      }
      const left = deadline - Date.now();
      if (left <= 0) break;
      await this.index.waitForChange(ip, left);
    }
    const slot = this.index.lookup(ip);
    if (slot === undefined) return { kind: 'unknown', reason: `no pod with IP ${ip}` };
    if (slot.owner !== null) return { kind: 'unknown', reason: `terminating pod ${slot.owner.namespace}/${slot.owner.name} no longer holds IP ${ip}` };
    if (this.options.resolveDuplicates && this.options.liveClaims !== null) {
      const live = await this.liveClaimsBefore(ip, Date.now() + this.options.waitMs);
      const uid = live === null || live === LIMITED ? null : runningClaimant(live);
      const pod = slot.claimants.find((p) => p.uid === uid);
      if (pod !== undefined) return { kind: 'pod', pod };
    }
    return { kind: 'unknown', reason: `${slot.claimants.length} pods claim IP ${ip}` };
  }

  /**
   * A live read started after this call, or null when it fails or is not back by
   * `deadline`, or LIMITED when none may be started now.
   */
  private liveClaimsBefore(ip: string, deadline: number): Promise<PodRecord[] | null | typeof LIMITED> {
    const read = this.liveClaimsAt(ip);
    if (read === null) {
      this.liveLookupsLimited++;
      return Promise.resolve(LIMITED);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), Math.max(0, deadline - Date.now()));
      read.then(
        (live) => {
          clearTimeout(timer);
          resolve(live);
        },
        () => {
          clearTimeout(timer);
          resolve(null);
        },
      );
    });
  }

  /**
   * A read under way started before this request and may predate the change it must see,
   * so the request waits for the next read; all requests arriving meanwhile share it.
   * At most two reads per IP are ever in flight.
   */
  private liveClaimsAt(ip: string): Promise<PodRecord[]> | null {
    const reads = this.reads.get(ip);
    if (reads === undefined) return this.mayRead(ip) ? this.startRead(ip) : null;
    if (reads.next === null) {
      if (!this.mayRead(ip)) return null;
      reads.next = reads.current.then(ignore, ignore).then(() => this.startRead(ip));
    }
    return reads.next;
  }

  /** Takes a read from the IP's and the node's budget, or neither. */
  private mayRead(ip: string): boolean {
    const now = Date.now();
    let bucket = this.ipReads.get(ip);
    if (bucket === undefined) {
      bucket = new TokenBucket(LIVE_READ_LIMITS.perIpPerSecond, LIVE_READ_LIMITS.perIpBurst, now);
      this.ipReads.set(ip, bucket);
    }
    if (bucket.nextAt(now) > now) return false;
    return this.nodeReads.take(now) && bucket.take(now);
  }

  private startRead(ip: string): Promise<PodRecord[]> {
    this.liveLookups++;
    const read = (this.options.liveClaims as LiveClaims)(ip);
    const reads: LiveReads = { current: read, next: null };
    this.reads.set(ip, reads);
    const settled = (): void => {
      if (this.reads.get(ip) === reads && reads.next === null) this.reads.delete(ip);
    };
    read.then(settled, settled);
    return read;
  }
}
