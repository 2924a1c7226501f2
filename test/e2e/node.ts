// A Kubernetes node built from real parts, for end-to-end tests with real clients:
// - the node network namespace (bridge cni0 10.200.0.1/24, 169.254.169.254 on its
//   loopback) and four pod namespaces at 10.200.0.11..14 (test/harness/netns.ts);
// - etcd and kube-apiserver inside the node namespace, on its own loopback;
// - moto on 0.0.0.0:80 inside the node namespace: the upstream metadata service at
//   169.254.169.254:80 for the proxy (traffic made inside the node namespace skips
//   PREROUTING, so the proxy reaches moto directly) and STS, for the proxy at
//   169.254.169.254:80 and for the pods at 10.200.0.1:80 (only 169.254.169.254:80 is
//   DNATed);
// - namespaces and pods created with kubectl, reported Running by a status patch as
//   their kubelet would;
// - the built program, dist/bin/kube2iam.js, started in the node namespace with
//   DaemonSet-style flags, restarted with other flags between test modes.
//
// Safety: every client that uses the default 169.254.169.254 runs through
// `ip netns exec <pod>`, where that address is DNATed to the proxy (or, when no rule is
// there, reaches only the node namespace). Nothing here reaches the machine's network.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { MotoServer } from '../harness/moto.js';
import { createNodeTopology, METADATA_IP, type NetworkNamespace, type NodeTopology } from '../harness/netns.js';
import { curlIn, type CurlOptions, type HttpAnswer } from '../harness/curl.js';
import { execute as exec, TestProcess, type ExecResult } from '../harness/processes.js';
import { nth } from '../harness/nth.js';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..');
export const PROGRAM = join(REPO, 'dist', 'bin', 'kube2iam.js');
export const CLIENTS = join(here, 'clients');

export const ACCOUNT = '123456789012';
export const BASE_ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/`;
export const NODE_NAME = 'node-1';
export const PROXY_PORT = 8181;
/** moto, as the pods reach it (not DNATed). */
export const POD_STS_ENDPOINT = 'http://10.200.0.1:80';
export const TOKEN_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';

/**
 * tap's process-info hook adds NODE_OPTIONS (its loaders) to the environment of every
 * child the test spawns, whatever environment it is given: a node program then takes
 * seconds to start, and runs tap's hooks. `env -u` drops it before the program starts
 * (and execs it, so the PID is still the program's).
 */
const WITHOUT_TAP_HOOKS = ['env', '-u', 'NODE_OPTIONS'];

export interface PodSpec {
  namespace: string;
  name: string;
  /** The iam.amazonaws.com/role annotation; none when undefined. */
  role?: string;
}

/** The node's namespaces (allowed-roles annotation) and pods, in pod-IP order (.11, .12, ...). */
export const NAMESPACES: Record<string, string[]> = { shop: ['shop-*'], billing: ['billing-*'] };
export const POD_SPECS = {
  cart: { namespace: 'shop', name: 'cart', role: 'shop-cart' },
  ledger: { namespace: 'billing', name: 'ledger', role: 'billing-api' },
  plain: { namespace: 'shop', name: 'plain' },
  sneaky: { namespace: 'shop', name: 'sneaky', role: 'admin' },
} as const satisfies Record<string, PodSpec>;
export type PodKey = keyof typeof POD_SPECS;

/** A pod: its network namespace, IP, and what it is in Kubernetes. */
export class Pod {
  readonly key: PodKey;
  readonly spec: PodSpec;
  readonly ns: NetworkNamespace;
  readonly ip: string;
  /** Its IPv6 address on a dual-stack node. */
  readonly ip6: string | undefined;
  readonly home: string;

  constructor(key: PodKey, ns: NetworkNamespace, ip: string, ip6?: string) {
    this.key = key;
    this.spec = POD_SPECS[key];
    this.ns = ns;
    this.ip = ip;
    this.ip6 = ip6;
    this.home = mkdtempSync(join(tmpdir(), `k2i-e2e-${key}-`));
  }

  /**
   * The environment of a client in this pod: the SDK's defaults, so it calls
   * http://169.254.169.254 (no AWS_EC2_METADATA_* variables), no static keys or profile,
   * and empty config and credential files.
   */
  clientEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: this.home,
      LANG: 'C.UTF-8',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      ...extra,
    };
    if (process.env.PYENV_ROOT !== undefined) env.PYENV_ROOT = process.env.PYENV_ROOT;
    return env;
  }

  /** Runs a client inside this pod's namespace, with `clientEnv`. */
  run(command: string, args: string[], extraEnv: Record<string, string> = {}): Promise<ExecResult> {
    return exec('ip', ['netns', 'exec', this.ns.name, ...WITHOUT_TAP_HOOKS, command, ...args], { env: this.clientEnv(extraEnv), timeoutMs: 60_000 });
  }

  /** curl from this pod to the metadata address (DNATed to the proxy). */
  metadata(path: string, options: CurlOptions = {}): Promise<HttpAnswer> {
    return curlIn(this.ns.prefix, `http://${METADATA_IP}${path}`, options);
  }

  /** An IMDSv2 token through the metadata address; throws unless it is answered 200. */
  async token(ttlSeconds = 300): Promise<string> {
    const answer = await this.metadata('/latest/api/token', { method: 'PUT', headers: { [TOKEN_TTL_HEADER]: String(ttlSeconds) } });
    if (answer.status !== 200) throw new Error(`token PUT from ${this.ip} answered ${answer.status} (curl exit ${answer.curlExit}): ${answer.body}`);
    return answer.body;
  }
}

export interface TestNodeOptions {
  /**
   * moto's port in the node namespace (80: the metadata service's own, as the DNAT rule
   * matches); another leaves port 80 of the node's other addresses free.
   */
  motoPort?: number;
  /** Dual-stack pods (netns.ts). */
  ipv6?: boolean;
}

export class TestNode {
  readonly topology: NodeTopology;
  readonly plane: KubernetesControlPlane;
  readonly moto: MotoServer;
  readonly pods: Record<PodKey, Pod>;
  proxy: TestProcess | null = null;
  private lastProxy: TestProcess | null = null;

  private constructor(topology: NodeTopology, plane: KubernetesControlPlane, moto: MotoServer, pods: Record<PodKey, Pod>) {
    this.topology = topology;
    this.plane = plane;
    this.moto = moto;
    this.pods = pods;
  }

  /** moto as the proxy reaches it: the metadata address, at moto's port. */
  get metadataAddr(): string {
    return this.moto.port === 80 ? METADATA_IP : `${METADATA_IP}:${this.moto.port}`;
  }

  /** moto as STS, for clients in the pods (not DNATed). */
  get podStsEndpoint(): string {
    return `http://${this.topology.nodeIp}:${this.moto.port}`;
  }

  get node(): NetworkNamespace {
    return this.topology.node;
  }

  /** Builds the node, its control plane, moto, and the pods; no proxy yet. */
  static async start(options: TestNodeOptions = {}): Promise<TestNode> {
    const keys = Object.keys(POD_SPECS) as PodKey[];
    const topology = await createNodeTopology(keys.length, 'bridge', { ipv6: options.ipv6 });
    let plane: KubernetesControlPlane | null = null;
    let moto: MotoServer | null = null;
    const pods = {} as Record<PodKey, Pod>;
    try {
      const prefix = topology.node.prefix;
      const [planeStart, motoStart] = await Promise.allSettled([
        KubernetesControlPlane.start({ prefix }),
        MotoServer.start({ host: '0.0.0.0', port: options.motoPort ?? 80, prefix }),
      ]);
      plane = planeStart.status === 'fulfilled' ? planeStart.value : null;
      moto = motoStart.status === 'fulfilled' ? motoStart.value : null;
      if (planeStart.status === 'rejected') throw planeStart.reason;
      if (motoStart.status === 'rejected') throw motoStart.reason;
      const kube = planeStart.value;
      keys.forEach((key, n) => {
        const network = nth(topology.pods, n);
        pods[key] = new Pod(key, network.ns, network.ip, network.ip6);
      });
      for (const [name, allowed] of Object.entries(NAMESPACES)) {
        await kube.kubectl(
          ['apply', '-f', '-'],
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name, annotations: { 'iam.amazonaws.com/allowed-roles': JSON.stringify(allowed) } },
          }),
        );
      }
      for (const pod of Object.values(pods)) {
        const annotations: Record<string, string> = pod.spec.role === undefined ? {} : { 'iam.amazonaws.com/role': pod.spec.role };
        // As ServiceAccount admission would set it (none runs here).
        await kube.kubectlRunningPod(pod.spec.namespace, pod.spec.name, annotations, pod.ip, { serviceAccount: 'default' });
      }
      return new TestNode(topology, kube, motoStart.value, pods);
    } catch (error) {
      await moto?.stop();
      await plane?.stop();
      await topology.delete();
      for (const pod of Object.values(pods)) rmSync(pod.home, { recursive: true, force: true });
      throw error;
    }
  }

  /** The DaemonSet-style flags every proxy of this node gets. */
  proxyFlags(): string[] {
    return [
      '--app-port',
      String(PROXY_PORT),
      '--base-role-arn',
      BASE_ROLE_ARN,
      '--namespace-restrictions',
      '--node',
      NODE_NAME,
      '--kubeconfig',
      this.plane.kubeconfig,
      '--iptables',
      '--host-interface',
      this.topology.hostInterface,
      '--host-ip',
      this.topology.nodeIp,
      '--metadata-addr',
      this.metadataAddr,
      '--stats-interval',
      '0',
    ];
  }

  /** Starts dist/bin/kube2iam.js in the node namespace; ready when /healthz answers 200. */
  async startProxy(extraFlags: string[] = []): Promise<TestProcess> {
    if (this.proxy !== null) throw new Error('a proxy is already running');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_ENDPOINT_URL_STS: `http://${METADATA_IP}:${this.moto.port}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      // The proxy is no SDK client of the metadata service; its upstream is --metadata-addr.
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    delete env.AWS_PROFILE;
    delete env.AWS_SESSION_TOKEN;
    const argv = ['netns', 'exec', this.node.name, ...WITHOUT_TAP_HOOKS, process.execPath, PROGRAM, ...this.proxyFlags(), ...extraFlags];
    this.proxy = this.lastProxy = await TestProcess.start('ip', argv, {
      name: 'kube2iam',
      env,
      cwd: REPO,
      ready: async () => (await this.healthz()) === 200,
      readyTimeoutMs: 20_000,
    });
    return this.proxy;
  }

  /** /healthz of the proxy, from the node namespace; 0 when nothing answers. */
  async healthz(): Promise<number> {
    return (await curlIn(this.node.prefix, `http://${this.topology.nodeIp}:${PROXY_PORT}/healthz`, { timeoutS: 1 })).status;
  }

  /** Stops the proxy (SIGTERM); resolves with its exit code. */
  async stopProxy(): Promise<number | null> {
    const proxy = this.proxy;
    this.proxy = null;
    return proxy === null ? null : proxy.stop(12_000);
  }

  /** The output of the proxy running now, or of the last one stopped. */
  proxyLog(): string {
    return (this.proxy ?? this.lastProxy)?.log() ?? '';
  }

  /** `iptables -t nat -S PREROUTING` in the node namespace, one rule a line. */
  async natPrerouting(): Promise<string[]> {
    const result = await exec('ip', ['netns', 'exec', this.node.name, 'iptables', '-w', '-t', 'nat', '-S', 'PREROUTING']);
    if (result.code !== 0) throw new Error(`iptables -S failed: ${result.stderr}`);
    return result.stdout.split('\n').filter((line) => line.startsWith('-A '));
  }

  async stop(): Promise<void> {
    await this.stopProxy().catch(() => undefined);
    await this.moto.stop().catch(() => undefined);
    await this.plane.stop().catch(() => undefined);
    await this.topology.delete();
    for (const pod of Object.values(this.pods)) rmSync(pod.home, { recursive: true, force: true });
  }
}

/** The request lines moto logged (werkzeug: `"GET /path HTTP/1.1" 200`), as `METHOD path`. */
export function motoRequests(log: string): string[] {
  return [...log.matchAll(/"([A-Z]+) (\S+) HTTP\/1\.[01]" (\d{3})/g)].map((m) => `${m[1]} ${m[2]}`);
}
