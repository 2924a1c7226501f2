// The connection to the Kubernetes API, as kube2iam makes it: --kubeconfig wins, then
// --api-server with --api-token, else the in-cluster service account.

import { existsSync } from 'node:fs';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { LiveClaims } from './callers.js';
import { podRecord, type AnnotationKeys, type PodObject } from './pod.js';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubernetesConnection {
  kubeconfig: string | null;
  apiServer: string | null;
  apiToken: string | null;
  /** Skip TLS verification of the API server (testing only). */
  insecure: boolean;
}

export function loadKubeConfig(connection: KubernetesConnection): KubeConfig {
  const kc = new KubeConfig();
  if (connection.kubeconfig !== null) {
    kc.loadFromFile(connection.kubeconfig);
  } else if (connection.apiServer !== null && connection.apiToken !== null) {
    kc.loadFromOptions({
      clusters: [{ name: 'cluster', server: connection.apiServer, skipTLSVerify: connection.insecure }],
      users: [{ name: 'kube2iam', token: connection.apiToken }],
      contexts: [{ name: 'kube2iam', cluster: 'cluster', user: 'kube2iam' }],
      currentContext: 'kube2iam',
    });
    return kc;
  } else {
    // loadFromCluster does not fail outside a cluster; it would watch "https://undefined".
    if (process.env.KUBERNETES_SERVICE_HOST === undefined || !existsSync(SERVICE_ACCOUNT_TOKEN)) {
      throw new Error('not running in a Kubernetes cluster (no KUBERNETES_SERVICE_HOST or service account token)');
    }
    kc.loadFromCluster();
  }
  if (connection.insecure) {
    const cluster = kc.getCurrentCluster();
    if (cluster !== null) {
      kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, skipTLSVerify: true } : c));
    }
  }
  return kc;
}

/** One page of a list: raw items and where to continue. */
export interface ListPage {
  items: unknown[];
  resourceVersion: string;
  continueToken: string | undefined;
}

export type ListFunction = (continueToken: string | undefined, limit: number) => Promise<ListPage>;

export function podLister(kc: KubeConfig, fieldSelector: string | undefined): ListFunction {
  const core = kc.makeApiClient(CoreV1Api);
  return async (continueToken, limit) => {
    const list = await core.listPodForAllNamespaces({ fieldSelector, limit, _continue: continueToken });
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?._continue || undefined };
  };
}

export function namespaceLister(kc: KubeConfig): ListFunction {
  const core = kc.makeApiClient(CoreV1Api);
  return async (continueToken, limit) => {
    const list = await core.listNamespace({ limit, _continue: continueToken });
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?._continue || undefined };
  };
}

/**
 * The pods that hold an IP now, by a consistent list from the API server (not the watch,
 * which may lag behind): for a terminating owner's IP and --resolve-duplicate-cache-ips.
 */
export function liveClaims(kc: KubeConfig, keys: AnnotationKeys): LiveClaims {
  const core = kc.makeApiClient(CoreV1Api);
  return async (ip) => {
    const pods = (await core.listPodForAllNamespaces({ fieldSelector: `status.podIP=${ip}` })).items;
    return pods.flatMap((p) => podRecord(p as PodObject, keys) ?? []);
  };
}
