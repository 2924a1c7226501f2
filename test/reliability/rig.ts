// The fault rig: the real program (dist/bin/kube2iam.js) as a child process, with real
// parts around it and a fault injector on each path a fault can be put on:
//   program --kubeconfig--> FaultRelay (TCP) --> kube-apiserver --> etcd
//   program --STS---------> StsFaultInjector (HTTP) --> moto_server
//   program --metadata----> FaultRelay (TCP) --> moto_server (its /latest/meta-data)
// Pods are created through the API and reported Running at loopback addresses, so the
// test asks for credentials from each pod's own source address. Everything stays on
// loopback.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import { REPO } from '../e2e/node.js';
import { shippedProgram } from '../harness/environment.js';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { MotoServer } from '../harness/moto.js';
import { freePort } from '../harness/ports.js';
import { footprint, TestProcess } from '../harness/processes.js';
import { FaultRelay } from '../harness/relay.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { get } from '../harness/pod-client.js';
import { CREDENTIALS_PATH, CredentialChecker, CredentialLoad, type LoadedPod } from './load.js';

export const BASE_ROLE_ARN = 'arn:aws:iam::123456789012:role/';
export const NAMESPACE = 'reliability';
export const NODE = 'node-1';
const ROLE_KEY = 'iam.amazonaws.com/role';

export interface ProcessFootprint {
  rssKb: number;
  fds: number;
}

export interface RigOptions {
  /** Granted credential lifetimes are cut to this (see StsFaultInjector). */
  lifetimeSeconds: number;
  loadPods: readonly LoadedPod[];
  loadPauseMs: number;
  /** Extra program flags; a flag named here replaces the rig's own (e.g. --stats-interval). */
  flags?: string[];
}

export class FaultRig {
  readonly checker = new CredentialChecker();
  load!: CredentialLoad;
  program!: TestProcess;
  port = 0;
  private constructor(
    readonly plane: KubernetesControlPlane,
    readonly moto: MotoServer,
    readonly sts: StsFaultInjector,
    readonly apiRelay: FaultRelay,
    readonly upstream: FaultRelay,
    readonly core: CoreV1Api,
  ) {}

  static async start(options: RigOptions): Promise<FaultRig> {
    const plane = await KubernetesControlPlane.start();
    const parts: Array<() => Promise<void>> = [() => plane.stop()];
    try {
      const moto = await MotoServer.start();
      parts.push(() => moto.stop());
      const sts = await StsFaultInjector.start({ host: moto.host, port: moto.port }, { lifetimeSeconds: options.lifetimeSeconds });
      parts.push(() => sts.close());
      const apiUrl = new URL(plane.apiServerUrl);
      const apiRelay = await new FaultRelay({ host: apiUrl.hostname, port: Number(apiUrl.port) }).listen();
      parts.push(() => apiRelay.close());
      const upstream = await new FaultRelay({ host: moto.host, port: moto.port }).listen();
      parts.push(() => upstream.close());
      // The test's own client goes straight to the API server, so faults on the
      // program's path never stop the test from changing pods.
      const rig = new FaultRig(plane, moto, sts, apiRelay, upstream, plane.core());
      await rig.core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
      for (const pod of options.loadPods) await rig.createRunningPod(podName(pod.ip), pod.role, pod.ip);
      await rig.startProgram(options.flags ?? []);
      parts.push(() => rig.program.stop().then(() => undefined));
      rig.load = new CredentialLoad(rig.port, options.loadPods, rig.checker, options.loadPauseMs);
      rig.stopParts = parts;
      return rig;
    } catch (error) {
      for (const stop of parts.reverse()) await stop().catch(() => undefined);
      throw error;
    }
  }

  private stopParts: Array<() => Promise<void>> = [];

  async stop(): Promise<void> {
    await this.load?.stop();
    for (const stop of this.stopParts.reverse()) await stop().catch(() => undefined);
  }

  /** The program's kubeconfig: the control plane's, with the server moved to the relay (its certificate names 127.0.0.1, any port). */
  private programKubeconfig(): string {
    const config = JSON.parse(readFileSync(this.plane.kubeconfig, 'utf8')) as { clusters: Array<{ cluster: { server: string } }> };
    for (const cluster of config.clusters) cluster.cluster.server = `https://${this.apiRelay.address}`;
    const path = join(this.plane.dir, 'kubeconfig-via-relay');
    writeFileSync(path, JSON.stringify(config));
    return path;
  }

  private async startProgram(extra: string[]): Promise<void> {
    this.port = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ENDPOINT_URL_STS: this.sts.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIDNODE',
      AWS_SECRET_ACCESS_KEY: 'node-secret',
      // The program is no SDK client of the metadata service; its upstream is --metadata-addr.
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    delete env.AWS_PROFILE;
    delete env.AWS_SESSION_TOKEN;
    const own: Array<[string, string]> = [
      ['--app-port', String(this.port)],
      ['--base-role-arn', BASE_ROLE_ARN],
      ['--node', NODE],
      ['--kubeconfig', this.programKubeconfig()],
      ['--metadata-addr', this.upstream.address],
      ['--stats-interval', '0'],
    ];
    const flags = [...own.filter(([name]) => !extra.includes(name)).flat(), ...extra];
    // `env` execs the program, so the PID is the program's.
    const [command, args] = shippedProgram(flags);
    this.program = await TestProcess.start(command, args, {
      name: 'kube2iam',
      env,
      cwd: REPO,
      ready: async () => (await get(this.port, '127.0.0.1', '/healthz', 1000)).status === 200,
      readyTimeoutMs: 30_000,
    });
  }

  /** Creates an annotated pod on the node and reports it Running at `ip`, as its kubelet would. */
  async createRunningPod(name: string, role: string, ip: string): Promise<void> {
    await this.core.createNamespacedPod({
      namespace: NAMESPACE,
      body: { metadata: { name, annotations: { [ROLE_KEY]: role } }, spec: { nodeName: NODE, containers: [{ name: 'app', image: 'busybox' }] } },
    });
    await this.core.patchNamespacedPodStatus(
      { name, namespace: NAMESPACE, body: { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async deletePod(name: string): Promise<void> {
    await this.core.deleteNamespacedPod({ name, namespace: NAMESPACE, gracePeriodSeconds: 0 });
  }

  async setRole(name: string, role: string): Promise<void> {
    await this.core.patchNamespacedPod(
      { name, namespace: NAMESPACE, body: { metadata: { annotations: { [ROLE_KEY]: role } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Listing and document from `ip`: true when both name `role` and pass the checks (leaks and expiry are counted). */
  async served(ip: string, role: string): Promise<boolean> {
    const listing = await get(this.port, ip, CREDENTIALS_PATH);
    if (!this.checker.listing(ip, role, listing, false)) return false;
    return this.checker.document(ip, role, await get(this.port, ip, `${CREDENTIALS_PATH}${role}`), false);
  }

  /** The listing status from `ip` (404 once its pod is gone). */
  async listingStatus(ip: string): Promise<number> {
    return (await get(this.port, ip, CREDENTIALS_PATH)).status;
  }

  /** Polls `condition` until it holds; ms from `since` to the first time it held, or null after `timeoutMs`. */
  async recovery(condition: () => Promise<boolean>, since: number, timeoutMs: number): Promise<number | null> {
    while (Date.now() - since < timeoutMs) {
      if (await condition().catch(() => false)) return Date.now() - since;
      await sleep(100);
    }
    return null;
  }

  footprint(): ProcessFootprint {
    return footprint(this.program.pid);
  }

  /** Times the program's watches failed and were restarted, from its (folded) log lines' restart counts. */
  watchFailures(): number {
    const restarts = new Map<string, number>();
    for (const line of this.program.log().split('\n')) {
      if (!line.includes('Kubernetes list or watch failed')) continue;
      const resource = /resource[=":]+([^\s"]+)/.exec(line)?.[1] ?? '';
      restarts.set(resource, Math.max(restarts.get(resource) ?? 0, Number(/restarts[=":]+(\d+)/.exec(line)?.[1] ?? 0)));
    }
    let total = 0;
    for (const n of restarts.values()) total += n;
    return total;
  }
}

export function podName(ip: string): string {
  return `pod-${ip.split('.').join('-')}`;
}
