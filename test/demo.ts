// `npm run demo`: the whole path on one machine, without a cluster. moto plays STS (and
// the node's metadata service), the proxy runs on the example pods file, and each
// example pod asks for credentials the way an AWS SDK does (token, role listing,
// document) from its own address: loopback addresses stand in for pod IPs. Each pod's
// credentials are then shown to STS, which names the role they belong to.
// Ends by itself and leaves nothing running.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { loadAllYaml } from '@kubernetes/client-node';
import { MotoServer } from './harness/moto.js';
import { freePort } from './harness/ports.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const PODS_FILE = fileURLToPath(new URL('../../manifests/examples/pods.yaml', import.meta.url));
const BASE_ROLE_ARN = 'arn:aws:iam::123456789012:role/';
const LISTING = '/latest/meta-data/iam/security-credentials/';

interface Answer {
  status: number;
  body: string;
}

function ask(port: number, from: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, localAddress: from, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 5 s')));
    req.on('error', reject);
    req.end();
  });
}

interface PodEntry {
  kind: string;
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  status?: { podIP?: string };
}

async function main(): Promise<void> {
  const items = (loadAllYaml(readFileSync(PODS_FILE, 'utf8'))[0] as { items: PodEntry[] }).items;
  const pods = items.filter((item) => item.kind === 'Pod' && item.status?.podIP !== undefined);

  const moto = await MotoServer.start();
  const port = await freePort();
  const args = [
    '--pods-file',
    PODS_FILE,
    '--base-role-arn',
    BASE_ROLE_ARN,
    '--namespace-restrictions',
    '--metadata-addr',
    `127.0.0.1:${moto.port}`,
    '--app-port',
    String(port),
    '--stats-interval',
    '0',
    '--log-level',
    'warn',
  ];
  // The proxy's own AWS identity (the node's, on EC2) and moto as STS.
  const env = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL_STS: moto.endpoint,
    AWS_ACCESS_KEY_ID: 'AKIDDEMONODE',
    AWS_SECRET_ACCESS_KEY: 'demo',
  };
  const proxy = spawn(process.execPath, [PROGRAM, ...args], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const stop = async (): Promise<void> => {
    if (proxy.exitCode === null) {
      proxy.kill('SIGTERM');
      await once(proxy, 'exit');
    }
    await moto.stop();
  };
  try {
    process.stdout.write(
      `kube2iam demo\n  STS (moto)  http://127.0.0.1:${moto.port}\n  proxy       kube2iam ${args.join(' ')}\n  pods        ${pods.length} in manifests/examples/pods.yaml\n\n`,
    );
    const deadline = Date.now() + 30_000;
    while ((await ask(port, '127.0.0.1', 'GET', '/healthz').catch(() => ({ status: 0, body: '' }))).status !== 200) {
      if (Date.now() > deadline || proxy.exitCode !== null) throw new Error('the proxy did not start');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    for (const pod of pods) {
      const ip = pod.status?.podIP as string;
      const name = `${pod.metadata.namespace}/${pod.metadata.name}`;
      const annotated = pod.metadata.annotations?.['iam.amazonaws.com/role'];
      process.stdout.write(`${name} (${ip}), role annotation: ${annotated ?? 'none'}\n`);
      // As an SDK does: an IMDSv2 token, the role listing, then the document.
      const token = await ask(port, ip, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
      const withToken: Record<string, string> = token.status === 200 ? { 'x-aws-ec2-metadata-token': token.body } : {};
      const listing = await ask(port, ip, 'GET', LISTING, withToken);
      if (listing.status !== 200) {
        process.stdout.write(`  refused (${listing.status}): ${listing.body.trim()}\n\n`);
        continue;
      }
      const document = await ask(port, ip, 'GET', `${LISTING}${listing.body}`, withToken);
      if (document.status !== 200) {
        process.stdout.write(`  role ${listing.body}, but no credentials (${document.status}): ${document.body.trim()}\n\n`);
        continue;
      }
      const credentials = JSON.parse(document.body) as { AccessKeyId: string; SecretAccessKey: string; Token: string; Expiration: string };
      const sts = new STSClient({
        region: 'us-east-1',
        endpoint: moto.endpoint,
        credentials: { accessKeyId: credentials.AccessKeyId, secretAccessKey: credentials.SecretAccessKey, sessionToken: credentials.Token },
      });
      const identity = await sts.send(new GetCallerIdentityCommand({}));
      sts.destroy();
      process.stdout.write(
        `  role ${listing.body}: ${credentials.AccessKeyId}, expires ${credentials.Expiration}\n  STS says these credentials are ${identity.Arn ?? '?'}\n\n`,
      );
    }

    const first = pods[0]?.status?.podIP as string;
    const other = await ask(port, first, 'GET', `${LISTING}web-frontend`);
    process.stdout.write(`${first} asking for another pod's role: ${other.status} ${other.body.trim()}\n`);
    const node = await ask(port, first, 'GET', '/latest/meta-data/iam/info');
    process.stdout.write(`${first} asking for the node's instance profile: ${node.status} ${node.body.trim()}\n`);
    process.stdout.write('\ndone: the proxy and moto are stopped.\n');
  } finally {
    await stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
