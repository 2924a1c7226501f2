// Pods, namespaces and ServiceAccounts from a local file instead of the API server (local
// runs, demos): imported only with --pods-file, so the YAML parser costs a cluster's
// proxy nothing.

import { readFileSync, watch as watchFile, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadAll } from 'js-yaml';
import type { PodIndex } from './pod-index.js';
import type { AnnotationKeys } from './pod.js';
import type { PodRoles } from './pod-roles.js';
import { NamespaceFeed, PodFeed, ServiceAccountFeed, type PodSource } from './sources.js';

/**
 * Pods, namespaces and ServiceAccounts from a local YAML or JSON file in the form
 * `kubectl get pods,namespaces,serviceaccounts -o yaml` prints, reloaded when it
 * changes. A file that does not parse leaves the last good state in place.
 */
export class PodsFileSource implements PodSource {
  readonly synced = true;
  loads = 0;
  private readonly path: string;
  private readonly pods: PodFeed;
  private readonly namespaces: NamespaceFeed;
  private readonly serviceAccounts: ServiceAccountFeed | null;
  private readonly onError: (error: unknown) => void;
  private watcher: FSWatcher | null = null;
  private reloadTimer: NodeJS.Timeout | null = null;

  /**
   * Loads the file now; throws when it cannot be read or parsed. `serviceAccountRoleKey`:
   * the ServiceAccount annotation naming a role, null when roles do not come from them.
   */
  constructor(
    path: string,
    index: PodIndex,
    assignment: PodRoles,
    keys: AnnotationKeys,
    serviceAccountRoleKey: string | null,
    onError: (error: unknown) => void,
  ) {
    this.path = path;
    this.pods = new PodFeed(index, keys);
    this.namespaces = new NamespaceFeed(assignment);
    this.serviceAccounts = serviceAccountRoleKey === null ? null : new ServiceAccountFeed(assignment, serviceAccountRoleKey);
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
    const { pods, namespaces, serviceAccounts } = parsePodsFile(readFileSync(this.path, 'utf8'));
    this.namespaces.listPage(namespaces);
    this.namespaces.listEnd();
    this.serviceAccounts?.listPage(serviceAccounts);
    this.serviceAccounts?.listEnd();
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

/** Splits a List (or several documents) into pods, namespaces and ServiceAccounts; hand-written pods get a UID. */
export function parsePodsFile(text: string): { pods: unknown[]; namespaces: unknown[]; serviceAccounts: unknown[] } {
  const pods: unknown[] = [];
  const namespaces: unknown[] = [];
  const serviceAccounts: unknown[] = [];
  const visit = (object: FileObject | null | undefined, kind: string | undefined): void => {
    if (object === null || typeof object !== 'object') return;
    const k = object.kind ?? kind;
    if (Array.isArray(object.items)) {
      const itemKind = k?.endsWith('List') && k !== 'List' ? k.slice(0, -4) : undefined;
      for (const item of object.items) visit(item, itemKind);
      return;
    }
    if (k === 'Namespace') namespaces.push(object);
    else if (k === 'ServiceAccount') serviceAccounts.push({ ...object, metadata: { ...object.metadata, namespace: object.metadata?.namespace ?? 'default' } });
    else if (k === 'Pod') {
      const meta = object.metadata ?? {};
      const namespace = meta.namespace ?? 'default';
      pods.push({ ...object, metadata: { ...meta, namespace, uid: meta.uid ?? `${namespace}/${meta.name ?? ''}` } });
    }
  };
  for (const document of loadAll(text) as FileObject[]) visit(document, undefined);
  return { pods, namespaces, serviceAccounts };
}
