// Naming the caller of a request by its source IP. A known owner answers at once; an IP
// the index does not know yet (a pod that asks before its watch event arrived) or one
// that is ambiguous waits for the index to change, woken by the event itself, up to
// the bound (--backoff-max-elapsed-time).

import type { PodIndex } from './index.js';
import { normalizeIp } from './ip.js';
import type { PodRecord } from './pod.js';

export type Caller = { kind: 'pod'; pod: PodRecord } | { kind: 'unknown'; reason: string };

export interface CallerOptions {
  waitMs: number;
  /** --resolve-duplicate-cache-ips: a live API lookup that names the one running pod of an IP. */
  resolveDuplicate: ((ip: string) => Promise<string | null>) | null;
}

export class CallerResolver {
  constructor(
    private readonly index: PodIndex,
    private readonly options: CallerOptions,
  ) {}

  /** The owner of an already normalised IP, if the index knows it now. */
  known(ip: string): PodRecord | null {
    return this.index.lookup(ip)?.owner ?? null;
  }

  async resolve(address: string): Promise<Caller> {
    const ip = normalizeIp(address);
    if (ip === null) return { kind: 'unknown', reason: `invalid source address ${address}` };
    const deadline = Date.now() + this.options.waitMs;
    for (;;) {
      const owner = this.known(ip);
      if (owner !== null) return { kind: 'pod', pod: owner };
      const left = deadline - Date.now();
      if (left <= 0) break;
      await this.index.waitForChange(ip, left);
    }
    const slot = this.index.lookup(ip);
    if (slot === undefined) return { kind: 'unknown', reason: `no pod with IP ${ip}` };
    if (this.options.resolveDuplicate !== null) {
      const uid = await this.options.resolveDuplicate(ip).catch(() => null);
      const pod = slot.claimants.find((p) => p.uid === uid);
      if (pod !== undefined) return { kind: 'pod', pod };
    }
    return { kind: 'unknown', reason: `${slot.claimants.length} pods claim IP ${ip}` };
  }
}
