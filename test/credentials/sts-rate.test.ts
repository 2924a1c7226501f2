// How a node's STS rate follows the account's throttling: pure functions, table tests.

import t from 'tap';
import { type AdaptiveRatePolicy, type AdaptiveRateState, afterSuccess, afterThrottling, initialRate, TokenBucket } from '../../lib/rate-limit.js';

const POLICY: AdaptiveRatePolicy = { maxPerSecond: 20, minPerSecond: 0.01, decrease: 0.5, holdMs: 500, doublingMs: 60_000 };
const state = (rate: number, changedAt: number, throttledAt: number): AdaptiveRateState => ({ rate, changedAt, throttledAt });
const near = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9;

t.test('a node starts at its maximum rate', async (t) => {
  t.same(initialRate(POLICY, 7), state(20, 7, -Infinity));
});

t.test('throttling halves the rate, once per hold or call interval, never under the minimum', async (t) => {
  // state before, when, state after
  const cases: Array<[string, AdaptiveRateState, number, AdaptiveRateState]> = [
    ['first throttling', state(20, 0, -Infinity), 1000, state(10, 1000, 1000)],
    ['within the hold: the same signal', state(10, 1000, 1000), 1400, state(10, 1000, 1000)],
    ['after the hold: cut again', state(10, 1000, 1000), 1500, state(5, 1500, 1500)],
    ['a slow node: not before its next call at the new rate can come back', state(0.5, 1000, 1000), 2900, state(0.5, 1000, 1000)],
    ['a slow node, after that', state(0.5, 1000, 1000), 3000, state(0.25, 3000, 3000)],
    ['never under the minimum', state(0.015, 0, 0), 100_000, state(0.01, 100_000, 100_000)],
    ['the minimum holds', state(0.01, 0, 0), 100_000, state(0.01, 100_000, 100_000)],
  ];
  for (const [name, before, now, after] of cases) t.same(afterThrottling(before, now, POLICY), after, name);
});

t.test('success regains the rate slowly: doubling every period, up to the maximum', async (t) => {
  // state before, when the call succeeded, the rate after
  const cases: Array<[string, AdaptiveRateState, number, number]> = [
    ['one period after the cut: doubled', state(2, 0, 0), 60_000, 4],
    ['half a period: by the square root of two', state(2, 0, 0), 30_000, 2 * Math.SQRT2],
    ['at once: unchanged', state(2, 1000, 1000), 1000, 2],
    ['three periods: eight times', state(2, 0, 0), 180_000, 16],
    ['never over the maximum', state(2, 0, 0), 600_000, 20],
    ['at the maximum: held', state(20, 0, -Infinity), 5000, 20],
  ];
  for (const [name, before, now, rate] of cases) t.ok(near(afterSuccess(before, now, POLICY).rate, rate), `${name}: ${rate}`);
});

t.test('a fleet of nodes each halving on throttling ends between half the limit and the limit, none of them knowing it', async (t) => {
  // 5,000 nodes at 20/s against 100/s: while the fleet asks more, every node is throttled.
  const limit = 100;
  let nodes = Array.from({ length: 5000 }, () => initialRate(POLICY, 0));
  let now = 0;
  const total = (): number => nodes.reduce((sum, n) => sum + n.rate, 0);
  while (total() > limit && now < 120_000) {
    now += POLICY.holdMs;
    nodes = nodes.map((n) => afterThrottling(n, now, POLICY));
  }
  t.ok(total() <= limit && total() > limit / 2, `${total().toFixed(1)}/s after ${now / 1000} s of cuts`);
  // A second of successes later the fleet has grown by about 1%, not past the limit at once.
  nodes = nodes.map((n) => afterSuccess(n, now + 1000, POLICY));
  t.ok(total() <= limit * 1.02, `one second on: ${total().toFixed(1)}/s`);
});

t.test('a new rate keeps the tokens under the new burst only', async (t) => {
  const bucket = new TokenBucket(10, 20, 0);
  bucket.setRate(1, 2, 0);
  t.ok(bucket.take(0) && bucket.take(0));
  t.notOk(bucket.take(0), 'the burst of 2 is spent');
  t.equal(bucket.nextAt(0), 1000, 'one token a second');
});
