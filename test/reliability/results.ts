// Builds test/reliability/RESULTS.md from the `# fault:`, `# hostile:`, `# isolation:`
// and `# soak:` lines a run of the reliability suite printed (`npm run soak`).
//   node dist/test/reliability/results.js RUN_LOG [COMMAND]

import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

type Line = Record<string, unknown>;

function lines(log: string, tag: string): Line[] {
  return [...log.matchAll(new RegExp(`# ${tag}: (\\{.*\\})\\s*$`, 'gm'))].map((m) => JSON.parse(m[1] as string) as Line);
}

const n = (value: unknown): string => (typeof value === 'number' ? value.toLocaleString('en-US') : value === null || value === undefined ? '–' : String(value));
const kbToMb = (kb: unknown): string => (typeof kb === 'number' ? (kb / 1024).toFixed(0) : '–');
const pair = (value: unknown, format: (v: unknown) => string = n): string => {
  const v = value as { before?: unknown; after?: unknown } | undefined;
  return `${format(v?.before)} → ${format(v?.after)}`;
};

export function resultsMarkdown(log: string, command: string, date: Date): string {
  const faults = lines(log, 'fault').filter((f) => f.name !== 'all');
  const hostile = lines(log, 'hostile');
  const isolation = lines(log, 'isolation');
  const soak = lines(log, 'soak');
  const samples = lines(log, 'soak-sample');
  const out: string[] = [
    '# Reliability results',
    '',
    `Measured ${date.toISOString().slice(0, 10)} with \`${command}\` on ${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}: the built program with the container image's Node options, against real kube-apiserver, etcd and moto, on loopback. The short versions of the same tests run in \`npm test\`.`,
    '',
    '## Faults under load',
    '',
    'Pods keep asking for their credentials throughout each fault; every answer is checked (own role, own key, not expired).',
    '',
    '| Fault | requests | failures | leaks | expired | recovery ms | RSS MB before → after | fds before → after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...faults.map(
      (f) =>
        `| ${n(f.name)} | ${n(f.requests)} | ${n(f.failures)} | ${n(f.leaks)} | ${n(f.expired)} | ${n(f.recoveryMs)} | ${pair(f.rssKb, kbToMb)} | ${pair(f.fds)} |`,
    ),
    '',
    '## Hostile input',
    '',
    'Legitimate pods fetch their credentials (1 s timeout, as botocore) throughout each attack.',
    '',
    '| Attack | seconds | inputs | legitimate fetches | failed | slowest ms | RSS MB before → peak → after | fds before → after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...hostile.map(
      (h) =>
        `| ${n(h.attack)} | ${n(h.seconds)} | ${n(h.inputs)} | ${n(h.legitRequests)} | ${n(h.legitFailures)} | ${n(h.legitMaxMs)} | ${n(h.rssMbBefore)} → ${n(h.rssMbPeak)} → ${n(h.rssMbAfter)} | ${n(h.fdsBefore)} → ${n(h.fdsAfter)} |`,
    ),
    '',
    '## Isolation',
    '',
    '| Pod generations on reused IPs | requests from churned pods | own role | not yet served | leaks | steady-pod requests | failures | leaks |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...isolation.map(
      (i) =>
        `| ${n(i.generations)} | ${n(i.asked)} | ${n(i.own)} | ${n(i.notYet)} | ${n(i.leaks)} | ${n(i.loadRequests)} | ${n(i.loadFailures)} | ${n(i.loadLeaks)} |`,
    ),
    '',
    '## Soak',
    '',
  ];
  for (const s of soak) {
    const first = s.first as { rssMb: number; fds: number; loopP99Ms: number };
    const last = s.last as { rssMb: number; fds: number; loopP99Ms: number };
    out.push(
      `${n(s.seconds)} s of mixed load: ${n(s.credentialRequests)} checked credential requests (${n(s.failures)} failed, ${n(s.expired)} expired), ${n(s.churnGenerations)} pod generations on reused addresses (${n(s.churnAsked)} requests), ${n(s.keepAliveAnswers)} keep-alive answers, ${n(s.passThrough)} pass-through requests, ${n(s.tokens)} tokens; leaks: ${n(s.leaks)}.`,
      '',
      '| Mean over | RSS MB | open fds | event loop delay p99 ms |',
      '|---|---:|---:|---:|',
      `| first third | ${first.rssMb.toFixed(1)} | ${first.fds.toFixed(1)} | ${first.loopP99Ms.toFixed(1)} |`,
      `| last third | ${last.rssMb.toFixed(1)} | ${last.fds.toFixed(1)} | ${last.loopP99Ms.toFixed(1)} |`,
      '',
    );
  }
  if (samples.length > 0) {
    out.push(
      '<details><summary>Samples</summary>',
      '',
      '| s | RSS MB | fds | loop p99 ms | loop max ms | credential answers/s |',
      '|---:|---:|---:|---:|---:|---:|',
    );
    for (const s of samples) out.push(`| ${n(s.atS)} | ${n(s.rssMb)} | ${n(s.fds)} | ${n(s.loopP99Ms)} | ${n(s.loopMaxMs)} | ${n(s.answersPerS)} |`);
    out.push('', '</details>', '');
  }
  return `${out.join('\n')}\n`;
}

const [logFile, command = 'npm run soak'] = process.argv.slice(2);
if (logFile !== undefined) {
  const target = join(process.cwd(), 'test', 'reliability', 'RESULTS.md');
  writeFileSync(target, resultsMarkdown(readFileSync(logFile, 'utf8'), command, new Date()));
  process.stdout.write(`wrote ${target}\n`);
}
