// Where pods, namespaces and ServiceAccounts come from: a watch on the Kubernetes API, or
// a local file (pods-file.ts). Both feed the same PodIndex and PodRoles.

import type { PodIndex } from './pod-index.js';
import type { KubernetesApi } from './kubernetes.js';
import { podRecord, type AnnotationKeys, type PodObject, type PodRecord } from './pod.js';
import type { PodRoles } from './pod-roles.js';
import { DEFAULT_WATCH_OPTIONS, ResourceWatch, type WatchConsumer, type WatchOptions } from './watch.js';

export interface PodSource {
  readonly synced: boolean;
  whenSynced(): Promise<void>;
  stop(): void;
}

interface NamespaceObject {
  metadata?: { name?: string; annotations?: Record<string, string> | null } | null;
}

/**
 * Turns watched objects into what the proxy keeps. A list is gathered page by page as
 * converted values and applied whole at its end; single events apply at once.
 */
abstract class Feed<T> implements WatchConsumer {
  private listed: T[] = [];
  protected abstract convert(item: unknown): T | null;
  protected abstract replace(values: T[]): void;
  protected abstract upsert(value: T): void;
  protected abstract remove(item: unknown): void;

  listPage(items: unknown[]): void {
    for (const item of items) {
      const value = this.convert(item);
      if (value !== null) this.listed.push(value);
    }
  }
  listEnd(): void {
    const listed = this.listed;
    this.listed = [];
    this.replace(listed);
  }
  listAborted(): void {
    this.listed = [];
  }
  added(item: unknown): void {
    const value = this.convert(item);
    if (value !== null) this.upsert(value);
  }
  modified(item: unknown): void {
    this.added(item);
  }
  deleted(item: unknown): void {
    this.remove(item);
  }
}

export class PodFeed extends Feed<PodRecord> {
  constructor(
    private readonly index: PodIndex,
    private readonly keys: AnnotationKeys,
  ) {
    super();
  }
  protected convert(item: unknown): PodRecord | null {
    return podRecord(item as PodObject, this.keys);
  }
  protected replace(records: PodRecord[]): void {
    this.index.replace(records);
  }
  protected upsert(record: PodRecord): void {
    this.index.upsert(record);
  }
  protected remove(item: unknown): void {
    const uid = (item as PodObject).metadata?.uid;
    if (uid != null) this.index.remove(uid);
  }
}

interface NamespaceRecord {
  name: string;
  annotations: Record<string, string> | undefined;
}

export class NamespaceFeed extends Feed<NamespaceRecord> {
  constructor(private readonly podRoles: PodRoles) {
    super();
  }
  protected convert(item: unknown): NamespaceRecord | null {
    const meta = (item as NamespaceObject).metadata;
    return meta?.name == null ? null : { name: meta.name, annotations: meta.annotations ?? undefined };
  }
  protected replace(namespaces: NamespaceRecord[]): void {
    this.podRoles.replaceNamespaces(namespaces);
  }
  protected upsert(namespace: NamespaceRecord): void {
    this.podRoles.namespaceUpdated(namespace.name, namespace.annotations);
  }
  protected remove(item: unknown): void {
    const name = (item as NamespaceObject).metadata?.name;
    if (name != null) this.podRoles.namespaceRemoved(name);
  }
}

interface ServiceAccountObject {
  metadata?: { name?: string; namespace?: string; annotations?: Record<string, string> | null } | null;
}

interface ServiceAccountRecord {
  namespace: string;
  name: string;
  role: string | undefined;
}

/** Only the role annotation of each ServiceAccount is kept (`roleKey`). */
export class ServiceAccountFeed extends Feed<ServiceAccountRecord> {
  constructor(
    private readonly podRoles: PodRoles,
    private readonly roleKey: string,
  ) {
    super();
  }
  protected convert(item: unknown): ServiceAccountRecord | null {
    const meta = (item as ServiceAccountObject).metadata;
    if (meta?.name == null || meta.namespace == null) return null;
    return { namespace: meta.namespace, name: meta.name, role: meta.annotations?.[this.roleKey] };
  }
  protected replace(accounts: ServiceAccountRecord[]): void {
    this.podRoles.replaceServiceAccounts(accounts);
  }
  protected upsert(account: ServiceAccountRecord): void {
    this.podRoles.serviceAccountUpdated(account.namespace, account.name, account.role);
  }
  protected remove(item: unknown): void {
    const meta = (item as ServiceAccountObject).metadata;
    if (meta?.name != null && meta.namespace != null) this.podRoles.serviceAccountUpdated(meta.namespace, meta.name, undefined);
  }
}

export type ClusterSourceOptions = Partial<WatchOptions> & Pick<WatchOptions, 'onError'> & ClusterScope;

interface ClusterScope {
  /** --node: only this node's pods. */
  node: string | null;
  /** With --service-account-roles: the ServiceAccount annotation naming a role; null: ServiceAccounts are not watched. */
  serviceAccountRoleKey: string | null;
}

/** Pods (of one node with `node`), namespaces and, for their roles, ServiceAccounts, watched on the API server. */
export class ClusterSource implements PodSource {
  readonly pods: ResourceWatch;
  readonly namespaces: ResourceWatch;
  readonly serviceAccounts: ResourceWatch | null;
  private readonly started: Promise<void>;

  constructor(api: KubernetesApi, index: PodIndex, assignment: PodRoles, keys: AnnotationKeys, options: ClusterSourceOptions) {
    const { node, serviceAccountRoleKey, ...watch } = options;
    const watchOptions: WatchOptions = { ...DEFAULT_WATCH_OPTIONS, ...watch };
    const selector = node === null ? undefined : `spec.nodeName=${node}`;
    this.namespaces = new ResourceWatch(api, '/api/v1/namespaces', undefined, new NamespaceFeed(assignment), watchOptions);
    this.serviceAccounts =
      serviceAccountRoleKey === null
        ? null
        : new ResourceWatch(api, '/api/v1/serviceaccounts', undefined, new ServiceAccountFeed(assignment, serviceAccountRoleKey), watchOptions);
    this.pods = new ResourceWatch(api, '/api/v1/pods', selector, new PodFeed(index, keys), watchOptions);
    // Namespaces and ServiceAccounts first, so no pod is judged against an allow-list or
    // a role that has not arrived.
    this.namespaces.start();
    this.serviceAccounts?.start();
    this.started = Promise.all([this.namespaces.whenSynced(), this.serviceAccounts?.whenSynced()]).then(() => this.pods.start());
  }

  get synced(): boolean {
    return this.pods.synced && this.namespaces.synced && this.serviceAccounts?.synced !== false;
  }

  get restarts(): number {
    return this.pods.restarts + this.namespaces.restarts + (this.serviceAccounts?.restarts ?? 0);
  }

  async whenSynced(): Promise<void> {
    await this.started;
    await this.pods.whenSynced();
  }

  stop(): void {
    this.namespaces.stop();
    this.serviceAccounts?.stop();
    this.pods.stop();
  }
}
