// Pod objects as the API server sends them, for tests.

import type { PodObject, PodRecord } from '../../lib/pods/pod.js';
import { podRecord } from '../../lib/pods/pod.js';
import { CredentialStore, type CredentialStoreOptions } from '../../lib/credentials/store.js';
import { StsRoleAssumer } from '../../lib/credentials/sts.js';
import type { PodIndex } from '../../lib/pods/pod-index.js';
import { PodRoles, type PodRolesLog, type RestrictionConfig } from '../../lib/pods/pod-roles.js';

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

export const BASE_ROLE_ARN = 'arn:aws:iam::123456789012:role/';

/** A credential store calling STS at `endpoint` (moto) with made-up node keys, one attempt a call. */
export function storeAt(endpoint: string, options: Partial<CredentialStoreOptions> = {}): CredentialStore {
  const sts = new StsRoleAssumer({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'AKIDNODE', secretAccessKey: 'x' }, maxAttempts: 1 });
  return new CredentialStore(sts, { sessionTtlMs: 900_000, errorTtlMs: 0, ...options });
}

/** PodRoles with the tests' base ARN; `log` gets what it would log (nothing, by default). */
export function podRolesFor(
  store: CredentialStore,
  index: PodIndex,
  restrictions: Partial<RestrictionConfig> = {},
  defaultRoleArn: string | null = null,
  log: PodRolesLog = { info: () => undefined, warn: () => undefined },
): PodRoles {
  return new PodRoles(
    store,
    index,
    { baseRoleArn: BASE_ROLE_ARN, defaultRoleArn },
    { enabled: false, format: 'glob', key: 'iam.amazonaws.com/allowed-roles', ...restrictions },
    log,
  );
}
