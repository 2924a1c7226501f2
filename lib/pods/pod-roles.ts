// PodRoles applies, on pod, namespace and ServiceAccount events, which credentials each
// pod gets: its role (decideRole: its annotation, its ServiceAccount's or the default,
// under the namespace allow-list), its external ID and its session name. It tells the credential store which keys are in use,
// so credentials are fetched as soon as a pod is known (even before it has an IP) and
// dropped when no pod uses them. A request then only reads the decision.

import { roleListingName, type RolePolicy } from '../credentials/roles.js';
import { sessionName } from '../credentials/session-name.js';
import type { CredentialEntry, CredentialStore } from '../credentials/store.js';
import type { PodIndex, PodIndexObserver } from './pod-index.js';
import { compileNamespacePolicy, type NamespacePolicy, type RestrictionFormat } from './namespace-policy.js';
import { decideRole, roleAnnotation, type ServiceAccountRoles } from './role-decision.js';
import { podIsActive, podIsRunning, type PodRecord } from './pod.js';

export interface RestrictionConfig {
  enabled: boolean;
  format: RestrictionFormat;
  /** Namespace annotation holding the allow-list. */
  key: string;
}

export type PodRole =
  | {
      kind: 'role';
      roleArn: string;
      /** What the role listing shows, and the name a credential request must use. */
      name: string;
      entry: CredentialEntry;
    }
  | { kind: 'none'; reason: string };

export interface PodRolesLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface PodRolesOptions {
  serviceAccountRoles: ServiceAccountRoles;
  /**
   * Pods on the host network get a decision too: only a token names them (the
   * container-credentials endpoint), never their address, which is the node's.
   */
  hostNetworkPods: boolean;
}

export class PodRoles implements PodIndexObserver {
  private readonly roles = new Map<string, PodRole>();
  private readonly namespaces = new Map<string, NamespacePolicy>();
  /** The role annotation of each ServiceAccount that has one, by `namespace/name`. */
  private readonly serviceAccounts = new Map<string, string>();

  constructor(
    private readonly store: CredentialStore,
    private readonly index: PodIndex,
    private readonly policy: RolePolicy,
    private readonly restrictions: RestrictionConfig,
    private readonly log: PodRolesLog,
    private readonly options: PodRolesOptions = { serviceAccountRoles: 'off', hostNetworkPods: false },
  ) {
    index.observe(this);
  }

  /** The decision for a pod; undefined for pods that cannot use credentials (finished, hostNetwork). */
  roleOf(uid: string): PodRole | undefined {
    return this.roles.get(uid);
  }

  podUpdated(pod: PodRecord, previous: PodRecord | undefined): void {
    if (previous !== undefined && !this.affectsRole(pod, previous)) return;
    this.assign(pod);
  }

  podRemoved(pod: PodRecord): void {
    this.roles.delete(pod.uid);
    this.store.release(pod.uid);
  }

  /** Each IP's pod and the decision for it, for `/debug/store` (--debug). */
  snapshot(): { pods: Record<string, object>; restrictedNamespaces: string[] } {
    const pods: Record<string, object> = {};
    for (const [ip, slot] of this.index.slots()) {
      const owner = slot.owner;
      if (owner === null) {
        pods[ip] = { ambiguous: slot.claimants.map((pod) => `${pod.namespace}/${pod.name}`) };
        continue;
      }
      const role = this.roles.get(owner.uid);
      pods[ip] = {
        pod: `${owner.namespace}/${owner.name}`,
        ...(role?.kind === 'role' ? { role: role.roleArn } : { reason: role?.reason ?? 'cannot use credentials' }),
      };
    }
    return { pods, restrictedNamespaces: [...this.namespaces.keys()].sort() };
  }

  /** A namespace was added or changed: its allow-list is compiled once, here. */
  namespaceUpdated(name: string, annotations: Record<string, string> | undefined): void {
    if (!this.restrictions.enabled) return;
    const text = annotations?.[this.restrictions.key];
    const policy = compileNamespacePolicy(text, this.restrictions.format, this.policy.baseRoleArn);
    // Once per namespace and problem: a re-list or an unrelated change says nothing new.
    if (policy.problem !== null && policy.problem !== this.namespaces.get(name)?.problem) {
      this.log.warn(
        { namespace: name, annotation: this.restrictions.key, format: this.restrictions.format },
        `${policy.problem}; every role but the default is denied in this namespace until the annotation is a JSON array of ${this.restrictions.format === 'glob' ? 'role names or ARNs (* matches any characters)' : 'regular expressions matching whole role ARNs'}`,
      );
    }
    this.namespaces.set(name, policy);
    for (const pod of this.index.inNamespace(name)) this.assign(pod);
  }

  namespaceRemoved(name: string): void {
    if (!this.restrictions.enabled || !this.namespaces.delete(name)) return;
    for (const pod of this.index.inNamespace(name)) this.assign(pod);
  }

  /** A ServiceAccount was added or changed: `role` is its role annotation (undefined without one). */
  serviceAccountUpdated(namespace: string, name: string, role: string | undefined): void {
    const key = `${namespace}/${name}`;
    if (this.serviceAccounts.get(key) === role) return;
    if (role === undefined) this.serviceAccounts.delete(key);
    else this.serviceAccounts.set(key, role);
    for (const pod of this.index.inNamespace(namespace)) if (pod.serviceAccount === name) this.assign(pod);
  }

  /** ServiceAccounts not listed are gone (a re-list). */
  replaceServiceAccounts(accounts: ReadonlyArray<{ namespace: string; name: string; role: string | undefined }>): void {
    const listed = new Set(accounts.map((a) => `${a.namespace}/${a.name}`));
    for (const key of [...this.serviceAccounts.keys()]) {
      if (listed.has(key)) continue;
      const [namespace, name] = key.split('/') as [string, string];
      this.serviceAccountUpdated(namespace, name, undefined);
    }
    for (const a of accounts) this.serviceAccountUpdated(a.namespace, a.name, a.role);
  }

  /** Namespaces not listed are gone (a re-list). */
  replaceNamespaces(namespaces: ReadonlyArray<{ name: string; annotations: Record<string, string> | undefined }>): void {
    const listed = new Set(namespaces.map((n) => n.name));
    for (const name of [...this.namespaces.keys()]) if (!listed.has(name)) this.namespaceRemoved(name);
    for (const n of namespaces) this.namespaceUpdated(n.name, n.annotations);
  }

  private assign(pod: PodRecord): void {
    if (!this.eligible(pod)) {
      this.podRemoved(pod);
      return;
    }
    const serviceAccountRole = this.serviceAccounts.get(`${pod.namespace}/${pod.serviceAccount}`);
    const decision = decideRole(pod, serviceAccountRole, this.namespaces.get(pod.namespace), {
      policy: this.policy,
      restricted: this.restrictions.enabled,
      serviceAccountRoles: this.options.serviceAccountRoles,
    });
    if (decision.kind === 'refused') {
      // Logged once per pod and reason: a pod without a role is no news.
      if (!this.deny(pod, decision.reason) || decision.cause === 'none') return;
      const who = `${pod.namespace}/${pod.name}`;
      if (decision.cause === 'invalid')
        this.log.info(
          {
            pod: who,
            annotation: roleAnnotation(pod.role, serviceAccountRole, this.options.serviceAccountRoles)?.slice(0, 300),
            ...(this.options.serviceAccountRoles === 'off' ? {} : { serviceAccount: pod.serviceAccount }),
            reason: decision.reason,
          },
          "the pod's role annotation is not usable; the pod gets 404 until it names a role",
        );
      else
        this.log.info(
          { pod: who, role: decision.arn, namespace: pod.namespace, annotation: this.restrictions.key },
          'role denied by the namespace allow-list; the pod gets 404 until the namespace annotation allows it or the pod names another role',
        );
      return;
    }
    const arn = decision.arn;
    const externalId = pod.externalId?.trim() ?? '';
    const entry = this.store.acquire(pod.uid, {
      roleArn: arn,
      externalId: externalId === '' ? null : externalId,
      sessionName: sessionName(pod.namespace, pod.workload),
    });
    const name = roleListingName(arn, this.policy.baseRoleArn);
    this.roles.set(pod.uid, { kind: 'role', roleArn: arn, name, entry });
  }

  /** Pods that get a decision: running, and off the host network unless hostNetworkPods. */
  private eligible(pod: PodRecord): boolean {
    return this.options.hostNetworkPods ? podIsRunning(pod) : podIsActive(pod);
  }

  private affectsRole(pod: PodRecord, previous: PodRecord): boolean {
    return (
      pod.role !== previous.role ||
      pod.externalId !== previous.externalId ||
      pod.workload !== previous.workload ||
      pod.serviceAccount !== previous.serviceAccount ||
      this.eligible(pod) !== this.eligible(previous)
    );
  }

  /** True when this is a new decision for the pod (so it is logged once per pod and reason). */
  private deny(pod: PodRecord, reason: string): boolean {
    this.store.release(pod.uid);
    const current = this.roles.get(pod.uid);
    if (current?.kind === 'none' && current.reason === reason) return false;
    this.roles.set(pod.uid, { kind: 'none', reason });
    return true;
  }
}
