// A DaemonSet's container as the kubelet starts it: its environment from values and the
// downward API, and its arguments with $(VAR) expanded from that environment.

import { readFileSync } from 'node:fs';
import { loadAllYaml } from '@kubernetes/client-node';

export interface Probe {
  httpGet?: { path: string; port: number | string };
}

export interface Container {
  image: string;
  args?: string[];
  env?: Array<{ name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  securityContext?: {
    privileged?: boolean;
    runAsUser?: number;
    runAsNonRoot?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

export interface PodSpec {
  containers: Container[];
  volumes: Array<{ name: string; hostPath?: { path: string; type?: string } }>;
}

/** The pod template of the DaemonSet in a manifest file, or in manifests' text (`kubectl kustomize`'s output). */
export function podSpec(file: string, text = readFileSync(file, 'utf8')): PodSpec {
  const docs = loadAllYaml(text) as Array<{ kind: string; spec: { template: { spec: PodSpec } } }>;
  const spec = docs.find((doc) => doc.kind === 'DaemonSet')?.spec.template.spec;
  if (spec === undefined) throw new Error(`${file} has no DaemonSet`);
  return spec;
}

/** The first container of the DaemonSet in a manifest file, or in manifests' text. */
export function daemonSetContainer(file: string, text = readFileSync(file, 'utf8')): Container {
  const container = podSpec(file, text).containers[0];
  if (container === undefined) throw new Error(`${file} has no DaemonSet with a container`);
  return container;
}

/** The container's environment, with downward-API fields (`status.podIP`, ...) from `fields`. */
export function containerEnv(container: Container, fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? fields[e.valueFrom?.fieldRef?.fieldPath ?? ''] ?? '']));
}

/** The arguments with $(VAR) expanded as the kubelet does (an unknown variable stays as written). */
export function containerArgs(container: Container, env: Record<string, string>): string[] {
  return (container.args ?? []).map((arg) => arg.replace(/\$\((\w+)\)/g, (whole, name: string) => env[name] ?? whole));
}
