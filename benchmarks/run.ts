// `npm run bench`: runs every scenario side by side in one invocation, loopback only,
// bounded in time, and writes benchmarks/RESULTS.md and benchmarks/results.json.
//   BENCH_SECONDS (default 4), BENCH_ROUNDS (default 7) shorten or lengthen the runs;
//   BENCH_ONLY=http|hot-path|container|credentials|dnat|storm|footprint|pods|churn|tenant|fleet runs one group and only prints it;
//   BENCH_HEADS sizes the half-sent heads scenario (default: the connection cap);
//   BENCH_TOKENS: how many new tokens' first requests the container scenario times (default 40);
//   BENCH_PODS, BENCH_CHURN_SECONDS size the pod-index and churn scenarios;
//   BENCH_FLEET_NODES (default 60), BENCH_FLEET_LIMIT (the account's calls/s for 5,000
//   nodes, default 100), BENCH_FLEET_REFRESH (seconds, default a renewal period) and
//   BENCH_FLEET_BEFORE=0 (skip building the design before) size the fleet simulation;
//   BENCH_FLEET_DESIGNS=before,demand,window,handover picks its designs, and BENCH_FLEET_TRACE=<path>
//   writes each design's STS calls and pod asks to <path>-<design>.json;
//   BENCH_FLEET_COLD_REPEATS (default 5): the cold start of every node again, for on demand and the window;
//   BENCH_MERGE=1 with BENCH_ONLY puts that group's sections into the existing table;
//   BENCH_OUT writes RESULTS.md and results.json to another directory (the smoke test).

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { churnScenario } from './churn.js';
import { previousRunSection, type StoredRun } from './compare.js';
import { barChart, lineChart } from './charts.js';
import { containerCredentialScenarios } from './container-credentials.js';
import { credentialScenarios } from './credentials.js';
import { stormScenario } from './storm.js';
import { dnatScenario } from './dnat.js';
import { fleetScenario } from './fleet.js';
import { footprintScenario } from './footprint.js';
import { credentialHotPathScenarios } from './hot-path.js';
import { httpEngineScenario } from './http-engine.js';
import { podIndexScenario } from './pod-index.js';
import { tenantScenarios } from './tenant.js';
import type { Section } from './harness.js';
import { DEFAULT_HTTP_OPTIONS } from '../lib/http/options.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
const connections = 32;

async function main(): Promise<void> {
  const started = new Date();
  const sections: Section[] = [];
  const only = process.env.BENCH_ONLY; // a scenario group to run alone
  if (only === undefined || only === 'http') sections.push(await httpEngineScenario({ rounds, seconds, connections }));
  if (only === undefined || only === 'hot-path') sections.push(...(await credentialHotPathScenarios({ rounds, seconds, connections })));
  if (only === undefined || only === 'container')
    sections.push(...(await containerCredentialScenarios({ rounds, seconds, connections, tokens: Number(process.env.BENCH_TOKENS ?? 40) })));
  if (only === undefined || only === 'credentials') sections.push(...(await credentialScenarios()));
  if (only === undefined || only === 'dnat') sections.push(await dnatScenario({ rounds, seconds, connections }));
  if (only === undefined || only === 'storm')
    sections.push(await stormScenario({ addresses: 110, processesPerAddress: 3, rounds: Math.max(1, Math.min(5, rounds)) }));
  if (only === undefined || only === 'footprint')
    sections.push(await footprintScenario({ pods: Math.min(1000, Number(process.env.BENCH_PODS ?? 1000)), roles: 500 }));
  if (only === undefined || only === 'pods') {
    const pods = Number(process.env.BENCH_PODS ?? 10_000);
    sections.push(await podIndexScenario({ pods, roles: Math.min(500, pods), eventsPerSecond: 200, seconds: Number(process.env.BENCH_CHURN_SECONDS ?? 60) }));
  }

  if (only === undefined || only === 'tenant')
    sections.push(...(await tenantScenarios({ connections: Number(process.env.BENCH_HEADS ?? DEFAULT_HTTP_OPTIONS.maxConnections) })));

  if (only === undefined || only === 'churn') {
    const pods = Math.min(1000, Number(process.env.BENCH_PODS ?? 1000));
    sections.push(
      await churnScenario({
        pods,
        roles: Math.min(100, pods),
        eventsPerSecond: 200,
        seconds: Math.min(30, Number(process.env.BENCH_CHURN_SECONDS ?? 30)),
        loadPerSecond: Number(process.env.BENCH_LOAD ?? 4000),
      }),
    );
  }

  if (only === undefined || only === 'fleet') {
    const lifetimeSeconds = 180;
    sections.push(
      await fleetScenario({
        nodes: Number(process.env.BENCH_FLEET_NODES ?? 60),
        accountLimit: Number(process.env.BENCH_FLEET_LIMIT ?? 100),
        speedup: 10,
        lifetimeSeconds,
        refreshSeconds: Number(process.env.BENCH_FLEET_REFRESH ?? lifetimeSeconds / 2),
        phaseCapSeconds: 300,
        before: process.env.BENCH_FLEET_BEFORE !== '0',
        designs: (process.env.BENCH_FLEET_DESIGNS ?? '').split(',').filter((id) => id !== ''),
        trace: process.env.BENCH_FLEET_TRACE ?? null,
        coldRepeats: Number(process.env.BENCH_FLEET_COLD_REPEATS ?? 5),
      }),
    );
  }

  const dir = process.env.BENCH_OUT === undefined ? fileURLToPath(new URL('../../benchmarks/', import.meta.url)) : `${process.env.BENCH_OUT}/`;
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  if (only === undefined) {
    // A full run on another Node than the last one says what changed.
    const previous = existsSync(`${dir}results.json`) ? (JSON.parse(readFileSync(`${dir}results.json`, 'utf8')) as StoredRun) : null;
    const comparison = previousRunSection(previous, sections, process.version, machine);
    if (comparison !== null) sections.push(comparison);
  }
  const markdown = [
    '# Benchmark results',
    '',
    `Measured ${started.toISOString().slice(0, 10)} with \`npm run bench\` on ${machine}.`,
    'Servers run pinned to one core and the load generator (wrk) to the other; all traffic is on loopback or inside network namespaces the benchmark creates.',
    'Figures are ratios measured side by side in one run; absolute numbers vary with the machine.',
    '',
    ...sections.flatMap((s) => [`## ${s.title}`, '', s.markdown, '']),
  ].join('\n');
  process.stdout.write(`${markdown}\n`);
  if (only !== undefined) {
    // A partial run does not replace the full table; with BENCH_MERGE=1 its sections replace theirs.
    if (process.env.BENCH_MERGE === '1') merge(dir, sections, started);
    return;
  }
  writeFileSync(`${dir}RESULTS.md`, markdown);
  writeFileSync(
    `${dir}results.json`,
    `${JSON.stringify({ date: started.toISOString(), machine, sections: sections.map(({ id, raw }) => ({ id, raw })) }, null, 2)}\n`,
  );
  writeCharts(`${dir}charts/`, sections);
}

interface SummaryRaw {
  summary?: Array<{ name: string; percentilesMs?: Record<string, number> }>;
}

/** The run's pictures (linked from the README): latency by percentile and memory by component. */
function writeCharts(dir: string, sections: Section[]): void {
  mkdirSync(dir, { recursive: true });
  const latency = (id: string, title: string): void => {
    const summary = (sections.find((s) => s.id === id)?.raw as SummaryRaw | undefined)?.summary;
    if (summary === undefined) return;
    const series = summary
      .filter((s) => s.percentilesMs !== undefined)
      .map((s) => ({ name: s.name, points: Object.entries(s.percentilesMs as Record<string, number>).map(([p, ms]): [string, number] => [`p${p}`, ms]) }));
    writeFileSync(`${dir}${id}.svg`, lineChart(title, 'latency, ms (log scale)', series));
  };
  latency('hot-path', 'Credential hot path, keep-alive: latency by percentile');
  latency('new-connection', 'Credential hot path, a new connection per request: latency by percentile');
  const components = (sections.find((s) => s.id === 'footprint')?.raw as { components?: Array<{ name: string; rssMb: number }> } | undefined)?.components;
  if (components !== undefined)
    writeFileSync(
      `${dir}memory.svg`,
      barChart(
        'RSS of each component loaded alone (image Node options)',
        'MB',
        components.map((c): [string, number] => [c.name, c.rssMb]),
      ),
    );
}

/** Replaces these sections (by title, and by id in the JSON) in the table a full run wrote, or adds them at its end, noting when they were measured. */
function merge(dir: string, sections: Section[], started: Date): void {
  let markdown = readFileSync(`${dir}RESULTS.md`, 'utf8');
  const json = JSON.parse(readFileSync(`${dir}results.json`, 'utf8')) as { sections: Array<{ id: string; raw: unknown; date?: string }> };
  for (const section of sections) {
    const heading = `## ${section.title}\n`;
    const block = `${heading}\n(Measured ${started.toISOString().slice(0, 10)} in a run of this scenario alone.)\n\n${section.markdown}\n`;
    const at = markdown.indexOf(heading);
    if (at === -1) markdown = `${markdown.trimEnd()}\n\n${block}`;
    else {
      const next = markdown.indexOf('\n## ', at + heading.length);
      markdown = markdown.slice(0, at) + block + (next === -1 ? '' : markdown.slice(next));
    }
    const stored = { id: section.id, raw: section.raw, date: started.toISOString() };
    if (json.sections.some((s) => s.id === section.id)) json.sections = json.sections.map((s) => (s.id === section.id ? stored : s));
    else json.sections.push(stored);
  }
  writeFileSync(`${dir}RESULTS.md`, markdown);
  writeFileSync(`${dir}results.json`, `${JSON.stringify(json, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
