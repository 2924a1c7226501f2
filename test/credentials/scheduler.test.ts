import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { RefreshScheduler, type Scheduled } from '../../lib/credentials/scheduler.js';
import { backoffDelay, TokenBucket } from '../../lib/rate-limit.js';

interface Item extends Scheduled {
  name: string;
}
const item = (name: string): Item => ({ name, dueAt: 0, heapIndex: -1 });

t.test('items fire in due order from one heap, and cancelled ones never fire', async (t) => {
  const fired: string[] = [];
  const scheduler = new RefreshScheduler<Item>((i) => fired.push(i.name));
  t.teardown(() => scheduler.close());
  const now = Date.now();
  const items = ['e', 'b', 'd', 'a', 'c', 'x'].map(item);
  const offsets: Record<string, number> = { a: 10, b: 20, c: 30, d: 40, e: 50, x: 25 };
  for (const i of items) scheduler.schedule(i, now + (offsets[i.name] as number));
  t.equal(scheduler.size, 6);
  scheduler.cancel(items[5] as Item);
  scheduler.schedule(items[0] as Item, now + 5); // e moves to the front
  await sleep(120);
  t.same(fired, ['e', 'a', 'b', 'c', 'd']);
  t.equal(scheduler.size, 0);
});

t.test('ten thousand items keep heap order', async (t) => {
  const fired: number[] = [];
  const scheduler = new RefreshScheduler<Item & { at: number }>((i) => fired.push(i.at));
  t.teardown(() => scheduler.close());
  const now = Date.now();
  const all = Array.from({ length: 10_000 }, (_, n) => ({ ...item(String(n)), at: now + ((n * 7919) % 100) }));
  for (const i of all) scheduler.schedule(i, i.at);
  for (let n = 0; n < all.length; n += 3) scheduler.cancel(all[n] as Item & { at: number });
  await sleep(200);
  t.equal(fired.length, all.length - Math.ceil(all.length / 3));
  t.ok(
    fired.every((at, n) => n === 0 || (fired[n - 1] as number) <= at),
    'fired in due order',
  );
});

t.test('the token bucket allows a burst, then the rate', async (t) => {
  const bucket = new TokenBucket(10, 3, 0);
  t.ok(bucket.take(0) && bucket.take(0) && bucket.take(0));
  t.notOk(bucket.take(0));
  t.equal(bucket.nextAt(0), 100);
  t.ok(bucket.take(100));
  t.notOk(bucket.take(150));
});

t.test('back-off grows exponentially to its cap, with jitter in the upper half', async (t) => {
  // failures in a row, the random draw, the delay (base 1 s, cap 60 s)
  const cases: Array<[number, number, number]> = [
    [1, 0, 500],
    [1, 1, 1000],
    [4, 1, 8000],
    [20, 1, 60_000],
    [20, 0, 30_000],
  ];
  for (const [failures, draw, delay] of cases)
    t.equal(
      backoffDelay(failures, 1000, 60_000, () => draw),
      delay,
      `${failures} failures, draw ${draw}`,
    );
});
