// `npm run bench`: runs every scenario side by side in one invocation, loopback only,
// bounded in time, and writes benchmarks/RESULTS.md and benchmarks/results.json.
//   BENCH_SECONDS (default 4), BENCH_ROUNDS (default 7) shorten or lengthen the runs.

import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { httpEngineScenario } from './http-engine.js';
import type { Section } from './harness.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const connections = 32;

async function main(): Promise<void> {
  const started = new Date();
  const sections: Section[] = [];
  sections.push(await httpEngineScenario({ rounds, seconds, connections }));

  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  const markdown = [
    '# Benchmark results',
    '',
    `Measured ${started.toISOString().slice(0, 10)} with \`npm run bench\` on ${machine}.`,
    'Servers run pinned to one core and the load generator (wrk) to the other; all traffic is on loopback.',
    'Figures are ratios measured side by side in one run; absolute numbers vary with the machine.',
    '',
    ...sections.flatMap((s) => [`## ${s.title}`, '', s.markdown, '']),
  ].join('\n');
  const dir = fileURLToPath(new URL('../../benchmarks/', import.meta.url));
  writeFileSync(`${dir}RESULTS.md`, markdown);
  writeFileSync(`${dir}results.json`, `${JSON.stringify({ date: started.toISOString(), machine, sections: sections.map(({ id, raw }) => ({ id, raw })) }, null, 2)}\n`);
  process.stdout.write(`${markdown}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
