// The README's flag table is generated from the flag schema (lib/config.ts FLAGS), so it
// cannot drift from what the program accepts: on a mismatch, the expected table is in
// the failure's diff, ready to paste between the markers.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { envName, FLAGS } from '../lib/config.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const START = '<!-- flags:start (generated from lib/config.ts by test/readme.test.ts) -->';
const END = '<!-- flags:end -->';

function flagTable(): string {
  const rows = Object.entries(FLAGS).map(([flag, spec]) => {
    const value = spec.default === '' ? '' : `\`${String(spec.default)}\``;
    const describe = spec.compat === true ? `*Kept for kube2iam compatibility:* ${spec.describe}` : spec.describe;
    return `| \`--${flag}\` | ${value} | \`${envName(flag)}\` | ${describe.replace(/\|/g, '\\|')} |`;
  });
  return ['| Flag | Default | Environment | What it does |', '|---|---|---|---|', ...rows].join('\n');
}

t.test('the README’s flag table is the flag schema', async (t) => {
  const start = README.indexOf(START);
  const end = README.indexOf(END);
  t.ok(start !== -1 && end > start, 'the README has the flag table markers');
  t.equal(README.slice(start + START.length, end).trim(), flagTable());
});

t.test('the README’s performance figures are the latest benchmark table’s', async (t) => {
  const results = readFileSync(new URL('../benchmarks/RESULTS.md', import.meta.url), 'utf8');
  const measured = /^Measured (\d{4}-\d{2}-\d{2})/m.exec(results)?.[1];
  t.ok(measured, 'RESULTS.md is dated');
  t.match(README, new RegExp(`benchmarks/RESULTS\\.md\\)?,? measured ${measured}`), 'the README quotes the run it copies');
});
