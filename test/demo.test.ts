// The README's first command, `npm run demo`, as a smoke test: each example pod gets its
// own role (STS confirms it) or the reason it was refused, and nothing is left running.

import t from 'tap';
import { fileURLToPath } from 'node:url';
import { execute } from './harness/processes.js';

const DEMO = fileURLToPath(new URL('../dist/test/demo.js', import.meta.url));

t.test('the demo shows each pod its own role, or why it has none, and stops', async (t) => {
  // `env -u NODE_OPTIONS`: as `npm run demo` runs it, without tap's loaders.
  const { code, stdout, stderr } = await execute('env', ['-u', 'NODE_OPTIONS', process.execPath, DEMO], { timeoutMs: 90_000 });
  t.equal(code, 0, stderr);
  t.match(
    stdout,
    /payments\/api-7d4b9c8f6-x2x9z \(127\.0\.0\.2\)[^\n]*\n {2}role payments-api: ASIA\w+, expires [\dT:-]+Z\n {2}STS says these credentials are arn:aws:sts::123456789012:assumed-role\/payments-api\/payments\.api\n/,
  );
  t.match(
    stdout,
    /web\/frontend \(127\.0\.0\.4\)[^\n]*\n {2}role web-frontend: ASIA\w+[^\n]*\n {2}STS says these credentials are arn:aws:sts::123456789012:assumed-role\/web-frontend\/web\.frontend\n/,
  );
  t.match(
    stdout,
    /payments\/report-job-abcde \(127\.0\.0\.3\)[^\n]*\n {2}refused \(404\): role arn:aws:iam::123456789012:role\/admin is not allowed in namespace payments\n/,
  );
  t.match(stdout, /web\/no-role \(127\.0\.0\.5\)[^\n]*\n {2}refused \(404\): no role annotation and no default role\n/);
  t.match(stdout, /asking for another pod's role: 403 Invalid role web-frontend/);
  t.match(stdout, /asking for the node's instance profile: 404/);
  t.match(stdout, /done: the proxy and moto are stopped\.\n$/);
});
