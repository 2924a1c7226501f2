// `npm run bench` in miniature (one round of one second, 300 pods, two seconds of churn),
// so the harness cannot rot: every scenario must run to its table. The figures of so
// short a run mean nothing and are not checked; the full run is `npm run bench`.

import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execute } from './harness/processes.js';

const RUNNER = fileURLToPath(new URL('../dist/benchmarks/run.js', import.meta.url));

t.test('every benchmark scenario runs to its table', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'k2i-bench-smoke-'));
  // `env -u NODE_OPTIONS`: the servers it starts must not carry tap's loaders.
  const result = await execute('env', ['-u', 'NODE_OPTIONS', process.execPath, RUNNER], {
    env: {
      ...process.env,
      BENCH_SECONDS: '1',
      BENCH_ROUNDS: '1',
      BENCH_PODS: '300',
      BENCH_CHURN_SECONDS: '2',
      BENCH_HEADS: '300',
      BENCH_FLEET_NODES: '3',
      BENCH_FLEET_REFRESH: '3',
      BENCH_FLEET_LIMIT: '5000',
      BENCH_FLEET_BEFORE: '0',
      BENCH_FLEET_COLD_REPEATS: '1',
      BENCH_TOKENS: '3',
      BENCH_OUT: out,
    },
    timeoutMs: 600_000,
  });
  t.equal(result.code, 0, result.stderr.slice(-3000));
  const markdown = readFileSync(join(out, 'RESULTS.md'), 'utf8');
  for (const title of [
    'HTTP engine: fixed response',
    'Credential hot path, keep-alive',
    'Credential hot path, a new connection per request',
    'Container credentials (token) beside the metadata path (IP)',
    'Credentials: STS calls with shared roles',
    'Credentials: first request of a new pod',
    'Credentials: a workload’s pods one after another',
    'Credentials through the iptables DNAT rule',
    'Cold-start storm through the DNAT rule',
    'Start-up and memory',
    'Pod index:',
    'Policy cost: the worst a tenant can build',
    'Half-sent heads at the connection cap',
    'Fleet: STS load of a DaemonSet rollout',
  ]) {
    t.ok(markdown.includes(`## ${title}`), title);
  }
  t.match(markdown, /\| kube2iam-equivalent Go peer \| \d+ \|/, 'the Go peer was built and measured');
  t.match(markdown, /\| this design, window \d+ s, handover \| \d+ \|/, 'the fleet with the handover between proxies');
  t.match(markdown, /\| waited past 1 s \| longest wait \| every pod served after \|/, "the fleet's tables say the longest a pod waited");
  t.match(markdown, /\*\*Every node starting at once, 2 runs each\*\*[\s\S]*\| on demand \| [\d.]+ \(/, 'and the cold start repeated');
  const raw = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { sections: Array<{ id: string }> };
  t.same(
    raw.sections.map((s) => s.id),
    [
      'http-engine',
      'hot-path',
      'new-connection',
      'container-credentials',
      'sts-calls',
      'first-request',
      'generations',
      'dnat',
      'storm',
      'footprint',
      'pod-index',
      'policy-cost',
      'half-sent-heads',
      'churn',
      'fleet',
    ],
  );
  for (const chart of ['hot-path', 'new-connection', 'memory']) {
    t.match(
      readFileSync(join(out, 'charts', `${chart}.svg`), 'utf8'),
      /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[\s\S]*<\/svg>\n$/,
      `chart ${chart} drawn from the run's data`,
    );
  }
});
