// kube2iam's own DaemonSet (manifests/examples/kube2iam-daemonset.yaml) with only the image
// swapped, run as a node runs it, without a Docker engine (none runs here):
// - the image: a root filesystem built from the Dockerfile's ingredients (Debian minbase
//   of its base's release with the packages it installs, cached by
//   test/setup/image-rootfs.sh), plus Node 24 at /usr/local/bin/node as the node:24 images
//   have it, and /app as the replayed runtime stage holds it (its own `npm ci --omit=dev`,
//   the compiled files);
// - the container: an overlay on that root, /proc, /sys (of the node's network
//   namespace: hostNetwork) and /dev mounted, the ServiceAccount's token and CA where the
//   kubelet puts them, chroot as the user the manifest implies (privileged, no runAsUser:
//   the image's user), the image's ENV and ENTRYPOINT, the manifest's env and args with
//   $(VAR) expanded as the kubelet does, and KUBERNETES_SERVICE_HOST/PORT;
// - the node: a network namespace wired as the AWS VPC CNI wires pods (one eni<n> link
//   per pod, so --host-interface=eni+ matches), kube-apiserver with the manifest's own
//   ServiceAccount and RBAC, moto as the metadata service at 169.254.169.254:80 (where the
//   proxy finds its node credentials and region, as on EC2) and as STS.
// The one addition to the manifest is AWS_ENDPOINT_URL_STS (moto): no real STS is
// reachable here. Every mount is made inside the namespace `ip netns exec` creates for the
// process, so it goes when the process ends.

import t from 'tap';
import { fatalMessage } from '../harness/log-lines.js';
import { copyFileSync, mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE_COMMANDS } from '../../lib/node/commands.js';
import { REPO } from '../harness/environment.js';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { containerArgs, containerEnv, daemonSetContainer } from '../harness/manifests.js';
import { MotoServer } from '../harness/moto.js';
import { createNodeTopology, METADATA_IP, type NetworkNamespace } from '../harness/netns.js';
import { execute, TestProcess, type ExecResult } from '../harness/processes.js';
import { curlIn } from '../harness/curl.js';
import { entrypoint, IMAGE_PATH, imageEnv, imageRootfs, imageUser, replayStages } from './runtime-stage.js';
import { nth } from '../harness/nth.js';

const MANIFEST = join(REPO, 'manifests', 'examples', 'kube2iam-daemonset.yaml');
const container = daemonSetContainer(MANIFEST);
const PORT = 8181;
const ACCOUNT = '123456789012';
const PODS = [
  { namespace: 'shop', name: 'cart', role: 'shop-cart', arn: `arn:aws:iam::${ACCOUNT}:role/shop-cart` },
  { namespace: 'billing', name: 'ledger', role: `arn:aws:iam::${ACCOUNT}:role/billing-api`, arn: `arn:aws:iam::${ACCOUNT}:role/billing-api` },
  { namespace: 'shop', name: 'plain', role: undefined, arn: undefined },
] as const;

// The image's root and what the kubelet adds, on a work directory the overlay's upper layer is built in.
const work = mkdtempSync(join(tmpdir(), 'k2i-kube2iam-ds-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const lower = await imageRootfs();
const upper = join(work, 'upper');
mkdirSync(join(upper, 'usr', 'local', 'bin'), { recursive: true });
copyFileSync(process.execPath, join(upper, 'usr', 'local', 'bin', 'node'));
const { appDir } = await replayStages(join(work, 'stages'));
renameSync(appDir, join(upper, 'app'));

const topology = await createNodeTopology(PODS.length, 'eni');
t.teardown(() => topology.delete());
const node = topology.node;
const plane = await KubernetesControlPlane.start({ prefix: node.prefix });
t.teardown(() => plane.stop());
const moto = await MotoServer.start({ host: '0.0.0.0', port: 80, prefix: node.prefix });
t.teardown(() => moto.stop());

await plane.kubectl(['apply', '-f', MANIFEST]);
for (const namespace of new Set(PODS.map((p) => p.namespace))) await plane.kubectl(['create', 'namespace', namespace]);
for (const [n, pod] of PODS.entries()) {
  await plane.kubectlRunningPod(pod.namespace, pod.name, pod.role === undefined ? {} : { 'iam.amazonaws.com/role': pod.role }, nth(topology.pods, n).ip);
}
// The ServiceAccount's token, as the kubelet projects it (TokenRequest), and the cluster's CA.
const token = (await plane.kubectl(['create', 'token', 'kube2iam', '-n', 'kube-system', '--duration=1h'])).trim();
// /var/run is a link to /run in Debian: the kubelet's mount lands in /run/secrets.
if (readlinkSync(join(lower, 'var', 'run')) !== '/run') throw new Error('the image root has no /var/run -> /run link');
const serviceAccount = join(upper, 'run', 'secrets', 'kubernetes.io', 'serviceaccount');
mkdirSync(serviceAccount, { recursive: true });
writeFileSync(join(serviceAccount, 'token'), token);
copyFileSync(plane.caFile, join(serviceAccount, 'ca.crt'));
writeFileSync(join(serviceAccount, 'namespace'), 'kube-system');

/** `privileged: true` and no runAsUser: the image's user. */
const manifestUser = container.securityContext?.runAsUser === undefined ? imageUser() : String(container.securityContext.runAsUser);
const apiPort = new URL(plane.apiServerUrl).port;
const env: Record<string, string> = {
  PATH: IMAGE_PATH,
  HOSTNAME: 'node-1',
  ...imageEnv(),
  ...containerEnv(container, { 'status.podIP': topology.nodeIp }),
  KUBERNETES_SERVICE_HOST: '127.0.0.1',
  KUBERNETES_SERVICE_PORT: apiPort,
  AWS_ENDPOINT_URL_STS: `http://${METADATA_IP}:80`,
};
const args = containerArgs(container, env);

/**
 * argv that runs `command` in the container: in the node's network namespace, a private
 * mount namespace with the overlay root, /proc, the node's /sys and /dev, then chroot.
 */
function inContainer(user: string, command: string[], extraEnv: Record<string, string> = {}): string[] {
  const root = join(work, `root-${user}`);
  const layer = join(work, `layer-${user}`);
  const overlayWork = join(work, `overlay-work-${user}`);
  for (const dir of [root, layer, overlayWork]) mkdirSync(dir, { recursive: true });
  const script = [
    'set -e',
    `mount -t overlay overlay -o lowerdir=${upper}:${lower},upperdir=${layer},workdir=${overlayWork} ${root}`,
    `mount -t proc proc ${root}/proc`,
    `mount -t sysfs sysfs ${root}/sys`,
    `mount --rbind /dev ${root}/dev`,
    'exec "$@"',
  ].join('\n');
  const userspec = user === 'root' ? [] : [`--userspec=${user}`];
  const envArgs = Object.entries({ ...env, ...extraEnv }).map(([k, v]) => `${k}=${v}`);
  return ['netns', 'exec', node.name, 'sh', '-c', script, 'container', 'chroot', ...userspec, root, '/usr/bin/env', '-i', '-C', '/app', ...envArgs, ...command];
}

async function dnatRules(): Promise<string[]> {
  const out = await node.exec('iptables', ['-w', '5', '-t', 'nat', '-S', 'PREROUTING']);
  return out.split('\n').filter((line) => line.includes('DNAT'));
}

const healthz = async (): Promise<number> => (await curlIn(node.prefix, `http://${topology.nodeIp}:${PORT}/healthz`, { timeoutS: 1 })).status;

t.test('the manifest is kube2iam’s: privileged, no runAsUser, the rule on eni+ to HOST_IP from status.podIP', async (t) => {
  t.same(container.securityContext, { privileged: true });
  t.same(container.args, ['--base-role-arn=arn:aws:iam::123456789012:role/', '--iptables=true', '--host-ip=$(HOST_IP)', '--host-interface=eni+', '--verbose']);
  t.same(container.env, [{ name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }]);
});

t.test('every command the program can run is in the image', async (t) => {
  for (const command of NODE_COMMANDS) {
    const found = await execute('ip', inContainer('root', ['/bin/sh', '-c', 'command -v "$0"', command]));
    t.equal(found.code, 0, `${command}: ${found.stdout.trim()}${found.stderr.trim()}`);
  }
});

t.test('the program starts no command but those: only lib/node/commands.ts uses child_process', async (t) => {
  const grep = await execute('grep', ['-rlE', 'node:child_process|child_process', join(REPO, 'lib'), join(REPO, 'bin')]);
  t.same(grep.stdout.trim().split('\n'), [join(REPO, 'lib', 'node', 'commands.ts')]);
});

t.test('as the image’s non-root user (uid 1000), --iptables is refused at start in one line, and no rule is installed', async (t) => {
  const result = await execute('ip', inContainer('1000:1000', [...entrypoint(), ...args]), { timeoutMs: 30_000 });
  t.not(result.code, 0);
  t.match(
    fatalMessage(result.stderr),
    /^cannot start: --iptables needs the NET_ADMIN capability, which this process \(uid 1000\) does not have: run the container as root \(runAsUser: 0\)/,
    'one fatal line, the last',
  );
  t.same(await dnatRules(), []);
});

t.test('kube2iam’s DaemonSet with our image: the rule, each pod’s own role through 169.254.169.254, SIGTERM exits 0', async (t) => {
  t.equal(manifestUser, 'root', 'the manifest runs the image’s user, root');
  const proxy = await TestProcess.start('ip', inContainer(manifestUser, [...entrypoint(), ...args]), {
    name: 'kube2iam-ds',
    env: { PATH: process.env.PATH ?? '' },
    ready: async () => (await healthz()) === 200 && (await dnatRules()).length === 1,
    readyTimeoutMs: 30_000,
  });
  t.teardown(() => proxy.stop());
  t.same(await dnatRules(), [`-A PREROUTING -d ${METADATA_IP}/32 -i eni+ -p tcp -m tcp --dport 80 -j DNAT --to-destination ${topology.nodeIp}:${PORT}`]);
  t.match(
    proxy.log(),
    /region=us-east-1 regionSource="?metadata placement\/region/,
    'no AWS_REGION in the manifest: the node’s region, from the metadata service',
  );

  for (const [n, pod] of PODS.entries()) {
    const ns = nth(topology.pods, n).ns;
    const listing = await metadata(ns, '/latest/meta-data/iam/security-credentials/');
    if (pod.arn === undefined) {
      t.equal(listing.status, 404, `${pod.name}: no role, nothing`);
      continue;
    }
    const roleName = pod.arn.slice(pod.arn.lastIndexOf('/') + 1);
    t.equal(listing.body, roleName, `${pod.name}: its role`);
    const document = JSON.parse((await metadata(ns, `/latest/meta-data/iam/security-credentials/${roleName}`)).body) as { Code: string; AccessKeyId: string };
    t.equal(document.Code, 'Success');
    const client = await botocore(ns);
    t.equal(client.code, 0, client.stderr);
    const report = JSON.parse(client.stdout.trim().split('\n').pop() ?? '{}') as { accessKeyId: string; arn: string };
    t.equal(report.accessKeyId, document.AccessKeyId, `${pod.name}: botocore found the same credentials through 169.254.169.254`);
    t.match(report.arn, new RegExp(`:assumed-role/${roleName}/${pod.namespace}\\.${pod.name}$`), `${pod.name}: STS says they are ${pod.arn}'s`);
  }
  t.equal(await proxy.stop(), 0, 'SIGTERM: exit 0');
  t.match(proxy.log(), /shutting down/);
  t.equal((await dnatRules()).length, 1, 'the rule stays, as kube2iam leaves it: pods cannot reach the node’s credentials');
});

const metadata = (ns: NetworkNamespace, path: string): ReturnType<typeof curlIn> => curlIn(ns.prefix, `http://${METADATA_IP}${path}`);

/** boto3's default chain in the pod (169.254.169.254), then GetCallerIdentity at moto. */
function botocore(ns: NetworkNamespace): Promise<ExecResult> {
  const home = mkdtempSync(join(work, 'home-'));
  return execute('ip', ['netns', 'exec', ns.name, 'python3', join(REPO, 'test', 'e2e', 'clients', 'botocore_credentials.py'), `http://${topology.nodeIp}:80`], {
    env: {
      PATH: process.env.PATH,
      HOME: home,
      LANG: 'C.UTF-8',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      ...(process.env.PYENV_ROOT === undefined ? {} : { PYENV_ROOT: process.env.PYENV_ROOT }),
    },
    timeoutMs: 60_000,
  });
}
