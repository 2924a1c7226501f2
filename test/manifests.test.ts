// Every manifest is accepted by a real API server (server-side dry run), and the
// DaemonSet's arguments are accepted by the program's own flag parser, so a manifest can
// never carry a flag the program rejects.

import t from 'tap';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from '../lib/config.js';
import { KubernetesControlPlane } from './harness/kubernetes.js';
import { containerArgs, containerEnv, daemonSetContainer } from './harness/manifests.js';

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
  for (const dir of ['', 'examples/']) {
    const out = await plane.kubectl(['apply', '--dry-run=server', '-k', `${DIR}${dir}`]);
    t.match(out, /\(server dry run\)/, `kustomization ${dir || '.'}`);
  }
});
