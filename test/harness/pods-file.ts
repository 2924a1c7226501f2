// Pods files (--pods-file) for tests: what `kubectl get pods,namespaces -o json` writes, cut to what the proxy reads.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A running pod as a pods file (--pods-file) lists it. */
export interface FilePod {
  name: string;
  namespace?: string;
  role?: string;
  ip: string;
  /** A Deployment's name: the pod is one of its replicas (one session, one key). */
  deployment?: string;
}

/** Writes `<dir>/<name>.json`, a List of the namespaces (with their annotations) and the pods; returns its path. */
export function podsFile(dir: string, name: string, pods: FilePod[], namespaces: Record<string, Record<string, string>> = {}): string {
  const path = join(dir, `${name}.json`);
  const items: object[] = Object.entries(namespaces).map(([ns, annotations]) => ({ kind: 'Namespace', metadata: { name: ns, annotations } }));
  for (const pod of pods) {
    items.push({
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: pod.namespace ?? 'default',
        uid: `uid-${pod.name}`,
        annotations: pod.role === undefined ? {} : { 'iam.amazonaws.com/role': pod.role },
        ...(pod.deployment === undefined
          ? {}
          : { labels: { 'pod-template-hash': '5d8f7c' }, ownerReferences: [{ kind: 'ReplicaSet', name: `${pod.deployment}-5d8f7c`, controller: true }] }),
      },
      status: { phase: 'Running', podIP: pod.ip },
    });
  }
  writeFileSync(path, JSON.stringify({ kind: 'List', items }));
  return path;
}
