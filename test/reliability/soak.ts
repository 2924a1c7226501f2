// The soak (issue 8, part 4): the real program under mixed load for a long time, its
// footprint sampled throughout. Load: pods asking for their credentials (every answer
// checked), pods churning on reused addresses, a keep-alive pod asking fast, pass-through
// requests and token PUTs. Flat means: RSS, open descriptors and the event loop's delay
// in the last third of the run are where they were in the first.

import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { AddressReuse } from './churn.js';
import { get } from '../harness/pod-client.js';
import { CREDENTIALS_PATH, type LoadedPod } from './load.js';
import { FaultRig } from './rig.js';
import { nth } from '../harness/nth.js';

export interface SoakSample {
  atS: number;
  rssMb: number;
  fds: number;
  /** The program's own stats line for the interval: event loop delay p99 and max, ms. */
  loopP99Ms: number;
  loopMaxMs: number;
  answersPerS: number;
}

export interface SoakReport {
  seconds: number;
  samples: SoakSample[];
  /** Means of the first and last thirds after the warm-up (the first fifth). */
  first: { rssMb: number; fds: number; loopP99Ms: number };
  last: { rssMb: number; fds: number; loopP99Ms: number };
  credentialRequests: number;
  failures: number;
  leaks: number;
  expired: number;
  churnGenerations: number;
  churnAsked: number;
  churnLeaks: number;
  keepAliveAnswers: number;
  keepAliveErrors: number;
  passThrough: number;
  passThroughErrors: number;
  tokens: number;
  tokenErrors: number;
  examples: string[];
}

const LOAD_PODS: LoadedPod[] = [
  { ip: '127.0.0.41', role: 'soak-a' },
  { ip: '127.0.0.42', role: 'soak-b' },
  { ip: '127.0.0.43', role: 'soak-c' },
];
const KEEP_ALIVE_POD: LoadedPod = { ip: '127.0.0.44', role: 'soak-fast' };
const STATS_INTERVAL_S = 5;

/** Runs `loop` until `running()` is false, counting its outcomes. */
async function repeat(running: () => boolean, pauseMs: number, loop: () => Promise<boolean>, counts: { ok: number; errors: number }): Promise<void> {
  while (running()) {
    if (await loop().catch(() => false)) counts.ok++;
    else counts.errors++;
    await sleep(pauseMs);
  }
}

const mean = (values: number[]): number => (values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length);

export async function soak(seconds: number, seed: number): Promise<SoakReport> {
  const rig = await FaultRig.start({
    // Renewals fall inside the run: credentials are granted for 15 minutes and renewed
    // every few, so a long soak renews each role several times.
    lifetimeSeconds: 900,
    loadPods: [...LOAD_PODS, KEEP_ALIVE_POD],
    loadPauseMs: 20,
    flags: ['--stats-interval', `${STATS_INTERVAL_S}s`, '--log-format', 'json'],
  });
  try {
    let running = true;
    const on = (): boolean => running;
    const reuse = new AddressReuse(rig, 4, 11, seed);
    const keepAlive = { ok: 0, errors: 0 };
    const passThrough = { ok: 0, errors: 0 };
    const tokens = { ok: 0, errors: 0 };
    const fast = new Pool(`http://127.0.0.1:${rig.port}`, { connections: 2, localAddress: KEEP_ALIVE_POD.ip });
    const started = Date.now();
    rig.checker.startWindow();
    rig.load.start();
    const loops = [
      reuse.run(Number.MAX_SAFE_INTEGER),
      // A pod that keeps its connections and asks 200 times a second.
      repeat(
        on,
        5,
        async () => {
          const response = await fast.request({ method: 'GET', path: CREDENTIALS_PATH });
          return response.statusCode === 200 && (await response.body.text()) === KEEP_ALIVE_POD.role;
        },
        keepAlive,
      ),
      repeat(on, 50, async () => (await get(rig.port, nth(LOAD_PODS, 0).ip, '/latest/meta-data/instance-id')).status === 200, passThrough),
      repeat(
        on,
        200,
        async () => {
          const response = await fast.request({ method: 'PUT', path: '/latest/api/token', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
          await response.body.dump();
          return response.statusCode === 200;
        },
        tokens,
      ),
    ];

    const samples: SoakSample[] = [];
    let statsSeen = 0;
    while (Date.now() - started < seconds * 1000) {
      await sleep(STATS_INTERVAL_S * 1000);
      const stats = rig.program
        .log()
        .split('\n')
        .filter((line) => line.includes('"msg":"stats"'))
        .map((line) => JSON.parse(line) as { seconds: number; loopDelayMs: { p99: number; max: number }; credentialLatencyMs: { count: number } });
      const latest = stats.at(-1);
      if (latest === undefined || stats.length === statsSeen) continue;
      statsSeen = stats.length;
      const { rssKb, fds } = rig.footprint();
      samples.push({
        atS: Math.round((Date.now() - started) / 1000),
        rssMb: Math.round(rssKb / 102.4) / 10,
        fds,
        loopP99Ms: latest.loopDelayMs.p99,
        loopMaxMs: latest.loopDelayMs.max,
        answersPerS: Math.round(latest.credentialLatencyMs.count / latest.seconds),
      });
    }
    running = false;
    reuse.stop();
    await rig.load.stop();
    await Promise.all(loops);
    await fast.close();
    const load = rig.checker.startWindow();
    // The first fifth warms up (JIT, the heap growing to its working size); flatness is
    // judged between the first and last thirds of the rest.
    const steady = samples.filter((sample) => sample.atS > seconds / 5);
    const third = Math.max(1, Math.floor(steady.length / 3));
    const part = (list: SoakSample[]) => ({
      rssMb: mean(list.map((s) => s.rssMb)),
      fds: mean(list.map((s) => s.fds)),
      loopP99Ms: mean(list.map((s) => s.loopP99Ms)),
    });
    return {
      seconds,
      samples,
      first: part(steady.slice(0, third)),
      last: part(steady.slice(-third)),
      credentialRequests: load.requests,
      failures: load.failures,
      leaks: load.leaks + reuse.leaks.length,
      expired: load.expired,
      churnGenerations: reuse.generations,
      churnAsked: reuse.asked,
      churnLeaks: reuse.leaks.length,
      keepAliveAnswers: keepAlive.ok,
      keepAliveErrors: keepAlive.errors,
      passThrough: passThrough.ok,
      passThroughErrors: passThrough.errors,
      tokens: tokens.ok,
      tokenErrors: tokens.errors,
      examples: [...load.examples, ...reuse.leaks.slice(0, 4)],
    };
  } finally {
    await rig.stop();
  }
}
