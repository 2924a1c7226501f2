// The previous full run beside this one, when it ran on another Node: each scenario's
// headline figures from both runs, and the same-run ratios the targets are stated in
// (absolute figures move between runs on a shared machine; ratios measured side by side
// within one run are what carry over).

import type { MeasuredLoad, Section } from './harness.js';
import { summarize } from './harness.js';

export interface StoredRun {
  date: string;
  machine: string;
  sections: Array<{ id: string; raw: unknown }>;
}

interface Headline {
  label: string;
  value: (raw: never) => number | null;
  unit: string;
}

type Runs = { runs: Record<string, MeasuredLoad[]> };
const rps =
  (server: string) =>
  (raw: Runs): number | null =>
    raw.runs[server] === undefined ? null : summarize(raw.runs[server]).requestsPerSecond;
const ratio =
  (server: string, baseline: string) =>
  (raw: Runs): number | null => {
    const a = rps(server)(raw);
    const b = rps(baseline)(raw);
    return a === null || b === null || b === 0 ? null : a / b;
  };
const cpu =
  (server: string) =>
  (raw: Runs): number | null =>
    raw.runs[server] === undefined ? null : summarize(raw.runs[server]).cpuUsPerRequest;
const p99 =
  (server: string) =>
  (raw: Runs): number | null =>
    raw.runs[server] === undefined ? null : summarize(raw.runs[server]).p99Ms;

const GO = 'kube2iam-equivalent Go peer';
const FLOOR = 'floor: bare net.Server writing a fixed buffer';
const HOT_PATH: Headline[] = [
  { label: 'this proxy, req/s', value: rps('this proxy'), unit: '' },
  { label: 'this proxy, p99', value: p99('this proxy'), unit: ' ms' },
  { label: 'this proxy, CPU per answer', value: cpu('this proxy'), unit: ' µs' },
  { label: 'vs the Go peer (same run)', value: ratio('this proxy', GO), unit: 'x' },
  { label: 'vs the floor (same run)', value: ratio('this proxy', FLOOR), unit: 'x' },
];

const HEADLINES: Record<string, Headline[]> = {
  'http-engine': [
    { label: 'engine, req/s', value: rps('engine'), unit: '' },
    { label: 'engine vs node:http (same run)', value: ratio('engine', 'node-http'), unit: 'x' },
    { label: 'engine vs the floor (same run)', value: ratio('engine', 'floor'), unit: 'x' },
  ],
  'hot-path': HOT_PATH,
  'new-connection': HOT_PATH,
  dnat: [
    { label: 'full proxy through DNAT, req/s', value: rps('full proxy'), unit: '' },
    { label: 'vs a pass-through proxy (same run)', value: ratio('full proxy', 'pass-through proxy'), unit: 'x' },
  ],
  footprint: [
    {
      label: 'RSS idle',
      value: (raw: { results: Array<{ pods: number; rssMb: number }> }) => raw.results.find((r) => r.pods === 0)?.rssMb ?? null,
      unit: ' MB',
    },
    {
      label: 'RSS with 1,000 pods',
      value: (raw: { results: Array<{ pods: number; rssMb: number }> }) => raw.results.find((r) => r.pods > 0)?.rssMb ?? null,
      unit: ' MB',
    },
    {
      label: 'last pod’s credentials after start',
      value: (raw: { results: Array<{ pods: number; credentialsMs: number | null }> }) => raw.results.find((r) => r.pods > 0)?.credentialsMs ?? null,
      unit: ' ms',
    },
  ],
  'pod-index': [
    { label: 'RSS with 10,000 pods listed', value: (raw: { rssAtList: number }) => raw.rssAtList, unit: ' MB' },
    { label: 'CPU per pod event', value: (raw: { cpuPerEventUs: number }) => raw.cpuPerEventUs, unit: ' µs' },
    { label: 'event lag p99', value: (raw: { lagP99: number }) => raw.lagP99, unit: ' ms' },
  ],
  churn: [
    { label: 'answers p99 during churn', value: (raw: { busy: { p99Ms: number } }) => raw.busy.p99Ms, unit: ' ms' },
    { label: 'answers p99 without churn', value: (raw: { quiet: { p99Ms: number } }) => raw.quiet.p99Ms, unit: ' ms' },
  ],
};

function shown(value: number | null, unit: string): string {
  if (value === null || !Number.isFinite(value)) return '–';
  const digits = unit === 'x' ? 2 : value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)}${unit}`;
}

/** Null when there is no previous run or it ran on the same Node. */
export function previousRunSection(previous: StoredRun | null, current: Section[], currentNode: string, currentMachine: string): Section | null {
  const previousNode = /Node (v[\d.]+)/.exec(previous?.machine ?? '')?.[1];
  if (previous === null || previousNode === undefined || previousNode === currentNode) return null;
  const rows: string[] = [];
  const raw: Record<string, Record<string, [number | null, number | null]>> = {};
  for (const section of current) {
    const before = previous.sections.find((s) => s.id === section.id);
    for (const headline of HEADLINES[section.id] ?? []) {
      const read = (r: unknown): number | null => {
        try {
          return (headline.value as (raw: unknown) => number | null)(r);
        } catch {
          return null; // a figure the older run did not record
        }
      };
      const was = before === undefined ? null : read(before.raw);
      const now = read(section.raw);
      const figures = raw[section.id] ?? {};
      raw[section.id] = figures;
      figures[headline.label] = [was, now];
      const change = was === null || now === null || was === 0 ? '–' : `${((now / was - 1) * 100).toFixed(0)}%`;
      rows.push(`| ${section.title} | ${headline.label} | ${shown(was, headline.unit)} | ${shown(now, headline.unit)} | ${change} |`);
    }
  }
  const hardware = (machine: string): string => machine.replace(/, Node v[\d.]+$/, '');
  const sameHardware = hardware(previous.machine) === hardware(currentMachine);
  const markdown = [
    `The previous full run (${previous.date.slice(0, 10)}, ${previous.machine}) beside this one (${currentMachine}). ${
      sameHardware
        ? 'Absolute figures move by up to about 30% between runs on this shared machine'
        : 'The two runs had different processors, so absolute figures do not compare'
    }; the same-run ratios are what to compare.`,
    '',
    `| Scenario | Figure | Node ${previousNode} | Node ${currentNode} | change |`,
    '|---|---|---:|---:|---:|',
    ...rows,
  ].join('\n');
  return { id: 'previous-run', title: `Node ${currentNode} against the previous run on Node ${previousNode}`, markdown, raw };
}
