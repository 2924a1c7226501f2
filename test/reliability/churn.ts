// Pods coming and going on a few addresses, each new pod getting the address of one that
// is shutting down, in the orders a kubelet and a network plugin can produce, while each
// pod's app asks for its credentials. The model knows which pod's app is calling from
// each address; a 200 that names any other role is a leak.

import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { Random } from '../harness/random.js';
import { get } from '../harness/pod-client.js';
import { CREDENTIALS_PATH } from './load.js';
import { NAMESPACE, type FaultRig } from './rig.js';

export class AddressReuse {
  asked = 0;
  own = 0;
  /** Not served yet (404 or 500 while the watch catches up): allowed. */
  notYet = 0;
  generations = 0;
  readonly leaks: string[] = [];
  private readonly random: Random;
  private running = true;

  /** `slots` addresses 127.0.<subnet>.1.. */
  constructor(
    private readonly rig: FaultRig,
    private readonly slots: number,
    private readonly subnet: number,
    seed: number,
  ) {
    this.random = new Random(seed);
  }

  /** Runs `generations` pods per address (or until `stop()`), all addresses at once. */
  run(generations: number): Promise<void> {
    return Promise.all(Array.from({ length: this.slots }, (_, s) => this.slot(s, generations))).then(() => undefined);
  }

  stop(): void {
    this.running = false;
  }

  private address(s: number): string {
    return `127.0.${this.subnet}.${s + 1}`;
  }

  /** A pod's app asking for its credentials for `ms`, with headers that claim other addresses. */
  private async app(ip: string, role: string, ms: number): Promise<void> {
    const random = this.random;
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const other = this.address(random.int(this.slots));
      const headers: Record<string, string> = random.int(2) === 0 ? { 'X-Forwarded-For': other, 'X-Real-IP': other } : {};
      const reply = await get(this.rig.port, ip, CREDENTIALS_PATH, 5_000, headers);
      this.asked++;
      if (reply.status === 200 && reply.body === role) this.own++;
      else if (reply.status === 200) this.leaks.push(`${ip} (${role}) was answered ${reply.body}`);
      else this.notYet++;
      await sleep(random.int(30));
    }
  }

  private async slot(s: number, generations: number): Promise<void> {
    const random = this.random;
    const ip = this.address(s);
    let previous: string | null = null;
    for (let g = 0; g < generations && this.running; g++) {
      const name = `reuse-${this.subnet}-${s}-${g}`;
      const role = `reuse-role-${this.subnet}-${s}-${g}`;
      // The network plugin hands the address on; the old pod's exit report may or may
      // not have reached the API server, and its DELETED event may come much later.
      await this.rig.createRunningPod(name, role, ip);
      if (previous !== null && random.int(2) === 0) await this.rig.deletePod(previous);
      await this.app(ip, role, 200 + random.int(800));
      // Shutdown: still its own credentials while its containers run.
      await this.rig.core.deleteNamespacedPod({ name, namespace: NAMESPACE, gracePeriodSeconds: 30 });
      await this.app(ip, role, random.int(400));
      if (random.int(3) !== 0) await this.containersExited(name);
      if (previous !== null) await this.rig.deletePod(previous).catch(() => undefined);
      previous = name;
      this.generations++;
    }
    if (previous !== null) await this.rig.deletePod(previous);
  }

  /** What the kubelet reports once the pod's containers have exited. */
  private async containersExited(name: string): Promise<void> {
    const containerStatuses = [
      { name: 'app', image: 'busybox', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } },
    ];
    await this.rig.core.patchNamespacedPodStatus(
      { name, namespace: NAMESPACE, body: { status: { containerStatuses } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }
}
