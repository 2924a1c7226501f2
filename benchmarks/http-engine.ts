// Scenario: the HTTP engine against node:http and a floor, one fixed 1.2 KB response,
// keep-alive, 32 connections, runs alternating between the three servers.

import { fileURLToPath } from 'node:url';
import { alternate, BenchServer, summarize, type MeasuredLoad, type Section } from './harness.js';

const SERVER_SCRIPT = fileURLToPath(new URL('./servers/fixed-response.js', import.meta.url));
const KINDS = [
  { kind: 'engine', label: 'this engine (lib/http)' },
  { kind: 'node-http', label: 'node:http' },
  { kind: 'floor', label: 'floor: bare net.Server writing a fixed buffer' },
] as const;

export interface HttpEngineOptions {
  rounds: number;
  seconds: number;
  connections: number;
}

export async function httpEngineScenario(options: HttpEngineOptions): Promise<Section> {
  const servers = await Promise.all(KINDS.map(({ kind }) => BenchServer.start(kind, SERVER_SCRIPT, [kind])));
  let runs: Map<string, MeasuredLoad[]>;
  try {
    runs = alternate(
      'http-engine',
      servers.map((server) => ({ name: server.name, server, url: `http://127.0.0.1:${server.port}/` })),
      options,
    );
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }

  const summary = KINDS.map(({ kind, label }) => ({ kind, label, ...summarize(runs.get(kind) ?? []) }));
  const [engine, nodeHttp, floor] = summary as [(typeof summary)[0], (typeof summary)[0], (typeof summary)[0]];
  const vsNode = engine.requestsPerSecond / nodeHttp.requestsPerSecond;
  const vsFloor = engine.requestsPerSecond / floor.requestsPerSecond;
  const rows = summary
    .map(
      (s) =>
        `| ${s.label} | ${s.requestsPerSecond.toFixed(0)} | ${s.p50Ms.toFixed(3)} | ${s.p99Ms.toFixed(3)} | ${s.cpuUsPerRequest.toFixed(2)} | ${(s.requestsPerSecond / nodeHttp.requestsPerSecond).toFixed(2)}x | ${((s.requestsPerSecond / floor.requestsPerSecond) * 100).toFixed(0)}% | ${s.errors} |`,
    )
    .join('\n');
  const markdown = [
    `Fixed 1.2 KB response, keep-alive, ${options.connections} connections, wrk -t1, ${options.rounds} alternating rounds of ${options.seconds} s per server (median shown).`,
    '',
    '| Server | req/s | p50 ms | p99 ms | CPU µs/request | req/s vs node:http | req/s vs floor | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    rows,
    '',
    `Targets: at least 1.5x node:http (measured ${vsNode.toFixed(2)}x: ${vsNode >= 1.5 ? 'met' : 'NOT met'}); at least 90% of the floor (measured ${(vsFloor * 100).toFixed(0)}%: ${vsFloor >= 0.9 ? 'met' : 'NOT met'}).`,
  ].join('\n');
  return { id: 'http-engine', title: 'HTTP engine: fixed response', markdown, raw: { options, runs: Object.fromEntries(runs), summary, vsNode, vsFloor } };
}
