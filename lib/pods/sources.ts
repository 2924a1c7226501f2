// Where pods and namespaces come from: a watch on the Kubernetes API, or a local file.
// Both feed the same PodIndex and RoleAssignment.

import { readFileSync, watch as watchFile, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadAllYaml, type KubeConfig } from '@kubernetes/client-node';
import type { PodIndex } from './index.js';
import { namespaceLister, podLister } from './kubernetes.js';
import { podRecord, type AnnotationKeys, type PodObject, type PodRecord } from './pod.js';
import type { RoleAssignment } from './role-assignment.js';
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

class PodFeed extends Feed<PodRecord> {
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

class NamespaceFeed extends Feed<NamespaceRecord> {
  constructor(private readonly assignment: RoleAssignment) {
    super();
  }
  protected convert(item: unknown): NamespaceRecord | null {
    const meta = (item as NamespaceObject).metadata;
    return meta?.name == null ? null : { name: meta.name, annotations: meta.annotations ?? undefined };
  }
  protected replace(namespaces: NamespaceRecord[]): void {
    this.assignment.replaceNamespaces(namespaces);
  }
  protected upsert(namespace: NamespaceRecord): void {
    this.assignment.namespaceUpdated(namespace.name, namespace.annotations);
  }
  protected remove(item: unknown): void {
    const name = (item as NamespaceObject).metadata?.name;
    if (name != null) this.assignment.namespaceRemoved(name);
  }
}

/** Pods (of one node with `node`) and namespaces, watched on the API server. */
export class ClusterSource implements PodSource {
  readonly pods: ResourceWatch;
  readonly namespaces: ResourceWatch;
  private readonly started: Promise<void>;

  constructor(kc: KubeConfig, index: PodIndex, assignment: RoleAssignment, keys: AnnotationKeys, node: string | null, options: Partial<WatchOptions> & Pick<WatchOptions, 'onError'>) {
    const watchOptions = { ...DEFAULT_WATCH_OPTIONS, ...options };
    const selector = node === null ? undefined : `spec.nodeName=${node}`;
    this.namespaces = new ResourceWatch(kc, '/api/v1/namespaces', undefined, namespaceLister(kc), new NamespaceFeed(assignment), watchOptions);
    this.pods = new ResourceWatch(kc, '/api/v1/pods', selector, podLister(kc, selector), new PodFeed(index, keys), watchOptions);
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

/**
 * Pods and namespaces from a local YAML or JSON file in the form
 * `kubectl get pods,namespaces -o yaml` prints, reloaded when it changes. A file that
 * does not parse leaves the last good state in place.
 */
export class PodsFileSource implements PodSource {
  readonly synced = true;
  loads = 0;
  private readonly path: string;
  private readonly pods: PodFeed;
  private readonly namespaces: NamespaceFeed;
  private readonly onError: (error: unknown) => void;
  private watcher: FSWatcher | null = null;
  private reloadTimer: NodeJS.Timeout | null = null;

  /** Loads the file now; throws when it cannot be read or parsed. */
  constructor(path: string, index: PodIndex, assignment: RoleAssignment, keys: AnnotationKeys, onError: (error: unknown) => void) {
    this.path = path;
    this.pods = new PodFeed(index, keys);
    this.namespaces = new NamespaceFeed(assignment);
    this.onError = onError;
    this.load();
    // Watch the folder: editors and `kubectl ... > file` replace the file rather than write to it.
    this.watcher = watchFile(dirname(path), (_event, name) => {
      if (name !== null && name !== basename(path)) return;
      if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => this.reload(), 50);
    });
    this.watcher.unref();
  }

  whenSynced(): Promise<void> {
    return Promise.resolve();
  }

  private reload(): void {
    try {
      this.load();
    } catch (error) {
      this.onError(error);
    }
  }

  private load(): void {
    const { pods, namespaces } = parsePodsFile(readFileSync(this.path, 'utf8'));
    this.namespaces.listPage(namespaces);
    this.namespaces.listEnd();
    this.pods.listPage(pods);
    this.pods.listEnd();
    this.loads++;
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
  }
}

interface FileObject {
  kind?: string;
  items?: FileObject[];
  metadata?: { uid?: string; name?: string; namespace?: string };
}

/** Splits a List (or several documents) into pods and namespaces; hand-written pods get a UID. */
export function parsePodsFile(text: string): { pods: unknown[]; namespaces: unknown[] } {
  const pods: unknown[] = [];
  const namespaces: unknown[] = [];
  const visit = (object: FileObject | null | undefined, kind: string | undefined): void => {
    if (object === null || typeof object !== 'object') return;
    const k = object.kind ?? kind;
    if (Array.isArray(object.items)) {
      const itemKind = k?.endsWith('List') && k !== 'List' ? k.slice(0, -4) : undefined;
      for (const item of object.items) visit(item, itemKind);
      return;
    }
    if (k === 'Namespace') namespaces.push(object);
    else if (k === 'Pod') {
      const meta = object.metadata ?? {};
      const namespace = meta.namespace ?? 'default';
      pods.push({ ...object, metadata: { ...meta, namespace, uid: meta.uid ?? `${namespace}/${meta.name ?? ''}` } });
    }
  };
  for (const document of loadAllYaml(text) as FileObject[]) visit(document, undefined);
  return { pods, namespaces };
}
