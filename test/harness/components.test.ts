// The real components the suite stands on: each one starts, serves, and is cleaned up.

import t from 'tap';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { KubernetesControlPlane } from './kubernetes.js';
import { MotoServer } from './moto.js';
import { createNodeTopology, METADATA_IP, metadataDnat } from './netns.js';
import { freePort } from './ports.js';
import { run, TestProcess } from './processes.js';

t.test('the suite runs where 169.254.169.254 has no route', async (t) => {
  // `ip route get` asks the kernel for a route without sending anything.
  const error = await run('ip', ['route', 'get', METADATA_IP]).then(
    (route) => new Error(`a route exists: ${route}`),
    (e: Error) => e,
  );
  t.match(error.message, /unreachable/i);
});

t.test('etcd and kube-apiserver start, serve kubectl, and stop', async (t) => {
  const plane = await KubernetesControlPlane.start();
  t.teardown(() => plane.stop());
  await plane.kubectl(['create', 'namespace', 'demo']);
  await plane.kubectlRunningPod('demo', 'app1', { 'iam.amazonaws.com/role': 'app-role' }, '10.200.0.11');
  const pod = JSON.parse(await plane.kubectl(['get', 'pod', 'app1', '-n', 'demo', '-o', 'json'])) as {
    status: { podIP: string; phase: string };
    metadata: { annotations: Record<string, string> };
  };
  t.equal(pod.status.podIP, '10.200.0.11');
  t.equal(pod.status.phase, 'Running');
  t.equal(pod.metadata.annotations['iam.amazonaws.com/role'], 'app-role');
});

t.test('moto_server answers AssumeRole through the AWS SDK', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const sts = new STSClient({
    region: 'us-east-1',
    endpoint: moto.endpoint,
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' },
  });
  t.teardown(() => sts.destroy());
  const out = await sts.send(new AssumeRoleCommand({ RoleArn: 'arn:aws:iam::123456789012:role/app', RoleSessionName: 'harness', DurationSeconds: 900 }));
  t.ok(out.Credentials?.AccessKeyId, 'access key');
  t.ok(out.Credentials?.SessionToken, 'session token');
  t.match(out.AssumedRoleUser?.Arn ?? '', /assumed-role\/app\/harness$/);
});

t.test('a pod namespace reaches a node server through the DNAT rule, seen by its own IP', async (t) => {
  const topology = await createNodeTopology(2);
  t.teardown(() => topology.delete());
  const dir = mkdtempSync(join(tmpdir(), 'k2i-dnat-'));
  const script = join(dir, 'echo.mjs');
  writeFileSync(
    script,
    `import { createServer } from 'node:http';
     createServer((req, res) => res.end(req.socket.remoteAddress)).listen(8181, '${topology.nodeIp}');`,
  );
  const nodeServer = await TestProcess.start('ip', ['netns', 'exec', topology.node.name, process.execPath, script], {
    name: 'echo',
    ready: async () => (await topology.node.exec('curl', ['-sf', `http://${topology.nodeIp}:8181/`]).catch(() => '')) !== '',
  });
  t.teardown(() => nodeServer.stop());
  await topology.node.exec('iptables', metadataDnat(topology, 8181));
  for (const pod of topology.pods) {
    const seen = await pod.ns.exec('curl', ['-sf', '--max-time', '5', `http://${METADATA_IP}/latest/meta-data/`]);
    t.equal(seen, pod.ip, `pod ${pod.ip} is seen by its own address`);
  }
});

t.test('a stopped process frees its port', async (t) => {
  const port = await freePort();
  const proc = await TestProcess.start(process.execPath, ['-e', `require('net').createServer().listen(${port}, '127.0.0.1')`], {
    name: 'listener',
    ready: async () =>
      await run('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).then(
        () => true,
        () => false,
      ),
  });
  await proc.stop();
  const refused = await run('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).then(
    () => false,
    () => true,
  );
  t.ok(refused, 'nothing listens after stop');
});
