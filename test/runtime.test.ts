// The runtime every test runs on: Node 24 LTS, brought by the project itself (the `node`
// devDependency, a real Node binary from the npm registry), not the machine's Node 20,
// for tap and for every process the tests start by process.execPath or by the name `node`.

import t from 'tap';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './harness/environment.js';
import { execute } from './harness/processes.js';

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };

t.test('this test runs on Node 24 from node_modules', async (t) => {
  t.match(process.version, /^v24\./);
  t.ok(realpathSync(process.execPath).startsWith(join(REPO, 'node_modules')), `${process.execPath} is the project's own Node`);
  t.equal(process.version, `v${pkg.devDependencies.node}`, 'the pinned version');
});

t.test('a child started by the name `node` runs the same Node', async (t) => {
  const child = await execute('node', ['-p', 'process.version']);
  t.equal(child.stdout.trim(), process.version);
});

t.test('package.json declares Node 24 LTS as the supported engine', async (t) => {
  t.equal(pkg.engines.node, '>=24.11 <25');
});
