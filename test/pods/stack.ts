// The pod side of the proxy wired as the app wires it, against a real API server and a
// real STS emulator, plus helpers that drive pods through kube-apiserver as a kubelet
// would (status patches).

import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import type { CredentialStore } from '../../lib/credentials/store.js';
import { CallerResolver } from '../../lib/pods/callers.js';
import { PodIndex } from '../../lib/pods/pod-index.js';
import { liveClaims, type KubernetesApi } from '../../lib/pods/kubernetes.js';
import type { PodRoles, RestrictionConfig } from '../../lib/pods/pod-roles.js';
import { ClusterSource } from '../../lib/pods/sources.js';
import type { KubernetesControlPlane } from '../harness/kubernetes.js';
import type { MotoServer } from '../harness/moto.js';
import { KEYS, podRolesFor, storeAt } from './fixtures.js';

export const BASE = 'arn:aws:iam::123456789012:role/';

export interface StackOptions {
  node?: string | null;
  restrictions?: Partial<RestrictionConfig>;
  defaultRole?: string | null;
  waitMs?: number;
  resolveDuplicates?: boolean;
}

export class PodStack {
  readonly api: KubernetesApi;
  readonly core: CoreV1Api;
  readonly index = new PodIndex();
  readonly store: CredentialStore;
  readonly podRoles: PodRoles;
  readonly source: ClusterSource;
  readonly callers: CallerResolver;
  readonly warnings: string[] = [];
  /** Info lines of the role podRoles (denials), by message. */
  readonly notices: string[] = [];
  readonly watchErrors: unknown[] = [];

  constructor(plane: KubernetesControlPlane, moto: MotoServer, options: StackOptions = {}) {
    this.api = plane.proxyApi();
    this.core = plane.core();
    this.store = storeAt(moto.endpoint, { stsRatePerSecond: 500, stsBurst: 500 });
    this.podRoles = podRolesFor(this.store, this.index, options.restrictions, options.defaultRole ?? null, {
      info: (_fields, message) => this.notices.push(message),
      warn: (_fields, message) => this.warnings.push(message),
    });
    this.source = new ClusterSource(this.api, this.index, this.podRoles, KEYS, {
      node: options.node ?? null,
      serviceAccountRoleKey: null,
      backoffBaseMs: 100,
      backoffMaxMs: 1000,
      onError: (error) => this.watchErrors.push(error),
    });
    this.callers = new CallerResolver(this.index, {
      waitMs: options.waitMs ?? 2000,
      liveClaims: liveClaims(this.api, KEYS),
      resolveDuplicates: options.resolveDuplicates ?? false,
    });
  }

  stop(): void {
    this.source.stop();
    this.store.close();
    void this.api.close();
  }

  async namespace(name: string, allowedRoles?: string[]): Promise<void> {
    const annotations = allowedRoles === undefined ? undefined : { 'iam.amazonaws.com/allowed-roles': JSON.stringify(allowedRoles) };
    await this.core.createNamespace({ body: { metadata: { name, annotations } } });
  }

  async annotateNamespace(name: string, allowedRoles: string[]): Promise<void> {
    await this.core.patchNamespace(
      { name, body: { metadata: { annotations: { 'iam.amazonaws.com/allowed-roles': JSON.stringify(allowedRoles) } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async createPod(
    namespace: string,
    name: string,
    options: { role?: string; externalId?: string; hostNetwork?: boolean; node?: string } = {},
  ): Promise<string> {
    const annotations: Record<string, string> = {};
    if (options.role !== undefined) annotations[KEYS.role] = options.role;
    if (options.externalId !== undefined) annotations[KEYS.externalId] = options.externalId;
    const created = await this.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, annotations },
        spec: { nodeName: options.node ?? 'node-1', hostNetwork: options.hostNetwork, containers: [{ name: 'app', image: 'busybox' }] },
      },
    });
    return created.metadata?.uid ?? '';
  }

  /** What the kubelet reports: the pod's phase and IP. */
  async setStatus(namespace: string, name: string, phase: string, ip?: string): Promise<void> {
    await this.core.patchNamespacedPodStatus(
      { name, namespace, body: { status: { phase, ...(ip === undefined ? {} : { podIP: ip, podIPs: [{ ip }] }) } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** What the kubelet reports once a terminating pod's containers have exited. */
  async containersStopped(namespace: string, name: string): Promise<void> {
    const containerStatuses = [
      { name: 'app', image: 'example/app', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } },
    ];
    await this.core.patchNamespacedPodStatus(
      { name, namespace, body: { status: { containerStatuses } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Graceful delete: with no kubelet to confirm, the pod stays terminating. */
  async terminate(namespace: string, name: string): Promise<void> {
    await this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 30 });
  }

  async forceDelete(namespace: string, name: string): Promise<void> {
    await this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
  }

  ownerName(ip: string): string | null | undefined {
    const slot = this.index.lookup(ip);
    return slot === undefined ? undefined : (slot.owner?.name ?? null);
  }
}
