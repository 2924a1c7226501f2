// Where pods and namespaces come from: a watch on the Kubernetes API, or a local file
// (pods-file.ts). Both feed the same PodIndex and PodRoles.

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

/** Pods (of one node with `node`) and namespaces, watched on the API server. */
export class ClusterSource implements PodSource {
  readonly pods: ResourceWatch;
  readonly namespaces: ResourceWatch;
  private readonly started: Promise<void>;

  constructor(
    api: KubernetesApi,
    index: PodIndex,
    assignment: PodRoles,
    keys: AnnotationKeys,
    node: string | null,
    options: Partial<WatchOptions> & Pick<WatchOptions, 'onError'>,
  ) {
    const watchOptions = { ...DEFAULT_WATCH_OPTIONS, ...options };
    const selector = node === null ? undefined : `spec.nodeName=${node}`;
    this.namespaces = new ResourceWatch(api, '/api/v1/namespaces', undefined, new NamespaceFeed(assignment), watchOptions);
    this.pods = new ResourceWatch(api, '/api/v1/pods', selector, new PodFeed(index, keys), watchOptions);
    // Namespaces first, so no pod is judged against an allow-list that has not arrived.
    this.namespaces.start();
    this.started = this.namespaces.whenSynced().then(() => this.pods.start());
  }

  get synced(): boolean {
    return this.pods.synced && this.namespaces.synced;
  }

  async whenSynced(): Promise<void> {
    await this.started;
    await this.pods.whenSynced();
  }

  stop(): void {
    this.namespaces.stop();
    this.pods.stop();
  }
}
