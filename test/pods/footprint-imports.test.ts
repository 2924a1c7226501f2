// What a proxy in a cluster loads (issue 15): only the lean API client, never
// @kubernetes/client-node's generated API (about 30 MB of heap) or the pods file's YAML
// parser. Both are imported dynamically, for --kubeconfig and --pods-file alone; this
// follows the static imports of the built program from its entry point.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../../dist/bin/kube2iam.js', import.meta.url));
const STATIC_IMPORT = /^\s*import\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/gm;

function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      if (specifier!.startsWith('.')) visit(resolve(dirname(file), specifier!));
      else packages.add(specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!);
    }
  };
  visit(entry);
  return { files, packages };
}

t.test('the program’s static imports reach neither client-node nor the YAML parser', async (t) => {
  const { files, packages } = staticGraph(ENTRY);
  t.ok(files.size > 20, `${files.size} modules followed`);
  t.ok(packages.has('undici'), 'the lean client’s undici is among them (the check sees packages)');
  t.notOk(packages.has('@kubernetes/client-node'), 'no @kubernetes/client-node');
  t.notOk(packages.has('js-yaml'), 'no js-yaml');
});

t.test('client-node and the YAML parser are imported where their flags need them', async (t) => {
  const dist = fileURLToPath(new URL('../../dist/lib/', import.meta.url));
  t.match(readFileSync(`${dist}pods/kubernetes.js`, 'utf8'), /await import\('@kubernetes\/client-node'\)/, 'client-node for --kubeconfig');
  t.match(readFileSync(`${dist}app.js`, 'utf8'), /await import\('\.\/pods\/pods-file\.js'\)/, 'the pods file module for --pods-file');
});
