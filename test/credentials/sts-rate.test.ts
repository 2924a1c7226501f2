// How a node's STS rate follows the account's throttling: pure functions, table tests.

import t from 'tap';
import {
  AdaptiveBucket,
  type AdaptiveRatePolicy,
  BACKGROUND_RATE_POLICY,
  DEMAND_RATE_POLICY,
  type AdaptiveRateState,
  afterCall,
  afterSuccess,
  afterThrottling,
  initialRate,
  sendingRate,
  TokenBucket,
} from '../../lib/rate-limit.js';

// The background policy at 20/s: halved from what was sent, 10 s measured, doubling every minute.
const POLICY: AdaptiveRatePolicy = { ...BACKGROUND_RATE_POLICY, maxPerSecond: 20 };
/** The same, cut as calls pods wait for are: from the allowance, and from what was sent only in a storm. */
const DEMAND_CUTS: AdaptiveRatePolicy = {
  ...POLICY,
  fromSendingShare: DEMAND_RATE_POLICY.fromSendingShare,
  fromSendingCalls: DEMAND_RATE_POLICY.fromSendingCalls,
};
/** A node allowed `rate`, last changed and throttled then, that was sending `sending` calls/s (`refused` of them throttled) at `countedAt`. */
const state = (rate: number, changedAt: number, throttledAt: number, sending = rate, countedAt = changedAt, refused = 0): AdaptiveRateState => ({
  rate,
  changedAt,
  throttledAt,
  sent: (sending * POLICY.measureMs) / 1000,
  refused: (refused * POLICY.measureMs) / 1000,
  countedAt,
});
const near = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9;

t.test('a node starts at its maximum rate, having sent nothing', async (t) => {
  t.same(initialRate(POLICY, 7), state(20, 7, -Infinity, 0));
});

t.test('the sending rate: a steady rate reads as itself, and fades when the node stops', async (t) => {
  // calls per second, for how long, then quiet for how long; the rate read
  const cases: Array<[string, number, number, number, number]> = [
    ['4/s for a minute', 4, 60_000, 0, 4],
    ['0.5/s for two minutes', 0.5, 120_000, 0, 0.5],
    ['4/s, then quiet for one time constant: 4/e', 4, 60_000, 10_000, 4 / Math.E],
    ['quiet for a minute: next to nothing', 4, 60_000, 60_000, 4 * Math.exp(-6)],
  ];
  for (const [name, perSecond, forMs, quietMs, reads] of cases) {
    let s = initialRate(POLICY, 0);
    const every = 1000 / perSecond;
    for (let at = every; at <= forMs; at += every) s = afterCall(s, at, POLICY);
    const rate = sendingRate(s, forMs + quietMs, POLICY);
    // Read just after a call, which counts in full: one call's weight over.
    t.ok(Math.abs(rate - reads) < reads * 0.03 + 1000 / POLICY.measureMs, `${name}: reads ${rate.toFixed(3)}, expected ${reads.toFixed(3)}`);
  }
});

t.test('throttling halves what the node was sending (calls no pod waits for), once per signal, never under the minimum', async (t) => {
  // state before, when the throttled call was sent, when it came back, state after
  const cases: Array<[string, AdaptiveRateState, number, number, AdaptiveRateState]> = [
    ['sending at its allowance: halved', state(20, 0, -Infinity, 20, 1000), 990, 1000, state(10, 1000, 1000)],
    ['sending a tenth of it: half of what it sent', state(20, 0, -Infinity, 2, 1000), 990, 1000, state(1, 1000, 1000)],
    ['what it sent a while ago counts less', state(20, 0, -Infinity, 2, 0), 9990, 10_000, state(1 / Math.E, 10_000, 10_000)],
    ['a call sent before the last cut: the same signal', state(10, 1000, 1000), 990, 1400, state(10, 1000, 1000)],
    ['a call sent after it: cut again', state(10, 1000, 1000, 10, 1100), 1050, 1100, state(5, 1100, 1100)],
    ['a slow node sent before its cut, seconds ago: the same signal', state(0.5, 1000, 1000), 900, 2900, state(0.5, 1000, 1000)],
    ['never under the minimum', state(0.015, 0, 0, 0.015, 100_000), 99_990, 100_000, state(0.01, 100_000, 100_000)],
    ['a node that sent nothing: the minimum', state(20, 0, -Infinity, 0), 990, 1000, state(0.01, 1000, 1000)],
  ];
  for (const [name, before, sentAt, now, after] of cases) {
    const got = afterThrottling(before, sentAt, now, POLICY);
    t.ok(near(got.rate, after.rate), `${name}: rate ${got.rate}, expected ${after.rate}`);
    t.same([got.changedAt, got.throttledAt], [after.changedAt, after.throttledAt], `${name}: times`);
  }
});

t.test('for calls pods wait for, throttling halves the allowance, and in a storm what the node sent', async (t) => {
  const policy = DEMAND_CUTS;
  // allowed, sending, throttled of it (calls/s over the 10 s measured), the rate after
  const cases: Array<[string, number, number, number, number]> = [
    ['sending a tenth of the allowance', 20, 2, 0, 10],
    ['sending nothing', 20, 0, 0, 10],
    ['sending at the allowance', 4, 4, 0, 2],
    ['a storm: 91 of 100 calls throttled, halved from what was sent', 20, 10, 9, 5],
    ['fewer than half throttled: the allowance halved', 20, 10, 4, 10],
    ['a few calls, all throttled: too few to tell a storm, the allowance halved', 20, 0.3, 0.3, 10],
  ];
  for (const [name, allowed, sending, refused, after] of cases)
    t.ok(near(afterThrottling(state(allowed, 0, -Infinity, sending, 1000, refused), 990, 1000, policy).rate, after), `${name}: ${after}/s`);
});

t.test('for calls pods wait for, the cut is a half while they wait for one key, a quarter while they wait for several', async (t) => {
  const policy: AdaptiveRatePolicy = { ...DEMAND_RATE_POLICY, maxPerSecond: 20 };
  // keys pods wait for when the throttling comes, the rate after (from 20/s, not a storm)
  const cases: Array<[string, number, number]> = [
    ['none (a call no pod waits for any more)', 0, 10],
    ["one: a new workload's pods retrying its key", 1, 10],
    ['two: each a call the node has still to make', 2, 5],
    ['a cold start: every key of the node', 8, 5],
  ];
  for (const [name, keysWaiting, after] of cases)
    t.ok(near(afterThrottling(state(20, 0, -Infinity, 20, 1000), 990, 1000, policy, keysWaiting).rate, after), `${name}: ${after}/s`);
  const bucket = new AdaptiveBucket(policy, 2, 0, () => 0);
  bucket.throttled(990, 1000, 3);
  t.equal(bucket.rate, 5, 'the bucket passes the keys waiting on');
  t.equal(BACKGROUND_RATE_POLICY.backlogDecrease, BACKGROUND_RATE_POLICY.decrease, 'calls no pod waits for: always halved');
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

t.test('while a fifth or more of the measured calls were throttled, success holds the rate, and growth counts from then', async (t) => {
  // sending, throttled of it (calls/s), when the call succeeded; the rate after, and from when it grows
  const cases: Array<[string, number, number, number, number, number]> = [
    ['half throttled: held', 2, 1, 30_000, 2, 30_000],
    ['a fifth throttled: held', 2, 0.4 + 1e-9, 30_000, 2, 30_000],
    ['a tenth throttled: grown by the half period since the cut', 2, 0.2, 30_000, 2 * Math.SQRT2, 30_000],
    ['none throttled: grown', 2, 0, 60_000, 4, 60_000],
  ];
  for (const [name, sending, refused, now, rate, changedAt] of cases) {
    const got = afterSuccess(state(2, 0, 0, sending, 0, refused), now, POLICY);
    t.ok(near(got.rate, rate), `${name}: ${got.rate}, expected ${rate}`);
    t.equal(got.changedAt, changedAt, `${name}: grows from ${changedAt}`);
  }
  // Held at 30 s, then quiet: a period later it has doubled from the held rate, not from the cut.
  const held = afterSuccess(state(2, 0, 0, 2, 0, 1), 30_000, POLICY);
  const quiet = { ...held, sent: 100, refused: 0, countedAt: 30_000 };
  t.ok(near(afterSuccess(quiet, 90_000, POLICY).rate, 4), 'doubled over the period after it was held');
});

t.test('a fleet of nodes each halving on throttling ends between half the limit and the limit, none of them knowing it', async (t) => {
  // 5,000 nodes at 20/s against 100/s: while the fleet asks more, every node is throttled.
  const limit = 100;
  let nodes = Array.from({ length: 5000 }, () => initialRate(POLICY, 0));
  let now = 0;
  const total = (): number => nodes.reduce((sum, n) => sum + n.rate, 0);
  while (total() > limit && now < 120_000) {
    now += 500;
    // Each node sends all its rate allows, and a call sent after its last cut is throttled.
    nodes = nodes.map((n) => afterThrottling({ ...n, sent: (n.rate * POLICY.measureMs) / 1000, refused: 0, countedAt: now }, now - 10, now, POLICY));
  }
  t.ok(total() <= limit && total() > limit / 2, `${total().toFixed(1)}/s after ${now / 1000} s of cuts`);
  // A second of successes later the fleet has grown by about 1%, not past the limit at once.
  nodes = nodes.map((n) => afterSuccess(n, now + 1000, POLICY));
  t.ok(total() <= limit * 1.02, `one second on: ${total().toFixed(1)}/s`);
});

t.test('after a cut the next call may go at a random point of the new call interval, so nodes throttled together do not call again together', async (t) => {
  const policy = DEMAND_CUTS;
  // the random draw, when the next token is there after a cut from 20/s to 10/s at 1000
  const cases: Array<[number, number]> = [
    [0, 1100],
    [0.25, 1075],
    [0.9, 1010],
  ];
  for (const [draw, at] of cases) {
    const bucket = new AdaptiveBucket(policy, 2, 0, () => draw);
    bucket.throttled(990, 1000);
    t.equal(bucket.rate, 10);
    t.equal(bucket.nextAt(1000), at, `drawn ${draw}: the next token at ${at}`);
    // A node sending all its tokens allow (the storm's case) is spread the same way, not held a whole interval.
    const spent = new AdaptiveBucket(policy, 2, 0, () => draw);
    while (spent.take(1000));
    spent.throttled(990, 1000);
    t.equal(spent.nextAt(1000), at, `drawn ${draw}, every token spent: the next at ${at}`);
  }
  const bucket = new AdaptiveBucket(policy, 2, 0, () => 0);
  bucket.succeeded(1000);
  t.equal(bucket.nextAt(1000), 1000, 'a success at the maximum keeps the burst');
});

t.test('a new rate keeps the tokens under the new burst only', async (t) => {
  const bucket = new TokenBucket(10, 20, 0);
  bucket.setRate(1, 2, 0);
  t.ok(bucket.take(0) && bucket.take(0));
  t.notOk(bucket.take(0), 'the burst of 2 is spent');
  t.equal(bucket.nextAt(0), 1000, 'one token a second');
});
