// A real Kubernetes control plane for tests: Debian's etcd and a kube-apiserver built
// from Debian's kubernetes source package (test/setup/install.sh), on free loopback
// ports, with a static admin token and a kubeconfig for kubectl and the client.

import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearerEndpoint, KubernetesApi } from '../../lib/pods/kubernetes.js';
import { freePort } from './ports.js';
import { run, TestProcess, type StartOptions } from './processes.js';
import { testCache } from './environment.js';

export const ADMIN_TOKEN = 'k2i-test-admin-token';

export interface ControlPlaneOptions {
  /**
   * Runs etcd, kube-apiserver, their readiness checks, kubectl and etcdctl through this
   * command prefix, e.g. `ip netns exec <node>`: the control plane then listens on that
   * network namespace's own loopback, beside a proxy started there.
   */
  prefix?: string[];
}

export class KubernetesControlPlane {
  readonly dir: string;
  readonly kubeconfig: string;
  apiServerUrl = '';
  caFile = '';
  private etcd: TestProcess | null = null;
  private apiServer: TestProcess | null = null;
  private etcdClientPort = 0;
  private etcdPeerPort = 0;
  private apiPort = 0;
  private readonly prefix: string[];

  private constructor(prefix: string[]) {
    this.prefix = prefix;
    this.dir = mkdtempSync(join(tmpdir(), 'k2i-kube-'));
    this.kubeconfig = join(this.dir, 'kubeconfig');
  }

  /** Starts etcd and kube-apiserver; rejects with their logs when they do not come up. */
  static async start(options: ControlPlaneOptions = {}): Promise<KubernetesControlPlane> {
    const plane = new KubernetesControlPlane(options.prefix ?? []);
    try {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      writeFileSync(join(plane.dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(join(plane.dir, 'sa.key'), privateKey.export({ type: 'pkcs1', format: 'pem' }));
      writeFileSync(join(plane.dir, 'tokens.csv'), `${ADMIN_TOKEN},admin,1,"system:masters"\n`);
      plane.etcdClientPort = await freePort();
      plane.etcdPeerPort = await freePort();
      plane.apiPort = await freePort();
      await plane.startEtcd();
      await plane.startApiServer();
      plane.writeKubeconfig();
      return plane;
    } catch (error) {
      await plane.stop();
      throw error;
    }
  }

  async startEtcd(): Promise<void> {
    const client = `http://127.0.0.1:${this.etcdClientPort}`;
    const peer = `http://127.0.0.1:${this.etcdPeerPort}`;
    this.etcd = await this.startProcess(
      'etcd',
      [
        '--name',
        't1',
        '--data-dir',
        join(this.dir, 'etcd-data'),
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `t1=${peer}`,
      ],
      { name: 'etcd', ready: () => (this.prefix.length === 0 ? httpOk(`${client}/health`) : this.curlInside([`${client}/health`])) },
    );
  }

  async startApiServer(): Promise<void> {
    const binary = join(testCache(), 'bin', 'kube-apiserver');
    this.apiServerUrl = `https://127.0.0.1:${this.apiPort}`;
    this.apiServer = await this.startProcess(
      binary,
      [
        `--etcd-servers=http://127.0.0.1:${this.etcdClientPort}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${this.apiPort}`,
        `--cert-dir=${join(this.dir, 'certs')}`,
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(this.dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(this.dir, 'sa.key')}`,
        `--token-auth-file=${join(this.dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        '--service-cluster-ip-range=10.96.0.0/24',
        // No controller-manager runs, so the default ServiceAccount never exists.
        '--disable-admission-plugins=ServiceAccount',
        // As kubeadm and managed clusters set it: kube2iam's own DaemonSet is privileged.
        '--allow-privileged=true',
      ],
      { name: 'kube-apiserver', ready: () => this.ready(), readyTimeoutMs: 60_000 },
    );
    this.caFile = join(this.dir, 'certs', 'apiserver.crt');
  }

  /** Kills the API server (a crash, not a shutdown); etcd keeps running. */
  async killApiServer(): Promise<void> {
    await this.apiServer?.kill();
    this.apiServer = null;
  }

  async killEtcd(): Promise<void> {
    await this.etcd?.kill();
    this.etcd = null;
  }

  /** Starts a component, through the prefix when there is one. */
  private startProcess(command: string, args: string[], options: StartOptions): Promise<TestProcess> {
    const [program, ...rest] = [...this.prefix, command, ...args] as [string, ...string[]];
    return TestProcess.start(program, rest, options);
  }

  /** Runs a command to completion, through the prefix when there is one. */
  private runInside(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
    const [program, ...rest] = [...this.prefix, command, ...args] as [string, ...string[]];
    return run(program, rest, options);
  }

  /** True when curl, run through the prefix, gets a 2xx answer within a second. */
  private curlInside(args: string[]): Promise<boolean> {
    return this.runInside('curl', ['-sfk', '-o', '/dev/null', '--max-time', '1', ...args]).then(
      () => true,
      () => false,
    );
  }

  private ready(): Promise<boolean> {
    if (this.prefix.length > 0) {
      return this.curlInside(['-H', `Authorization: Bearer ${ADMIN_TOKEN}`, `https://127.0.0.1:${this.apiPort}/readyz`]);
    }
    return new Promise((resolve) => {
      const req = request(
        `https://127.0.0.1:${this.apiPort}/readyz`,
        { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, rejectUnauthorized: false, timeout: 1000 },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on('error', () => resolve(false));
      req.on('timeout', () => req.destroy());
      req.end();
    });
  }

  /** The tests' own calls (creating and patching objects), through client-node as an operator's tools would. */
  core(): CoreV1Api {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfig);
    return kc.makeApiClient(CoreV1Api);
  }

  /** The proxy's API client as a cluster gives it, with the admin token; `server` may be a relay in front of it. */
  proxyApi(server = this.apiServerUrl): KubernetesApi {
    return new KubernetesApi(bearerEndpoint(server, ADMIN_TOKEN, { ca: readFileSync(this.caFile), rejectUnauthorized: true }));
  }

  /**
   * The program's flags for this API server as benchmarks run it: the lean client with a
   * bearer token, so the program loads what a DaemonSet's proxy does in a cluster (not
   * client-node, which --kubeconfig brings); the test CA is self-signed, hence --insecure.
   */
  programConnection(): string[] {
    return ['--api-server', this.apiServerUrl, '--api-token', ADMIN_TOKEN, '--insecure'];
  }

  private writeKubeconfig(): void {
    const ca = readFileSync(this.caFile).toString('base64');
    writeFileSync(
      this.kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: this.apiServerUrl, 'certificate-authority-data': ca } }],
        users: [{ name: 'admin', user: { token: ADMIN_TOKEN } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
        'current-context': 'test',
      }),
    );
  }

  /**
   * With kubectl, as a user would: applies an annotated pod, then reports it Running with
   * `ip`, as its kubelet would. No ServiceAccount admission runs here, so a pod names its
   * service account itself (`serviceAccount`, which must exist for its tokens).
   */
  async kubectlRunningPod(
    namespace: string,
    name: string,
    annotations: Record<string, string>,
    ip: string,
    options: { serviceAccount?: string; node?: string; hostNetwork?: boolean } = {},
  ): Promise<void> {
    await this.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace, annotations },
        spec: {
          nodeName: options.node ?? 'node-1',
          ...(options.serviceAccount === undefined ? {} : { serviceAccountName: options.serviceAccount }),
          ...(options.hostNetwork === true ? { hostNetwork: true } : {}),
          containers: [{ name: 'c', image: 'busybox' }],
        },
      }),
    );
    await this.kubectl([
      'patch',
      'pod',
      name,
      '-n',
      namespace,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } }),
    ]);
  }

  /** A ServiceAccount, annotated (the IRSA role annotation, say). */
  async serviceAccount(namespace: string, name: string, annotations: Record<string, string> = {}): Promise<void> {
    await this.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, annotations } }));
  }

  /**
   * A token the API server issues (TokenRequest, as the kubelet asks for a projected
   * volume): bound to `pod` unless null, for `audience` (the API server's when omitted),
   * valid 10 minutes (the shortest it issues).
   */
  async issueToken(namespace: string, serviceAccount: string, pod: string | null, audience?: string): Promise<string> {
    const args = ['create', 'token', serviceAccount, '-n', namespace, '--duration', '10m'];
    if (audience !== undefined) args.push('--audience', audience);
    if (pod !== null) args.push('--bound-object-kind', 'Pod', '--bound-object-name', pod);
    return (await this.kubectl(args)).trim();
  }

  /**
   * A token signed here with the API server's own signing key (or `key`), with any
   * claims: what TokenRequest will not issue (expired, for a pod that never was).
   */
  mintToken(claims: Record<string, unknown>, key: KeyObject | string = readFileSync(join(this.dir, 'sa.key'), 'utf8')): string {
    const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const unsigned = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({ iss: 'https://kubernetes.default.svc', ...claims })}`;
    return `${unsigned}.${sign('sha256', Buffer.from(unsigned), key).toString('base64url')}`;
  }

  /** Runs etcdctl (v3) against this control plane's etcd, e.g. to change state while the API server is down. */
  etcdctl(args: string[]): Promise<string> {
    return this.runInside('etcdctl', ['--endpoints', `http://127.0.0.1:${this.etcdClientPort}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  }

  /** Runs kubectl against this control plane; `input` goes to stdin (for `apply -f -`). */
  kubectl(args: string[], input?: string): Promise<string> {
    return this.runInside('kubectl', ['--kubeconfig', this.kubeconfig, ...args], { input, env: { ...process.env, KUBECONFIG: this.kubeconfig } });
  }

  async stop(): Promise<void> {
    await this.apiServer?.stop();
    await this.etcd?.stop();
    this.apiServer = null;
    this.etcd = null;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}
