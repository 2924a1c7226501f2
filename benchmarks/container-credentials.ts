// Scenario: the container-credentials endpoint beside the metadata path, on one proxy
// against a real kube-apiserver (which issues and reviews the tokens) and moto. A pod's
// credentials asked for as fast as one pod can, by token (its review kept) and by source
// IP, with the bare floor, kept alive and with a new connection per request; then a new
// token's first request (the TokenReview included) against the same token asked again.

import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { IMAGE_NODE_OPTIONS } from '../test/harness/environment.js';
import { KubernetesControlPlane } from '../test/harness/kubernetes.js';
import { MotoServer } from '../test/harness/moto.js';
import { freePort } from '../test/harness/ports.js';
import { alternate, BenchServer, quantile, summarize, type Contender, type MeasuredLoad, type Section } from './harness.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const FIXED = fileURLToPath(new URL('./servers/fixed-response.js', import.meta.url));
const ROLE = 'bench-role';
const IMDS_PATH = `/latest/meta-data/iam/security-credentials/${ROLE}`;
const AUDIENCE = 'kube2iam';

export interface ContainerCredentialOptions {
  rounds: number;
  seconds: number;
  connections: number;
  /** New tokens whose first request is timed. */
  tokens: number;
}

/** One GET /v1/credentials on a new connection: its status and ms. */
function askOnce(port: number, token: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/credentials', headers: { authorization: token }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
    });
    req.setTimeout(10_000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    req.end();
  });
}

export async function containerCredentialScenarios(options: ContainerCredentialOptions): Promise<Section[]> {
  const plane = await KubernetesControlPlane.start();
  const moto = await MotoServer.start();
  const servers: BenchServer[] = [];
  let keepAlive: Map<string, MeasuredLoad[]>;
  let perRequest: Map<string, MeasuredLoad[]>;
  const first: number[] = [];
  const again: number[] = [];
  try {
    await plane.kubectl(['create', 'namespace', 'bench']);
    await plane.serviceAccount('bench', 'app');
    // The pod at 127.0.0.1, where the load comes from: by IP and by token it is the same pod.
    await plane.kubectlRunningPod('bench', 'app', { 'iam.amazonaws.com/role': ROLE }, '127.0.0.1', { serviceAccount: 'app' });
    const core = plane.core();
    const uid = (await core.readNamespacedPod({ name: 'app', namespace: 'bench' })).metadata?.uid;
    // Each token its own: tokens issued in the same second with the same lifetime are the same bytes.
    let issued = 0;
    const issue = async (): Promise<string> => {
      const spec = { audiences: [AUDIENCE], expirationSeconds: 3600 + issued++, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'app', uid } };
      const request = await core.createNamespacedServiceAccountToken({ name: 'app', namespace: 'bench', body: { spec } });
      return request.status?.token ?? '';
    };
    const token = await issue();
    const endpointPort = await freePort();
    const env = { ...process.env, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' };
    const proxy = await BenchServer.run(
      'this proxy',
      process.execPath,
      [
        ...IMAGE_NODE_OPTIONS,
        PROGRAM,
        ...plane.programConnection(),
        '--base-role-arn',
        'arn:aws:iam::123456789012:role/',
        '--metadata-addr',
        '127.0.0.1:9',
        '--stats-interval',
        '0',
        '--node',
        'node-1',
        '--container-credentials',
        '--container-credentials-link=',
        '--container-credentials-addresses',
        '127.0.0.1',
        '--container-credentials-port',
        String(endpointPort),
        '--app-port',
      ],
      { env, ready: /msg="serving \/v1\/credentials/ },
    );
    servers.push(proxy);
    const deadline = Date.now() + 30_000;
    while ((await askOnce(endpointPort, token)).status !== 200) {
      if (Date.now() > deadline) throw new Error(`the endpoint serves no credentials:\n${proxy.log().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const floor = await BenchServer.start('floor: bare net.Server writing a fixed buffer', FIXED, ['floor']);
    servers.push(floor);
    const contenders: Contender[] = [
      { name: '/v1/credentials, by token (review kept)', server: proxy, url: `http://127.0.0.1:${endpointPort}/v1/credentials` },
      { name: 'metadata path, by source IP', server: proxy, url: `http://127.0.0.1:${proxy.port}${IMDS_PATH}` },
      { name: floor.name, server: floor, url: `http://127.0.0.1:${floor.port}/` },
    ];
    // Every contender gets the same request size: the token travels with each.
    const headers = [`Authorization: ${token}`];
    keepAlive = alternate('container keep-alive', contenders, { ...options, headers });
    perRequest = alternate('container new-connection', contenders, {
      ...options,
      rounds: Math.max(1, Math.ceil(options.rounds / 2)),
      headers: [...headers, 'Connection: close'],
    });
    for (let n = 0; n < options.tokens; n++) {
      const fresh = await issue();
      const a = await askOnce(endpointPort, fresh);
      const b = await askOnce(endpointPort, fresh);
      if (a.status !== 200 || b.status !== 200) throw new Error(`a new token was answered ${a.status}, then ${b.status}`);
      first.push(a.ms);
      again.push(b.ms);
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await moto.stop();
    await plane.stop();
  }

  const head = '| Path | req/s | p50 ms | p99 ms | CPU ms per 1,000 answers | req/s vs the metadata path | errors |\n|---|---:|---:|---:|---:|---:|---:|';
  const table = (runs: Map<string, MeasuredLoad[]>) => {
    const summary = [...runs].map(([name, results]) => ({ name, ...summarize(results) }));
    const imds = summary.find((s) => s.name.startsWith('metadata path'))?.requestsPerSecond ?? 1;
    const rows = summary
      .map(
        (s) =>
          `| ${s.name} | ${s.requestsPerSecond.toFixed(0)} | ${s.p50Ms.toFixed(3)} | ${s.p99Ms.toFixed(3)} | ${s.cpuUsPerRequest.toFixed(1)} | ${(s.requestsPerSecond / imds).toFixed(2)}x | ${s.errors} |`,
      )
      .join('\n');
    return { rows, summary };
  };
  const hot = table(keepAlive);
  const fresh = table(perRequest);
  const sortedFirst = [...first].sort((a, b) => a - b);
  const sortedAgain = [...again].sort((a, b) => a - b);
  const ms = (sorted: number[], q: number): string => quantile(sorted, q).toFixed(2);
  const firstRows = [
    '| Request | p50 ms | p99 ms | max ms |',
    '|---|---:|---:|---:|',
    `| a new token's first (TokenReview included) | ${ms(sortedFirst, 0.5)} | ${ms(sortedFirst, 0.99)} | ${ms(sortedFirst, 1)} |`,
    `| the same token again (review kept) | ${ms(sortedAgain, 0.5)} | ${ms(sortedAgain, 0.99)} | ${ms(sortedAgain, 1)} |`,
  ].join('\n');
  const setup = `One pod at 127.0.0.1 asks for its credentials as fast as it can: by its projected token at \`GET /v1/credentials\`, and by its address at \`GET ${IMDS_PATH}\`, on the same proxy (the image's Node options, one core), with the token in every request (the floor's too); wrk -t1, ${options.connections} connections.`;
  return [
    {
      id: 'container-credentials',
      title: 'Container credentials (token) beside the metadata path (IP)',
      markdown: [
        `${setup} ${options.rounds} alternating rounds of ${options.seconds} s (median).`,
        '',
        '**Keep-alive**',
        '',
        head,
        hot.rows,
        '',
        `**A new connection per request** (\`Connection: close\`, ${Math.max(1, Math.ceil(options.rounds / 2))} rounds)`,
        '',
        head,
        fresh.rows,
        '',
        `**A new pod's first request**: ${options.tokens} tokens issued by TokenRequest, each asked for twice on new connections, one at a time. The first costs a TokenReview on the API server (here on the same two cores); the review is then kept until the token expires, so a pod pays it once an hour (the kubelet's refresh).`,
        '',
        firstRows,
      ].join('\n'),
      raw: { options, keepAlive: hot.summary, newConnection: fresh.summary, firstMs: first, againMs: again },
    },
  ];
}
