// The RoleSessionName sent to STS names the workload, so CloudTrail shows who acted.
// Pure functions.

import { createHash } from 'node:crypto';

const MAX = 64;
const INVALID = /[^\w+=,.@-]/g;

/**
 * `<namespace>.<workload>`, with characters STS does not allow replaced by "-", made to
 * fit 64 characters deterministically: a long name keeps its start and ends with a
 * hash of the whole, so two long names never share a session name by truncation.
 */
export function sessionName(namespace: string, workload: string): string {
  const full = `${namespace}.${workload}`;
  const clean = full.replace(INVALID, '-');
  if (clean.length <= MAX) return clean.length >= 2 ? clean : clean.padEnd(2, '-');
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 10);
  return `${clean.slice(0, MAX - hash.length - 1)}-${hash}`;
}

export interface PodIdentity {
  name: string;
  labels?: Record<string, string>;
  ownerReferences?: ReadonlyArray<{ kind: string; name: string; controller?: boolean }>;
}

/**
 * The workload a pod belongs to: its Deployment (the ReplicaSet name without the
 * pod-template-hash), its other controller (StatefulSet, DaemonSet, Job, ...), or the
 * pod itself. Pods of one workload share a session name and so one set of credentials.
 */
export function workloadName(pod: PodIdentity): string {
  const owner = pod.ownerReferences?.find((ref) => ref.controller === true);
  if (owner === undefined) return pod.name;
  const hash = pod.labels?.['pod-template-hash'];
  if (owner.kind === 'ReplicaSet' && hash !== undefined && owner.name.endsWith(`-${hash}`)) {
    return owner.name.slice(0, -hash.length - 1);
  }
  return owner.name;
}
