// Scenario: the credential hot path, one pod asking for its credentials as fast as it
// can, on loopback. The real program (parser, pod lookup, credential store, prepared
// answer; the container image's Node options) against a kube2iam-equivalent Go peer,
// the same logic on node:http, and a bare floor; then the same with a new connection per
// request (SDKs that do not keep connections alive). Runs alternate between servers.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMAGE_NODE_OPTIONS } from '../test/harness/environment.js';
import { MotoServer } from '../test/harness/moto.js';
import { get } from '../test/harness/pod-client.js';
import { alternate, BenchServer, summarize, type Contender, type MeasuredLoad, type Section } from './harness.js';
import { goPeer } from './peers.js';

const PROGRAM = fileURLToPath(new URL('../bin/kube2iam.js', import.meta.url));
const NODE_HTTP = fileURLToPath(new URL('./servers/node-http-credentials.js', import.meta.url));
const FIXED = fileURLToPath(new URL('./servers/fixed-response.js', import.meta.url));
const ROLE = 'bench-role';
const PATH = `/latest/meta-data/iam/security-credentials/${ROLE}`;

export interface HotPathOptions {
  rounds: number;
  seconds: number;
  connections: number;
}

export async function credentialHotPathScenarios(options: HotPathOptions): Promise<Section[]> {
  const peer = goPeer();
  const moto = await MotoServer.start();
  const servers: BenchServer[] = [];
  let keepAlive: Map<string, MeasuredLoad[]>;
  let perRequest: Map<string, MeasuredLoad[]>;
  let documentBytes = 0;
  try {
    const dir = mkdtempSync(join(tmpdir(), 'k2i-bench-hot-'));
    writeFileSync(
      join(dir, 'pods.json'),
      JSON.stringify({
        kind: 'List',
        items: [
          {
            kind: 'Pod',
            metadata: { name: 'bench', namespace: 'bench', annotations: { 'iam.amazonaws.com/role': ROLE } },
            status: { phase: 'Running', podIP: '127.0.0.1' },
          },
        ],
      }),
    );
    const env = { ...process.env, AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_STS: moto.endpoint, AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' };
    // The same program twice: as measured, and writing the request log (kube2iam's own DaemonSet passes --verbose).
    const program = (...extra: string[]): string[] => [
      ...IMAGE_NODE_OPTIONS,
      PROGRAM,
      ...extra,
      '--pods-file',
      join(dir, 'pods.json'),
      '--base-role-arn',
      'arn:aws:iam::123456789012:role/',
      '--metadata-addr',
      '127.0.0.1:9',
      '--stats-interval',
      '0',
      '--app-port',
    ];
    const proxy = await BenchServer.run('this proxy', process.execPath, program(), { env, ready: /msg="listening on port/ });
    servers.push(proxy);
    const verbose = await BenchServer.run('this proxy, request log on (--verbose)', process.execPath, program('--verbose'), {
      env,
      ready: /msg="listening on port/,
    });
    servers.push(verbose);
    const deadline = Date.now() + 30_000;
    let answer = await get(proxy.port, '127.0.0.1', PATH);
    while (answer.status !== 200) {
      if (Date.now() > deadline) throw new Error(`the proxy serves no credentials (${answer.status} ${answer.body})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      answer = await get(proxy.port, '127.0.0.1', PATH);
    }
    documentBytes = Buffer.byteLength(answer.body);
    while ((await get(verbose.port, '127.0.0.1', PATH)).status !== 200) {
      if (Date.now() > deadline) throw new Error('the proxy with --verbose serves no credentials');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The others serve a document with a token of the same length.
    const tokenLength = String((JSON.parse(answer.body) as { Token: string }).Token.length);
    if ('binary' in peer)
      servers.push(
        await BenchServer.run(
          'kube2iam-equivalent Go peer',
          peer.binary,
          ['-ip', '127.0.0.1', '-role', `arn:aws:iam::123456789012:role/${ROLE}`, '-token-length', tokenLength, '-port'],
          {
            discardOutput: true,
          },
        ),
      );
    servers.push(await BenchServer.start('node:http, same logic', NODE_HTTP, ['127.0.0.1', ROLE, tokenLength]));
    servers.push(await BenchServer.start('floor: bare net.Server writing a fixed buffer', FIXED, ['floor']));
    const contenders: Contender[] = servers.map((server) => ({ name: server.name, server, url: `http://127.0.0.1:${server.port}${PATH}` }));
    keepAlive = alternate('hot-path', contenders, options);
    perRequest = alternate('new-connection', contenders, { ...options, rounds: Math.max(1, Math.ceil(options.rounds / 2)), headers: ['Connection: close'] });
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    await moto.stop();
  }

  const skipped = 'skipped' in peer ? `\n\nThe Go peer's rows are missing: ${peer.skipped}.` : '';
  const table = (runs: Map<string, MeasuredLoad[]>): { rows: string; summary: Array<ReturnType<typeof summarize> & { name: string }> } => {
    const summary = [...runs].map(([name, results]) => ({ name, ...summarize(results) }));
    const by = (name: string) => summary.find((s) => s.name === name);
    const goRps = by('kube2iam-equivalent Go peer')?.requestsPerSecond;
    const floorRps = by('floor: bare net.Server writing a fixed buffer')?.requestsPerSecond ?? 1;
    const rows = summary
      .map(
        (s) =>
          `| ${s.name} | ${s.requestsPerSecond.toFixed(0)} | ${s.p50Ms.toFixed(3)} | ${s.p99Ms.toFixed(3)} | ${s.cpuUsPerRequest.toFixed(1)} | ${goRps === undefined ? '–' : `${(s.requestsPerSecond / goRps).toFixed(2)}x`} | ${((s.requestsPerSecond / floorRps) * 100).toFixed(0)}% | ${s.errors} |`,
      )
      .join('\n');
    return { rows, summary };
  };
  const head =
    '| Server | req/s | p50 ms | p99 ms | CPU ms per 1,000 answers | req/s vs Go peer | req/s vs floor | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|';
  const hot = table(keepAlive);
  const fresh = table(perRequest);
  const verdict = (met: boolean): string => (met ? 'met' : 'NOT met');
  const find = (summary: typeof hot.summary, prefix: string) => summary.find((s) => s.name.startsWith(prefix));
  const ours = hot.summary.find((s) => s.name === 'this proxy');
  const go = find(hot.summary, 'kube2iam-equivalent Go peer');
  const floor = find(hot.summary, 'floor');
  const oursFresh = fresh.summary.find((s) => s.name === 'this proxy');
  const logged = (summary: typeof hot.summary, base: typeof ours): string => {
    const on = find(summary, 'this proxy, request log on');
    if (on === undefined || base === undefined) return '';
    return ` The request log (--verbose, one text line per request to a file) costs ${((1 - share(on, base)) * 100).toFixed(0)}% of the rate (${(on.cpuUsPerRequest - base.cpuUsPerRequest).toFixed(1)} µs of CPU per request); off, the engine's answered hook is the stats count alone.`;
  };
  const floorFresh = find(fresh.summary, 'floor');
  const share = (a: { requestsPerSecond: number }, b: { requestsPerSecond: number }): number => a.requestsPerSecond / b.requestsPerSecond;
  const targets =
    ours === undefined || floor === undefined
      ? ''
      : [
          '\nTargets:',
          `at least 2x the Go peer (${go === undefined ? 'no peer' : `measured ${share(ours, go).toFixed(2)}x: ${verdict(share(ours, go) >= 2)}`});`,
          `at least 90% of the floor (measured ${(share(ours, floor) * 100).toFixed(0)}%: ${verdict(share(ours, floor) >= 0.9)});`,
          `p99 at most 1.5x the floor's (measured ${(ours.p99Ms / floor.p99Ms).toFixed(2)}x: ${verdict(ours.p99Ms <= 1.5 * floor.p99Ms)}).`,
          ...(share(ours, floor) >= 0.9
            ? []
            : [
                `\n\nWith one core for the server, requests per second follow CPU per answer: ${ours.cpuUsPerRequest.toFixed(1)} µs here against the floor's ${floor.cpuUsPerRequest.toFixed(1)} µs, of which the system calls to read and write are shared by both.`,
                `The ${(ours.cpuUsPerRequest - floor.cpuUsPerRequest).toFixed(1)} µs difference is the work the floor skips: parsing and validating the request, naming the caller by its address, checking its token and the requested role, and counting the answer for the stats line.`,
                `90% of the floor needs that at or under ${(floor.cpuUsPerRequest / 0.9 - floor.cpuUsPerRequest).toFixed(1)} µs.`,
              ]),
        ].join(' ');
  const freshTargets =
    oursFresh === undefined || floorFresh === undefined
      ? ''
      : [
          '\nTargets:',
          `at least 90% of the floor (measured ${(share(oursFresh, floorFresh) * 100).toFixed(0)}%: ${verdict(share(oursFresh, floorFresh) >= 0.9)});`,
          `p99 at most 2x the floor's (measured ${(oursFresh.p99Ms / floorFresh.p99Ms).toFixed(2)}x: ${verdict(oursFresh.p99Ms <= 2 * floorFresh.p99Ms)});`,
          `CPU per connection at most 1.15x the floor's (measured ${(oursFresh.cpuUsPerRequest / floorFresh.cpuUsPerRequest).toFixed(2)}x: ${verdict(oursFresh.cpuUsPerRequest <= 1.15 * floorFresh.cpuUsPerRequest)}).`,
          `\n\nThe floor runs with Node's default heap; the proxy with the image's \`${IMAGE_NODE_OPTIONS.join(' ')}\`, under which V8 grows its old generation by its smallest factor, so connection churn (about 1 KB of every connection's objects outlives two scavenges) runs a full collection every few hundred milliseconds, and their incremental steps make the p99.`,
          `V8's --heap-growing-percent would space them out, but Node does not accept it in NODE_OPTIONS. The rest of the CPU difference is the floor's missing work above, plus the caller's address (a getpeername call the floor never makes).`,
        ].join(' ');
  const setup = `\`GET ${PATH}\` (a ${documentBytes}-byte document) from 127.0.0.1, the pod's IP; wrk -t1, ${options.connections} connections, servers pinned to one core. The proxy runs with the image's Node options; the floor answers a fixed 1.2 KB buffer.`;
  return [
    {
      id: 'hot-path',
      title: 'Credential hot path, keep-alive',
      markdown: [
        `${setup} ${options.rounds} alternating rounds of ${options.seconds} s (median).`,
        '',
        head,
        hot.rows,
        targets + logged(hot.summary, ours) + skipped,
      ].join('\n'),
      raw: { options, documentBytes, runs: Object.fromEntries(keepAlive), summary: hot.summary, peer },
    },
    {
      id: 'new-connection',
      title: 'Credential hot path, a new connection per request',
      markdown: [
        `As above, but every request on a new connection (\`Connection: close\`), as SDKs that do not keep connections alive cause.`,
        '',
        head,
        fresh.rows,
        freshTargets + logged(fresh.summary, oursFresh) + skipped,
      ].join('\n'),
      raw: { options, runs: Object.fromEntries(perRequest), summary: fresh.summary },
    },
  ];
}
