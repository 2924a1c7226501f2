// Steady credential requests from pod addresses, and the checks every answer gets:
// - the listing names the asking pod's own role (another pod's role is a leak);
// - the document is served (200) while that role's credentials are still valid;
// - its Expiration is in the future (an expired document counts on its own);
// - its AccessKeyId belongs to that role: each key is remembered under the role it was
//   first seen with, and a key seen under a second role is a leak.

import { setTimeout as sleep } from 'node:timers/promises';
import { get, type Answer } from '../harness/pod-client.js';

/** The store never serves credentials this close to their expiry (DEFAULT_STORE_OPTIONS.staleMarginMs). */
export const STALE_MARGIN_MS = 60_000;
/** An answer slower than this would miss an SDK's one-second IMDS timeout: reported, not failed. */
export const SDK_TIMEOUT_MS = 1_000;
export const CREDENTIALS_PATH = '/latest/meta-data/iam/security-credentials/';

/** Counts for one window (a fault) or the whole run. */
export class Tally {
  requests = 0;
  failures = 0;
  /** Not served, but the role's last credentials were past their servable time: allowed. */
  excused = 0;
  leaks = 0;
  expired = 0;
  /** Answers slower than an SDK's IMDS timeout. */
  slow = 0;
  maxMs = 0;
  /** Least time left on a served document, in seconds. */
  minRemainingS = Infinity;
  readonly examples: string[] = [];

  note(message: string): void {
    if (this.examples.length < 8) this.examples.push(message);
  }
}

export class CredentialChecker {
  readonly total = new Tally();
  window = new Tally();
  private readonly keyRole = new Map<string, string>();
  /** The latest Expiration seen for each role. */
  private readonly validUntil = new Map<string, number>();

  /** Distinct AccessKeyIds seen: more than the roles once credentials have been renewed. */
  get keys(): number {
    return this.keyRole.size;
  }

  /** Starts a new window; returns the one that ended. */
  startWindow(): Tally {
    const ended = this.window;
    this.window = new Tally();
    return ended;
  }

  private each(fn: (tally: Tally) => void): void {
    fn(this.total);
    fn(this.window);
  }

  /** The role's credentials as last seen could still be served at `now`. */
  private servable(role: string, now: number): boolean {
    return (this.validUntil.get(role) ?? 0) - STALE_MARGIN_MS > now + 2_000;
  }

  /**
   * Checks a listing. `strict`: the pod is an established one, so anything but its own
   * role is counted (a failure, or a leak when another role is named); otherwise only
   * whether it matches is returned.
   */
  listing(from: string, role: string, answer: Answer, strict: boolean): boolean {
    const ok = answer.status === 200 && answer.body === role;
    if (!strict) return ok;
    this.each((t) => {
      t.requests++;
      t.maxMs = Math.max(t.maxMs, answer.ms);
      if (answer.ms > SDK_TIMEOUT_MS) t.slow++;
    });
    if (ok) return true;
    if (answer.status === 200) {
      this.each((t) => {
        t.leaks++;
        t.note(`${from} (${role}) listed role ${answer.body}`);
      });
    } else {
      this.each((t) => {
        t.failures++;
        t.note(`${from} listing: ${answer.status} ${answer.error ?? answer.body.trim()} after ${Math.round(answer.ms)} ms`);
      });
    }
    return false;
  }

  /** Checks a credential document for `role`; leaks and expiry are counted whether strict or not. */
  document(from: string, role: string, answer: Answer, strict: boolean): boolean {
    const now = Date.now();
    if (strict) {
      this.each((t) => {
        t.requests++;
        t.maxMs = Math.max(t.maxMs, answer.ms);
        if (answer.ms > SDK_TIMEOUT_MS) t.slow++;
      });
    }
    if (answer.status !== 200) {
      if (!strict) return false;
      const excused = !this.servable(role, now);
      this.each((t) => {
        if (excused) t.excused++;
        else {
          t.failures++;
          t.note(`${from} document: ${answer.status} ${answer.error ?? answer.body.trim()} after ${Math.round(answer.ms)} ms`);
        }
      });
      return false;
    }
    let document: { Code?: string; AccessKeyId?: string; Expiration?: string };
    try {
      document = JSON.parse(answer.body) as typeof document;
    } catch {
      if (strict)
        this.each((t) => {
          t.failures++;
          t.note(`${from} document not JSON: ${answer.body.slice(0, 80)}`);
        });
      return false;
    }
    const key = document.AccessKeyId ?? '';
    const expiration = Date.parse(document.Expiration ?? '');
    const owner = this.keyRole.get(key);
    if (owner === undefined) this.keyRole.set(key, role);
    let ok = document.Code === 'Success' && key !== '';
    if (owner !== undefined && owner !== role) {
      ok = false;
      this.each((t) => {
        t.leaks++;
        t.note(`${from} (${role}) got ${key}, first seen for ${owner}`);
      });
    }
    if (!(expiration > now)) {
      ok = false;
      this.each((t) => {
        t.expired++;
        t.note(`${from} (${role}) got ${key} expiring ${document.Expiration ?? '?'}`);
      });
    } else {
      if (expiration > (this.validUntil.get(role) ?? 0)) this.validUntil.set(role, expiration);
      this.each((t) => (t.minRemainingS = Math.min(t.minRemainingS, Math.round((expiration - now) / 1000))));
    }
    if (!ok && strict && document.Code !== 'Success')
      this.each((t) => {
        t.failures++;
        t.note(`${from} document Code ${document.Code ?? '?'}`);
      });
    return ok;
  }
}

export interface LoadedPod {
  ip: string;
  role: string;
}

/** One loop per pod: listing, then the role's document, then a short pause; until stopped. */
export class CredentialLoad {
  private running = false;
  private loops: Array<Promise<void>> = [];

  constructor(
    private readonly port: number,
    private readonly pods: readonly LoadedPod[],
    private readonly checker: CredentialChecker,
    private readonly pauseMs: number,
  ) {}

  start(): void {
    this.running = true;
    this.loops = this.pods.map((pod) => this.loop(pod));
  }

  private async loop(pod: LoadedPod): Promise<void> {
    while (this.running) {
      const listing = await get(this.port, pod.ip, CREDENTIALS_PATH);
      this.checker.listing(pod.ip, pod.role, listing, true);
      const document = await get(this.port, pod.ip, `${CREDENTIALS_PATH}${pod.role}`);
      this.checker.document(pod.ip, pod.role, document, true);
      await sleep(this.pauseMs);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}
