// The stats line: every --stats-interval, one line on stdout with what happened since the
// last one. It replaces kube2iam's Prometheus endpoint (no scrape port, no labels with
// role ARNs that any pod could read). Recording is a few array and Map updates per
// request; everything else is computed when the line is written.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { CredentialStore } from './credentials/store.js';
import type { HttpServer } from './http/index.js';
import type { CredentialAnswerStats } from './imds/router.js';
import type { TokenRegistry } from './imds/tokens.js';
import type { TokenReviewer } from './pods/token-review.js';
import { formatLine, type LogFormat } from './log.js';
import type { CallerResolver } from './pods/callers.js';
import type { PodIndex } from './pods/pod-index.js';
import type { PodSource } from './pods/sources.js';
import type { MetadataUpstream } from './upstream/metadata.js';

export interface Counters {
  readonly [name: string]: number;
}

/** Latencies on a log scale: 8 buckets per doubling from 1 µs (about 9% resolution). */
export class LatencyHistogram {
  private static readonly BUCKETS = 256;
  private readonly counts = new Uint32Array(LatencyHistogram.BUCKETS);
  count = 0;
  maxMs = 0;

  record(ms: number): void {
    const us = ms * 1000;
    let bucket = us <= 1 ? 0 : Math.floor(Math.log2(us) * 8);
    if (bucket >= LatencyHistogram.BUCKETS) bucket = LatencyHistogram.BUCKETS - 1;
    this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    this.count++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  /** The upper edge (ms) of the bucket holding quantile `q` (0..1), capped at the maximum seen. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < LatencyHistogram.BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(2 ** ((i + 1) / 8) / 1000, this.maxMs);
    }
    return this.maxMs;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.maxMs = 0;
  }
}

const LOOP_RESOLUTION_MS = 10;

/** How late the event loop ran callbacks (GC pauses, long tasks), sampled every 10 ms. */
export class EventLoopDelay {
  private readonly histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });

  start(): void {
    this.histogram.enable();
  }

  stop(): void {
    this.histogram.disable();
  }

  /** p99 and maximum in ms since the last call, then starts over. */
  take(): { p99: number; max: number } {
    const h = this.histogram;
    // The histogram holds whole intervals between samples: the delay is what exceeds the
    // resolution (to the µs, as the other latencies of the line).
    const late = (ns: number): number => Math.max(0, Math.round(ns / 1e3 - LOOP_RESOLUTION_MS * 1e3) / 1e3);
    const out = h.count === 0 ? { p99: 0, max: 0 } : { p99: late(h.percentile(99)), max: late(h.max) };
    h.reset();
    return out;
  }
}

/** Requests by route and status, and the latency of credential answers. */
export class RequestStats {
  private readonly byRoute: Array<Map<number, number>>;
  readonly credentialLatency = new LatencyHistogram();

  constructor(
    private readonly routeNames: readonly string[],
    /** Routes whose answers count in `credentialLatency`. */
    private readonly credentialRoutes: readonly number[],
  ) {
    this.byRoute = routeNames.map(() => new Map());
  }

  record(route: number, status: number, ms: number): void {
    const statuses = this.byRoute[route];
    if (statuses === undefined) return;
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    if (this.credentialRoutes.includes(route)) this.credentialLatency.record(ms);
  }

  /** `{ route: { status: count } }` since the last call, then starts over. */
  take(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    this.byRoute.forEach((statuses, route) => {
      if (statuses.size === 0) return;
      out[this.routeNames[route] ?? String(route)] = Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0]));
      statuses.clear();
    });
    return out;
  }
}

/** Counters that only grow, reported as the change since the last line. */
export class CounterDeltas {
  private readonly previous = new Map<string, number>();

  take<T extends object>(group: string, counters: T): { [K in keyof T]: number } {
    const out: Record<string, number> = {};
    for (const [name, value] of Object.entries(counters)) {
      if (typeof value !== 'number') continue;
      const key = `${group}.${name}`;
      out[name] = value - (this.previous.get(key) ?? 0);
      this.previous.set(key, value);
    }
    return out as { [K in keyof T]: number };
  }
}

export type StatsLine = Record<string, unknown>;

/** Writes `collect()`'s line every `intervalMs`, in the shape of the log lines (lib/log.ts). */
export class StatsReporter {
  private timer: NodeJS.Timeout | null = null;
  private last = performance.now();

  constructor(
    private readonly intervalMs: number,
    private readonly collect: (seconds: number) => StatsLine,
    private readonly out: NodeJS.WritableStream,
    private readonly format: LogFormat,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.timer = setInterval(() => this.report(), this.intervalMs);
    this.timer.unref();
  }

  report(): void {
    const now = performance.now();
    const fields = this.collect(Math.round((now - this.last) / 100) / 10);
    this.last = now;
    this.out.write(formatLine(this.format, 'info', 'stats', fields));
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/** The parts the stats line reads. */
export interface StatsSources {
  store: CredentialStore;
  answerStats: CredentialAnswerStats;
  requestStats: RequestStats;
  index: PodIndex;
  source: PodSource;
  watchRestarts: () => number;
  callers: CallerResolver;
  upstream: MetadataUpstream;
  http: HttpServer;
  tokens: TokenRegistry;
  loopDelay: EventLoopDelay;
  /** With --container-credentials. */
  container: ContainerCredentialsStats | null;
}

export interface ContainerCredentialsStats {
  requestStats: RequestStats;
  reviewer: TokenReviewer;
}

/** The stats line's shape: what happened since the last line, and where things stand (its type is what it builds). */
export function statsLine(s: StatsSources) {
  const deltas = new CounterDeltas();
  return (seconds: number) => {
    const sts = deltas.take('sts', s.store.stats);
    const latency = s.requestStats.credentialLatency;
    const line = {
      seconds,
      requests: s.requestStats.take(),
      credentialLatencyMs: { count: latency.count, p50: round(latency.quantile(0.5)), p99: round(latency.quantile(0.99)), max: round(latency.maxMs) },
      store: {
        ...deltas.take('answers', s.answerStats),
        roles: s.store.size,
        retained: s.store.retainedCount,
        pending: s.store.pending,
        ...deltas.take('store', { reused: s.store.stats.reused, dropped: s.store.stats.dropped }),
      },
      sts: {
        calls: sts.stsCalls,
        errors: sts.stsErrors,
        renewals: sts.renewals,
        rateLimited: sts.rateLimited,
        throttled: sts.throttled,
        demanded: sts.demanded,
        demandRate: round(s.store.stsRates.demand),
        backgroundRate: round(s.store.stsRates.background),
        latencyAvgMs: sts.stsCalls > 0 ? round(sts.stsLatencyTotalMs / sts.stsCalls) : 0,
        latencyMaxMs: round(s.store.stats.stsLatencyMaxMs),
      },
      pods: {
        indexed: s.index.size,
        ips: s.index.ipCount,
        synced: s.source.synced,
        ...deltas.take('callers', { liveLookups: s.callers.liveLookups, liveLookupsLimited: s.callers.liveLookupsLimited }),
      },
      watch: { restarts: deltas.take('watch', { restarts: s.watchRestarts() }).restarts },
      upstream: deltas.take('upstream', s.upstream.stats),
      http: { open: s.http.connectionCount, ...deltas.take('http', s.http.stats) },
      tokens: s.tokens.size,
      ...(s.container === null
        ? {}
        : {
            containerCredentials: {
              requests: s.container.requestStats.take(),
              reviews: { ...deltas.take('reviews', s.container.reviewer.stats), kept: s.container.reviewer.size },
            },
          }),
      loopDelayMs: s.loopDelay.take(),
      memoryMb: memoryMb(),
    };
    latency.reset();
    return line;
  };
}

/** What an operator sizes the DaemonSet's memory by: the process's RSS, and the live JavaScript heap in it. */
function memoryMb(): { rss: number; heapUsed: number } {
  const { rss, heapUsed } = process.memoryUsage();
  return { rss: Math.round(rss / 1048576), heapUsed: Math.round(heapUsed / 1048576) };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
