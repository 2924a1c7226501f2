// What the proxy keeps of a pod: enough to name it by IP and to pick its credentials,
// and nothing else, so ten thousand pods stay small. Pure.

import { workloadName } from '../credentials/session-name.js';
import { normalizeIp } from './ip.js';

export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  /** Normalised pod IPs (status.podIPs, or status.podIP); empty until the pod has one. */
  ips: string[];
  phase: string;
  hostNetwork: boolean;
  /** deletionTimestamp is set: the pod is shutting down. */
  terminating: boolean;
  /**
   * Terminating, and every container has stopped: nothing in the pod can call any more,
   * and its IP may already be given to a new pod.
   */
  stopped: boolean;
  /** creationTimestamp, ms. */
  created: number;
  /** The role annotation's value, undefined when the pod has none. */
  role: string | undefined;
  /** The external-ID annotation's value, undefined when the pod has none. */
  externalId: string | undefined;
  workload: string;
  /** spec.serviceAccountName: whose role annotation applies with --service-account-roles. */
  serviceAccount: string;
}

export interface AnnotationKeys {
  role: string;
  externalId: string;
}

/** The fields of a Kubernetes pod object the proxy reads (list and watch shapes). */
export interface PodObject {
  metadata?: {
    uid?: string;
    name?: string;
    namespace?: string;
    annotations?: Record<string, string> | null;
    labels?: Record<string, string> | null;
    creationTimestamp?: Date | string | null;
    deletionTimestamp?: Date | string | null;
    ownerReferences?: Array<{ kind: string; name: string; controller?: boolean | null }> | null;
  } | null;
  spec?: { hostNetwork?: boolean | null; serviceAccountName?: string | null; serviceAccount?: string | null } | null;
  status?: {
    phase?: string | null;
    podIP?: string | null;
    podIPs?: Array<{ ip?: string | null }> | null;
    containerStatuses?: Array<{ state?: { terminated?: unknown } | null }> | null;
  } | null;
}

export function podRecord(pod: PodObject, keys: AnnotationKeys): PodRecord | null {
  const meta = pod.metadata;
  if (meta?.uid == null || meta.name == null || meta.namespace == null) return null;
  const ips = new Set<string>();
  for (const entry of pod.status?.podIPs ?? []) {
    const ip = entry.ip == null ? null : normalizeIp(entry.ip);
    if (ip !== null) ips.add(ip);
  }
  const single = pod.status?.podIP == null ? null : normalizeIp(pod.status.podIP);
  if (single !== null) ips.add(single);
  const annotations = meta.annotations ?? {};
  const containers = pod.status?.containerStatuses ?? [];
  const terminating = meta.deletionTimestamp != null;
  return {
    uid: meta.uid,
    namespace: meta.namespace,
    name: meta.name,
    ips: [...ips],
    phase: pod.status?.phase ?? 'Unknown',
    hostNetwork: pod.spec?.hostNetwork === true,
    terminating,
    stopped: terminating && containers.length > 0 && containers.every((c) => c.state?.terminated != null),
    created: meta.creationTimestamp == null ? 0 : new Date(meta.creationTimestamp).getTime(),
    role: annotations[keys.role],
    externalId: annotations[keys.externalId],
    workload: workloadName({
      name: meta.name,
      labels: meta.labels ?? undefined,
      ownerReferences: meta.ownerReferences?.map((r) => ({ kind: r.kind, name: r.name, controller: r.controller === true })),
    }),
    // As the API server's admission sets it: the deprecated field, else "default".
    serviceAccount: pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default',
  };
}

/** A pod that may still call: not finished, not stopped. */
export function podIsRunning(pod: PodRecord): boolean {
  return !pod.stopped && pod.phase !== 'Succeeded' && pod.phase !== 'Failed';
}

/** A pod that may use credentials by its address: running, and not on the host network (whose address is the node's). */
export function podIsActive(pod: PodRecord): boolean {
  return !pod.hostNetwork && podIsRunning(pod);
}
