// Scenarios for the credential store against moto_server (a real STS emulator):
// - STS calls for 1,000 pods of 50 workloads (one role each) over two renewal periods;
// - first-request latency of new pods while STS answers after 100 ms (a delaying relay
//   in front of moto): prefetched by the store against fetched on demand, as kube2iam
//   does on a cold cache, in the same run;
// - workload generations (a Job's retries, a Recreate rollout's pods): each pod gone
//   before the next of its workload starts, with STS answering after 100 ms: STS calls
//   and each pod's wait for its credentials, with credentials kept for the workload's
//   next pod and without (every key dropped with its last pod, as before), side by side.

import { setTimeout as sleep } from 'node:timers/promises';
import { credentialResponse, PreparedAnswers } from '../lib/imds/documents.js';
import { CredentialStore, type CredentialEntry } from '../lib/credentials/store.js';
import { StsRoleAssumer } from '../lib/credentials/sts.js';
import { MotoServer } from '../test/harness/moto.js';
import { DelayingRelay } from '../test/harness/relay.js';
import { quantile, type Section } from './harness.js';

const KEYS = { accessKeyId: 'AKIDBENCH', secretAccessKey: 'bench' };
const role = (n: number): string => `arn:aws:iam::123456789012:role/workload-${n}`;

async function stsCallCount(moto: MotoServer): Promise<{ markdown: string; raw: unknown }> {
  const pods = 1000;
  const workloads = 50;
  const ttl = 3000; // short periods so two of them fit in a few seconds
  const sts = new StsRoleAssumer({ region: 'us-east-1', endpoint: moto.endpoint, credentials: KEYS, maxAttempts: 1 });
  const store = new CredentialStore(sts, { sessionTtlMs: ttl, errorTtlMs: 0, stsRatePerSecond: 500, stsBurst: 100 });
  try {
    const entries: CredentialEntry[] = [];
    for (let n = 0; n < pods; n++) {
      const w = n % workloads;
      entries.push(store.acquire(`pod-${n}`, { roleArn: role(w), sessionName: `bench.workload-${w}`, externalId: null }));
    }
    await Promise.all(entries.map((e) => e.fetching));
    const initial = store.stats.stsCalls;
    // moto sometimes fails calls under this burst; each failure is retried, and counted apart.
    const initialErrors = store.stats.stsErrors;
    // Renewals come every TTL (credentials last two); watch two periods and a margin.
    await sleep(ttl * 2 + ttl / 4);
    const total = store.stats.stsCalls;
    const perPeriod = store.stats.renewals / 2;
    const markdown = [
      `| Pods | Workloads (one role each) | STS calls to start (less moto's failed ones) | moto failures, retried | STS calls per renewal period | expected |`,
      '|---:|---:|---:|---:|---:|---:|',
      `| ${pods} | ${workloads} | ${initial - initialErrors} | ${initialErrors} | ${perPeriod} | ${workloads} |`,
    ].join('\n');
    return { markdown, raw: { pods, workloads, ttl, initial, initialErrors, total, perPeriod, errors: store.stats.stsErrors } };
  } finally {
    store.close();
  }
}

async function firstRequestLatency(moto: MotoServer): Promise<{ markdown: string; raw: unknown }> {
  const delayMs = 100;
  const startupMs = 500; // a pod is known to the index (scheduled) this long before its app runs
  const pods = 100;
  const spacingMs = 20;
  const relay = await new DelayingRelay({ host: '127.0.0.1', port: moto.port }, delayMs).listen();
  const prefetchSts = new StsRoleAssumer({ region: 'us-east-1', endpoint: relay.endpoint, credentials: KEYS, maxAttempts: 1 });
  const onDemandSts = new StsRoleAssumer({ region: 'us-east-1', endpoint: relay.endpoint, credentials: KEYS, maxAttempts: 1 });
  const store = new CredentialStore(prefetchSts, { sessionTtlMs: 900_000, errorTtlMs: 0, stsRatePerSecond: 100, stsBurst: 100 });
  const prefetched: number[] = [];
  const onDemand: number[] = [];
  try {
    const runs: Array<Promise<void>> = [];
    const answers = new PreparedAnswers();
    for (let n = 0; n < pods; n++) {
      const parameters = { roleArn: role(n), sessionName: `bench.pod-${n}`, externalId: null };
      // This design: the pod appears in the index, its credentials are fetched at once.
      const entry = store.acquire(`pod-${n}`, parameters);
      runs.push(
        (async () => {
          await sleep(startupMs);
          // The pod's first request.
          const t0 = performance.now();
          let answer = entry.current(Date.now());
          if (answer === null) {
            await entry.fetching;
            answer = entry.current(Date.now());
          }
          if (answer === null) throw new Error(`no credentials for pod ${n}`);
          answers.credentials(answer);
          prefetched.push(performance.now() - t0);
          // On demand (kube2iam on a cold cache): STS is called when the request arrives.
          const t1 = performance.now();
          credentialResponse({
            ...(await onDemandSts.assumeRole({ ...parameters, sessionName: `bench.ondemand-${n}`, durationSeconds: 1800 })),
            issuedAt: new Date(),
          });
          onDemand.push(performance.now() - t1);
        })(),
      );
      await sleep(spacingMs);
    }
    await Promise.all(runs);
  } finally {
    store.close();
    onDemandSts.close();
    await relay.close();
  }
  const stats = (values: number[]): { p50: number; p99: number; max: number } => {
    const sorted = [...values].sort((a, b) => a - b);
    return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) as number };
  };
  const pre = stats(prefetched);
  const demand = stats(onDemand);
  const markdown = [
    `${pods} new pods, ${spacingMs} ms apart, each asking for credentials as soon as its app runs (${startupMs} ms after the pod is known); STS answers after ${delayMs} ms.`,
    '',
    '| Design | p50 ms | p99 ms | max ms | p99 vs on demand |',
    '|---|---:|---:|---:|---:|',
    `| prefetched by the credential store | ${pre.p50.toFixed(3)} | ${pre.p99.toFixed(3)} | ${pre.max.toFixed(3)} | ${(pre.p99 / demand.p99).toFixed(4)}x |`,
    `| on demand (STS called on the request path) | ${demand.p50.toFixed(1)} | ${demand.p99.toFixed(1)} | ${demand.max.toFixed(1)} | 1x |`,
    '',
    `Target: prefetched p99 at most 2 ms (measured ${pre.p99.toFixed(3)} ms: ${pre.p99 <= 2 ? 'met' : 'NOT met'}); on demand at least 100 ms (measured ${demand.p99.toFixed(1)} ms).`,
    'Measured at the credential store (from the request to the prepared answer); the HTTP path adds the engine figures above.',
  ].join('\n');
  return { markdown, raw: { pods, spacingMs, startupMs, delayMs, prefetched, onDemand, pre, demand } };
}

interface GenerationFigures {
  generations: number;
  stsCalls: number;
  /** STS calls answered in one renewal period, from half a period in (after the first fetches) to one and a half. */
  lastPeriodCalls: number;
  reused: number;
  dropped: number;
  waits: number[];
}

async function workloadGenerations(moto: MotoServer, retainedMax: number): Promise<GenerationFigures> {
  const workloads = 5;
  const ttl = 3000; // credentials for 6 s, renewed when 3 s remain: two periods fit in the run
  const everyMs = 250; // a new pod of each workload this often, each gone after 150 ms
  const lifeMs = 150;
  const periods = 2;
  const relay = await new DelayingRelay({ host: '127.0.0.1', port: moto.port }, 100).listen();
  const sts = new StsRoleAssumer({ region: 'us-east-1', endpoint: relay.endpoint, credentials: KEYS, maxAttempts: 1 });
  const store = new CredentialStore(sts, { sessionTtlMs: ttl, errorTtlMs: 0, staleMarginMs: 500, stsRatePerSecond: 100, stsBurst: 100, retainedMax });
  const waits: number[] = [];
  let generations = 0;
  try {
    const deadline = performance.now() + periods * ttl;
    // One period's window placed between renewal points (each key renews once a period).
    let windowStart = 0;
    let windowEnd = 0;
    const answered = (): number => store.stats.stsCalls - store.stats.stsErrors; // moto fails a call now and then; retries are not the design's
    const marks = [setTimeout(() => (windowStart = answered()), ttl / 2), setTimeout(() => (windowEnd = answered()), ttl * 1.5)];
    await Promise.all(
      Array.from({ length: workloads }, async (_, w) => {
        const parameters = { roleArn: role(w), sessionName: `bench.job-${w}`, externalId: null };
        for (let g = 0; performance.now() < deadline; g++) {
          const pod = `job-${w}-${g}`;
          const entry = store.acquire(pod, parameters);
          generations++;
          const t0 = performance.now();
          while (entry.current(Date.now()) === null) await (entry.fetching ?? sleep(5));
          waits.push(performance.now() - t0);
          await sleep(lifeMs);
          store.release(pod);
          await sleep(everyMs - lifeMs);
        }
      }),
    );
    marks.forEach(clearTimeout);
    return {
      generations,
      stsCalls: store.stats.stsCalls,
      lastPeriodCalls: windowEnd - windowStart,
      reused: store.stats.reused,
      dropped: store.stats.dropped,
      waits,
    };
  } finally {
    store.close();
    await relay.close();
  }
}

async function generationsSection(moto: MotoServer): Promise<{ markdown: string; raw: unknown }> {
  const kept = await workloadGenerations(moto, 1_000);
  const dropped = await workloadGenerations(moto, 0);
  const row = (name: string, f: GenerationFigures, versus: GenerationFigures): string => {
    const sorted = [...f.waits].sort((a, b) => a - b);
    return `| ${name} | ${f.generations} | ${f.stsCalls} | ${f.lastPeriodCalls} | ${f.reused} | ${f.dropped} | ${quantile(sorted, 0.5).toFixed(3)} | ${quantile(sorted, 0.99).toFixed(1)} | ${(f.stsCalls / versus.stsCalls).toFixed(2)}x |`;
  };
  const perPeriod = kept.lastPeriodCalls;
  const markdown = [
    '5 workloads, each starting a pod every 250 ms that is gone 150 ms later (a Job retrying, a Recreate rollout, a CronJob-like cadence compressed), for two renewal periods of 3 s; STS answers after 100 ms. A wait is from the pod being known to its credentials being servable.',
    '',
    '| Credentials of a workload whose last pod left | pod generations | STS calls | in one renewal period | reused | dropped | wait p50 ms | wait p99 ms | STS calls vs dropped at once |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('kept until their renewal point (this design)', kept, dropped),
    row('dropped with the last pod', dropped, dropped),
    '',
    `Target: STS calls per renewal period equal distinct keys (5), not pod generations (measured ${perPeriod} in one period, from 1.5 s to 4.5 s, against ${dropped.lastPeriodCalls} when dropped with the last pod: ${perPeriod <= 5 ? 'met' : 'NOT met'}). A pod that arrives after its workload's entry reached its renewal point with no pod holding it waits for a fresh fetch: that is the p99.`,
  ].join('\n');
  return { markdown, raw: { kept, dropped } };
}

export async function credentialScenarios(): Promise<Section[]> {
  const moto = await MotoServer.start();
  try {
    const calls = await stsCallCount(moto);
    const latency = await firstRequestLatency(moto);
    const generations = await generationsSection(moto);
    return [
      { id: 'sts-calls', title: 'Credentials: STS calls with shared roles', markdown: calls.markdown, raw: calls.raw },
      { id: 'first-request', title: 'Credentials: first request of a new pod', markdown: latency.markdown, raw: latency.raw },
      { id: 'generations', title: 'Credentials: a workload’s pods one after another', markdown: generations.markdown, raw: generations.raw },
    ];
  } finally {
    await moto.stop();
  }
}
