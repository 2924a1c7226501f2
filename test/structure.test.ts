// The architecture the folder list promises: the domain (credentials, pods) returns data
// and knows nothing of HTTP; the metadata and container-credentials routes render it.
// Read from the sources' own import lines, so a change that crosses the boundary fails
// here.

import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './harness/environment.js';

const IMPORT = /^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm;

function imports(dir: string): Array<[file: string, specifier: string]> {
  return readdirSync(join(REPO, dir))
    .filter((name) => name.endsWith('.ts'))
    .flatMap((name) => [...readFileSync(join(REPO, dir, name), 'utf8').matchAll(IMPORT)].map((m): [string, string] => [`${dir}/${name}`, m[1] ?? '']));
}

for (const domain of ['lib/credentials', 'lib/pods']) {
  t.test(`${domain} imports nothing from lib/http, lib/imds or lib/container-credentials`, async (t) => {
    const found = imports(domain);
    t.ok(found.length > 5, `${found.length} imports read`);
    t.same(
      found.filter(([, specifier]) => /(^|\/)(http|imds|container-credentials)\//.test(specifier)),
      [],
    );
  });
}
