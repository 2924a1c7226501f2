// Every manifest is accepted by a real API server (server-side dry run), and the
// DaemonSet's arguments are accepted by the program's own flag parser, so a manifest can
// never carry a flag the program rejects.

import t from 'tap';
import { loadAllYaml } from '@kubernetes/client-node';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTAINER_CREDENTIALS_ADDRESSES } from '../lib/app.js';
import { parseArgs } from '../lib/config.js';
import { run } from './harness/processes.js';
import { KubernetesControlPlane } from './harness/kubernetes.js';
import { containerArgs, containerEnv, daemonSetContainer, podSpec } from './harness/manifests.js';

const DIR = fileURLToPath(new URL('../manifests/', import.meta.url));
/** Not a manifest: the --pods-file the demo and the CLI tests run the proxy on. */
const PODS_FILE = 'examples/pods.yaml';

const manifests = ['', 'examples/'].flatMap((sub) =>
  readdirSync(`${DIR}${sub}`)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && `${sub}${f}` !== PODS_FILE)
    .map((f) => `${sub}${f}`),
);

const container = daemonSetContainer(`${DIR}daemonset.yaml`);

t.test('the DaemonSet’s arguments parse with the program’s own flags', async (t) => {
  t.ok(container.args?.length, 'the DaemonSet has arguments');
  const env = containerEnv(container, { 'status.hostIP': '10.0.1.23', 'spec.nodeName': 'ip-10-0-1-23.ec2.internal' });
  const parsed = await parseArgs(containerArgs(container, env), {});
  const config = parsed.config;
  t.ok(config, 'accepted');
  t.same(config?.iptables, { hostInterface: 'eni+', hostIp: '10.0.1.23', removeOnExit: false }, 'the rule goes to the node’s own IP');
  t.equal(config?.pods.node, 'ip-10-0-1-23.ec2.internal', 'only this node’s pods are watched');
  t.equal(config?.appPort, 8181);
  t.notOk(env.AWS_REGION, 'STS gets the node’s region from the metadata service, as the SDKs do');
});

t.test('the DaemonSet hands credentials over between its pods on a node, through a root-only hostPath on tmpfs', async (t) => {
  const env = containerEnv(container, { 'status.hostIP': '10.0.1.23', 'spec.nodeName': 'n' });
  const config = (await parseArgs(containerArgs(container, env), {})).config;
  const file = config?.credentials.handoverFile ?? '';
  t.equal(file, '/run/kube2iam/handover.json');
  const pod = podSpec(`${DIR}daemonset.yaml`);
  const mount = container.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
  t.ok(mount, 'the file is on a mounted volume (the root file system is read-only)');
  t.same(
    pod.volumes.find((v) => v.name === mount?.name),
    { name: 'handover', hostPath: { path: '/run/kube2iam', type: 'DirectoryOrCreate' } },
    "the node's /run, kept across the proxy's pods",
  );
});

t.test('the DaemonSet probes liveness on kube2iam’s /healthz and readiness on /readyz', async (t) => {
  t.match(container.livenessProbe, { httpGet: { path: '/healthz', port: 8181 } });
  t.match(container.readinessProbe, { httpGet: { path: '/readyz', port: 8181 } });
});

t.test('our DaemonSet keeps least privilege: root only for NET_ADMIN and NET_RAW, nothing else', async (t) => {
  t.same(container.securityContext, {
    runAsUser: 0,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
  });
});

t.test('every manifest and kustomization passes kubectl apply --dry-run=server', async (t) => {
  t.ok(manifests.includes('daemonset.yaml') && manifests.includes('rbac.yaml'), 'the DaemonSet and its RBAC are there');
  t.ok(
    ['examples/pod.yaml', 'examples/deployment.yaml', 'examples/namespace.yaml', 'examples/kube2iam-daemonset.yaml'].every((f) => manifests.includes(f)),
    'and the examples',
  );
  const plane = await KubernetesControlPlane.start();
  t.teardown(() => plane.stop());
  // The examples' namespace must exist for a dry run of what goes in it.
  await plane.kubectl(['apply', '-f', `${DIR}examples/namespace.yaml`]);
  for (const file of manifests) {
    const out = await plane.kubectl(['apply', '--dry-run=server', '-f', `${DIR}${file}`]);
    t.match(out, /(created|configured|unchanged) \(server dry run\)/, file);
  }
  for (const dir of ['', 'examples/', 'examples/container-credentials/', tokenContractOverlay()]) {
    const out = await plane.kubectl(['apply', '--dry-run=server', '-k', dir.startsWith('/') ? dir : `${DIR}${dir}`]);
    t.match(out, /\(server dry run\)/, `kustomization ${dir || '.'}`);
  }
});

/**
 * An operator's overlay of the DaemonSet with the token contract's component, as the
 * README shows it, in a folder of its own (kustomize refuses a base that contains its
 * overlay, and absolute paths).
 */
function tokenContractOverlay(): string {
  const dir = mkdtempSync(join(tmpdir(), 'k2i-overlay-'));
  const manifests = relative(dir, DIR);
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    JSON.stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [manifests],
      components: [join(manifests, 'components/container-credentials')],
    }),
  );
  return dir;
}

t.test('the token contract: the proxy’s overlay and a workload that opts in agree on address, audience and token file', async (t) => {
  const proxy = await run('kubectl', ['kustomize', tokenContractOverlay()]);
  const container = daemonSetContainer('the overlay', proxy);
  const config = (await parseArgs(containerArgs(container, containerEnv(container, { 'status.hostIP': '10.0.1.23', 'spec.nodeName': 'n' })), {})).config;
  t.same(
    config?.containerCredentials,
    { audience: 'kube2iam', port: 80, link: 'kube2iam0', addresses: null, removeOnExit: false },
    'the endpoint on, with its defaults',
  );
  t.ok(container.securityContext?.capabilities?.add?.includes('NET_BIND_SERVICE'), 'root may bind port 80 only with NET_BIND_SERVICE');
  t.match(proxy, /resources:\s*- tokenreviews\s*verbs:\s*- create/, 'the proxy may ask TokenReview');
  const workload = loadAllYaml(await run('kubectl', ['kustomize', `${DIR}examples/container-credentials/`])) as Array<{
    kind: string;
    spec: {
      template: {
        spec: {
          containers: Array<{ name: string; env: Array<{ name: string; value: string }>; volumeMounts: Array<{ name: string; mountPath: string }> }>;
          volumes: Array<{ name: string; projected: { sources: Array<{ serviceAccountToken: { audience: string; path: string } }> } }>;
        };
      };
    };
  }>;
  const pod = workload.find((doc) => doc.kind === 'Deployment')?.spec.template.spec;
  const app = pod?.containers.find((c) => c.name === 'app');
  const env = Object.fromEntries((app?.env ?? []).map((e) => [e.name, e.value]));
  t.equal(env.AWS_CONTAINER_CREDENTIALS_FULL_URI, `http://${CONTAINER_CREDENTIALS_ADDRESSES.v4}/v1/credentials`, 'the endpoint’s address and path');
  const mount = app?.volumeMounts.find((m) => m.name === 'kube2iam-token');
  const token = pod?.volumes.find((v) => v.name === 'kube2iam-token')?.projected.sources[0]?.serviceAccountToken;
  t.equal(token?.audience, config?.containerCredentials?.audience, 'the token is for the audience the proxy checks');
  t.equal(env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, `${mount?.mountPath}/${token?.path}`, 'the variable names the projected token');
});
