// Loading a real kube-apiserver with pods for the scenarios that need a cluster, and
// reading a process's footprint from /proc.

import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { ADMIN_TOKEN, type KubernetesControlPlane } from '../test/harness/kubernetes.js';
import { footprint } from '../test/harness/processes.js';

export async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

export function rssMb(pid: number): number {
  return footprint(pid).rssKb / 1024;
}

/**
 * Plain HTTP to the API server (no client library), so that loading it takes as little
 * of the machine's two cores as it can from the API server and the proxy.
 */
export class ClusterLoader {
  private readonly api: Pool;

  constructor(plane: KubernetesControlPlane) {
    this.api = new Pool(plane.apiServerUrl, { connections: 16, connect: { ca: readFileSync(plane.caFile) } });
  }

  async call(method: 'POST' | 'PATCH', path: string, body: unknown): Promise<void> {
    const response = await this.api.request({
      method,
      path,
      body: JSON.stringify(body),
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': method === 'PATCH' ? 'application/merge-patch+json' : 'application/json' },
    });
    await response.body.dump();
    if (response.statusCode >= 300) throw new Error(`${method} ${path}: ${response.statusCode}`);
  }

  setIp(n: number, ip: string, phase?: string): Promise<void> {
    return this.call('PATCH', `/api/v1/namespaces/bench/pods/pod-${n}/status`, {
      status: { ...(phase === undefined ? {} : { phase }), podIP: ip, podIPs: [{ ip }] },
    });
  }

  /**
   * Pods `from`..`to`-1 in namespace `bench` (created on first use), Running at `ipOf(n)`,
   * each of a Deployment with its own role: `role-<n % roles>`.
   */
  async createPods(from: number, to: number, roles: number, ipOf: (n: number) => string): Promise<void> {
    if (from === 0) await this.call('POST', '/api/v1/namespaces', { metadata: { name: 'bench' } });
    const names = Array.from({ length: to - from }, (_, i) => from + i);
    await pool(names, 16, async (n) => {
      const workload = n % roles;
      await this.call('POST', '/api/v1/namespaces/bench/pods', {
        metadata: {
          name: `pod-${n}`,
          annotations: { 'iam.amazonaws.com/role': `role-${workload}` },
          labels: { 'pod-template-hash': '5d9f7' },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `app-${workload}-5d9f7`, uid: `rs-${workload}`, controller: true }],
        },
        spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'example/app' }] },
      });
      await this.setIp(n, ipOf(n), 'Running');
    });
  }

  close(): Promise<void> {
    return this.api.close();
  }
}

/**
 * Calls `event(n)` for n = 0, 1, ... at `perSecond` for `seconds`, each on its own time
 * whether or not earlier ones have finished (an open loop, as a cluster's events come);
 * resolves once all have finished, with how many there were.
 */
export async function paced(perSecond: number, seconds: number, event: (n: number) => Promise<void>): Promise<number> {
  const intervalMs = 1000 / perSecond;
  const started = Date.now();
  const inflight = new Set<Promise<void>>();
  let n = 0;
  while (Date.now() - started < seconds * 1000) {
    const target = started + n * intervalMs;
    if (Date.now() < target) await sleep(target - Date.now());
    const done: Promise<void> = event(n).finally(() => inflight.delete(done));
    inflight.add(done);
    n++;
  }
  await Promise.all(inflight);
  return n;
}
