// Pod objects as the API server sends them, for tests.

import type { PodObject, PodRecord } from '../../lib/pods/pod.js';
import { podRecord } from '../../lib/pods/pod.js';

export const KEYS = { role: 'iam.amazonaws.com/role', externalId: 'iam.amazonaws.com/external-id' };

export interface PodSpec {
  uid?: string;
  name: string;
  namespace?: string;
  ip?: string;
  phase?: string;
  role?: string;
  externalId?: string;
  hostNetwork?: boolean;
  terminating?: boolean;
  /** Every container has terminated (kubelet's report). */
  stopped?: boolean;
}

export function podObject(p: PodSpec): PodObject {
  const annotations: Record<string, string> = {};
  if (p.role !== undefined) annotations[KEYS.role] = p.role;
  if (p.externalId !== undefined) annotations[KEYS.externalId] = p.externalId;
  return {
    metadata: {
      uid: p.uid ?? `uid-${p.name}`,
      name: p.name,
      namespace: p.namespace ?? 'default',
      annotations,
      creationTimestamp: '2026-11-27T00:00:00Z',
      deletionTimestamp: p.terminating === true ? '2026-11-27T01:00:00Z' : null,
    },
    spec: { hostNetwork: p.hostNetwork ?? false },
    status: {
      phase: p.phase ?? 'Running',
      podIP: p.ip ?? null,
      podIPs: p.ip === undefined ? [] : [{ ip: p.ip }],
      containerStatuses: [{ state: { terminated: p.stopped === true ? { exitCode: 0 } : null } }],
    },
  };
}

export function pod(p: PodSpec): PodRecord {
  const record = podRecord(podObject(p), KEYS);
  if (record === null) throw new Error('invalid pod');
  return record;
}
