// What a proxy in a cluster loads (issue 15): only the lean API client, never
// @kubernetes/client-node's generated API (about 30 MB of heap) or the pods file's YAML
// parser, both imported dynamically for --kubeconfig and --pods-file alone; and of undici
// only its Pool (lib/undici.ts).

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../dist/bin/kube2iam.js', import.meta.url));
const STATIC_IMPORT = /^\s*import\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;

function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, specifier = ''] of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
      else
        packages.add(
          specifier
            .split('/')
            .slice(0, specifier.startsWith('@') ? 2 : 1)
            .join('/'),
        );
    }
  };
  visit(entry);
  return { files, packages };
}

t.test('the program’s static imports reach neither client-node nor the YAML parser', async (t) => {
  const { files, packages } = staticGraph(ENTRY);
  t.ok(files.size > 20, `${files.size} modules followed`);
  t.ok(packages.has('@aws-sdk/client-sts'), 'the STS client is among them (the check sees packages)');
  t.notOk(packages.has('@kubernetes/client-node'), 'no @kubernetes/client-node');
  t.notOk(packages.has('js-yaml'), 'no js-yaml');
});

t.test('client-node and the YAML parser are imported where their flags need them', async (t) => {
  const dist = fileURLToPath(new URL('../dist/lib/', import.meta.url));
  t.match(readFileSync(`${dist}pods/kubernetes.js`, 'utf8'), /await import\('@kubernetes\/client-node'\)/, 'client-node for --kubeconfig');
  t.match(readFileSync(`${dist}app.js`, 'utf8'), /await import\('\.\/pods\/pods-file\.js'\)/, 'the pods file module for --pods-file');
});

t.test('of undici, the program loads the Pool and its request API, not the package’s index', async (t) => {
  const app = new URL('../dist/lib/app.js', import.meta.url).href;
  const script = `await import(${JSON.stringify(app)}); const { createRequire } = await import('node:module');
    const cache = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('/node_modules/undici/'));
    console.log(JSON.stringify(cache.map((k) => k.slice(k.indexOf('/node_modules/undici/') + 21))));`;
  const loaded = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as string[];
  t.ok(loaded.includes('lib/dispatcher/pool.js'), 'the Pool is loaded');
  t.ok(loaded.includes('lib/api/index.js'), 'with its request API');
  t.notOk(loaded.includes('index.js'), 'the index is not');
  t.notOk(
    loaded.some((file) => file.startsWith('lib/web/')),
    'nor fetch and WebSocket',
  );
});

t.test('the slim Pool answers a request, as undici’s own does', async (t) => {
  const { createServer } = await import('node:http');
  const { Pool } = await import('../lib/undici.js');
  const server = createServer((_request, response) => response.end('pong')).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  t.teardown(() => server.close());
  const pool = new Pool(`http://127.0.0.1:${(server.address() as { port: number }).port}`);
  t.teardown(() => pool.close());
  const response = await pool.request({ method: 'GET', path: '/' });
  t.equal(response.statusCode, 200);
  t.equal(await response.body.text(), 'pong');
});
