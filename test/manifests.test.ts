// Every manifest is accepted by a real API server (server-side dry run).

import t from 'tap';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KubernetesControlPlane } from './harness/kubernetes.js';

const DIR = fileURLToPath(new URL('../manifests/', import.meta.url));

t.test('manifests pass kubectl apply --dry-run=server', async (t) => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length > 0, 'there are manifests');
  const plane = await KubernetesControlPlane.start();
  t.teardown(() => plane.stop());
  for (const file of files) {
    const out = await plane.kubectl(['apply', '--dry-run=server', '-f', `${DIR}${file}`]);
    t.match(out, /created \(server dry run\)/, file);
  }
});
