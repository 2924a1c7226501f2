// Which role a pod gets: a pure function of its annotation (or its ServiceAccount's, with
// --service-account-roles), its namespace's allow-list and the node's defaults. The
// default role is exempt from allow-lists, as in kube2iam: the operator chose it for
// every pod, so a namespace cannot forbid it, and an annotation naming it gets nothing a
// pod without the annotation would not. A ServiceAccount's role is under the same
// allow-list as a pod's: whoever may annotate a ServiceAccount in a namespace may not
// reach further than the pods there.

import { resolvePodRole, type RolePolicy } from '../credentials/roles.js';
import { roleAllowed, tooCostly, type NamespacePolicy } from './namespace-policy.js';

export type RoleDecision =
  | { kind: 'role'; arn: string }
  /**
   * `none`: no annotation and no default, or an empty one (not worth a log line);
   * `invalid`: an annotation that names no valid role; `namespace`: the allow-list refuses it.
   */
  | { kind: 'refused'; cause: 'none' | 'invalid' | 'namespace'; reason: string; arn?: string };

/**
 * --service-account-roles: whether a ServiceAccount's role annotation counts, and which
 * wins when a pod and its ServiceAccount both name one.
 */
export type ServiceAccountRoles = 'off' | 'fallback' | 'override';

export interface RoleDefaults {
  policy: RolePolicy;
  /** --namespace-restrictions: allow-lists apply. */
  restricted: boolean;
  serviceAccountRoles: ServiceAccountRoles;
}

/** The annotation that names the pod's role: its own, or its ServiceAccount's (each undefined when absent). */
export function roleAnnotation(podRole: string | undefined, serviceAccountRole: string | undefined, mode: ServiceAccountRoles): string | undefined {
  if (mode === 'fallback') return podRole ?? serviceAccountRole;
  if (mode === 'override') return serviceAccountRole ?? podRole;
  return podRole;
}

/** `pod.role`: its role annotation; `serviceAccountRole`: its ServiceAccount's (undefined without one). */
export function decideRole(
  pod: { namespace: string; role: string | undefined },
  serviceAccountRole: string | undefined,
  namespacePolicy: NamespacePolicy | undefined,
  defaults: RoleDefaults,
): RoleDecision {
  const resolution = resolvePodRole(roleAnnotation(pod.role, serviceAccountRole, defaults.serviceAccountRoles), defaults.policy);
  if (resolution.kind !== 'role') return { kind: 'refused', cause: resolution.kind, reason: resolution.reason };
  const arn = resolution.arn;
  if (!defaults.restricted || arn === defaults.policy.defaultRoleArn) return { kind: 'role', arn };
  if (tooCostly(namespacePolicy, arn)) {
    return { kind: 'refused', cause: 'namespace', arn, reason: `role ${arn} is too long to check against the regexp allow-list of namespace ${pod.namespace}` };
  }
  if (!roleAllowed(namespacePolicy, arn))
    return { kind: 'refused', cause: 'namespace', arn, reason: `role ${arn} is not allowed in namespace ${pod.namespace}` };
  return { kind: 'role', arn };
}
