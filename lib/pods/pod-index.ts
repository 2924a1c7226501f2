// PodIndex: every known pod by UID, and the pods that own each IP, updated in place by
// watch events. The source IP is the only identity a caller has, so an IP answers with
// a pod only when exactly one live pod can own it:
// - a pod is indexed by IP only when it is active (not hostNetwork, not finished) and
//   has an IP;
// - when several pods claim one IP, the claim of a pod that is not terminating wins over
//   terminating ones (an IP reused while its old pod shuts down); two live claims make
//   the IP ambiguous, and it gets no pod until one of them goes;
// - removing a pod removes only its own claims, so the delete event of an old pod never
//   removes the entry of a newer pod that reused its IP.

import { podIsActive, type PodRecord } from './pod.js';

export interface IpSlot {
  /** The pod that owns the IP; null while the IP is ambiguous. */
  readonly owner: PodRecord | null;
  /** Every indexed pod that claims the IP. */
  readonly claimants: readonly PodRecord[];
}

interface MutableSlot {
  owner: PodRecord | null;
  claimants: PodRecord[];
}

export interface PodIndexObserver {
  /** A pod was added or changed (`previous` undefined when new). */
  podUpdated(pod: PodRecord, previous: PodRecord | undefined): void;
  podRemoved(pod: PodRecord): void;
}

/** Waits for a pod are kept beside waits for an IP, under a key no IP can be. */
const POD_KEY = 'pod:';

export class PodIndex {
  private readonly pods = new Map<string, PodRecord>();
  private readonly byIp = new Map<string, MutableSlot>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private readonly observers: PodIndexObserver[] = [];

  get size(): number {
    return this.pods.size;
  }

  get ipCount(): number {
    return this.byIp.size;
  }

  observe(observer: PodIndexObserver): void {
    this.observers.push(observer);
  }

  /** The pods claiming an IP (already normalised), or undefined when none does. */
  lookup(ip: string): IpSlot | undefined {
    return this.byIp.get(ip);
  }

  get(uid: string): PodRecord | undefined {
    return this.pods.get(uid);
  }

  /** Every indexed IP with its claim (for the debug dump). */
  slots(): IterableIterator<[string, IpSlot]> {
    return this.byIp.entries();
  }

  *inNamespace(namespace: string): IterableIterator<PodRecord> {
    for (const pod of this.pods.values()) if (pod.namespace === namespace) yield pod;
  }

  upsert(pod: PodRecord): void {
    const previous = this.pods.get(pod.uid);
    this.pods.set(pod.uid, pod);
    const before = previous !== undefined && indexed(previous) ? previous.ips : [];
    const after = indexed(pod) ? pod.ips : [];
    for (const ip of before) if (!after.includes(ip)) this.unclaim(ip, pod.uid);
    for (const ip of after) this.claim(ip, pod);
    for (const observer of this.observers) observer.podUpdated(pod, previous);
    if (this.waiters.size > 0) this.wake(`${POD_KEY}${pod.uid}`);
  }

  remove(uid: string): void {
    const pod = this.pods.get(uid);
    if (pod === undefined) return;
    this.pods.delete(uid);
    if (indexed(pod)) for (const ip of pod.ips) this.unclaim(ip, uid);
    for (const observer of this.observers) observer.podRemoved(pod);
  }

  /** A full list (start-up or re-list): pods not in it are gone. */
  replace(pods: readonly PodRecord[]): void {
    const listed = new Set<string>();
    for (const pod of pods) listed.add(pod.uid);
    for (const uid of [...this.pods.keys()]) if (!listed.has(uid)) this.remove(uid);
    for (const pod of pods) this.upsert(pod);
  }

  /** Resolves when the pods claiming `ip` change, or after `timeoutMs`. */
  waitForChange(ip: string, timeoutMs: number): Promise<void> {
    return this.waitFor(ip, timeoutMs);
  }

  /** Resolves when the pod with this UID is added or changes, or after `timeoutMs`. */
  waitForPod(uid: string, timeoutMs: number): Promise<void> {
    return this.waitFor(`${POD_KEY}${uid}`, timeoutMs);
  }

  private waitFor(key: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      let list = this.waiters.get(key);
      if (list === undefined) {
        list = [];
        this.waiters.set(key, list);
      }
      const timer = setTimeout(() => {
        const current = this.waiters.get(key);
        const at = current?.indexOf(wake) ?? -1;
        if (current !== undefined && at !== -1) {
          current.splice(at, 1);
          if (current.length === 0) this.waiters.delete(key);
        }
        resolve();
      }, timeoutMs);
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      list.push(wake);
    });
  }

  private claim(ip: string, pod: PodRecord): void {
    let slot = this.byIp.get(ip);
    if (slot === undefined) {
      slot = { owner: pod, claimants: [pod] };
      this.byIp.set(ip, slot);
    } else {
      const at = slot.claimants.findIndex((p) => p.uid === pod.uid);
      if (at === -1) slot.claimants.push(pod);
      else slot.claimants[at] = pod;
      settle(slot);
    }
    this.wake(ip);
  }

  private unclaim(ip: string, uid: string): void {
    const slot = this.byIp.get(ip);
    if (slot === undefined) return;
    const at = slot.claimants.findIndex((p) => p.uid === uid);
    if (at === -1) return;
    slot.claimants.splice(at, 1);
    if (slot.claimants.length === 0) this.byIp.delete(ip);
    else settle(slot);
    this.wake(ip);
  }

  private wake(key: string): void {
    const list = this.waiters.get(key);
    if (list === undefined) return;
    this.waiters.delete(key);
    for (const wake of list) wake();
  }
}

function indexed(pod: PodRecord): boolean {
  return pod.ips.length > 0 && podIsActive(pod);
}

function settle(slot: MutableSlot): void {
  if (slot.claimants.length === 1) {
    slot.owner = slot.claimants[0] as PodRecord;
    return;
  }
  let live: PodRecord | null = null;
  for (const pod of slot.claimants) {
    if (pod.terminating) continue;
    if (live !== null) {
      slot.owner = null; // two live claims: ambiguous
      return;
    }
    live = pod;
  }
  slot.owner = live;
}
