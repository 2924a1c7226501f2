// When credentials are renewed and until when they are served, as a table: the grant STS
// gave, the policy, and the expected times (pure functions: no STS, no timers).

import t from 'tap';
import { renewalAfterHandover, renewalAt, servableUntil, type RenewalPolicy } from '../../lib/credentials/renewal.js';

const S = 1_000;
const M = 60 * S;
const NOW = 1_000_000_000;
const POLICY: RenewalPolicy = { sessionTtlMs: 15 * M, staleMarginMs: 60 * S, jitter: 0.1 };

t.test('credentials are served until the stale margin before they expire', async (t) => {
  t.equal(servableUntil(NOW + 30 * M, 60 * S), NOW + 29 * M);
  t.equal(servableUntil(NOW + 30 * S, 60 * S), NOW - 30 * S, 'a grant shorter than the margin is never served');
});

t.test('renewal points, by the grant STS gave', async (t) => {
  const cases: Array<[string, number, number, number]> = [
    // name, granted for, spread, renewal point after NOW
    ['the asked-for grant (twice the TTL): when the TTL remains', 30 * M, 0, 15 * M],
    ['a longer grant: still when the TTL remains', 60 * M, 0, 45 * M],
    ['a grant under twice the TTL (a role with a shorter maximum session): at half of it', 10 * M, 0, 5 * M],
    ['a grant under twice the stale margin: halfway to the end of serving, before it', 90 * S, 0, 15 * S],
    ['a grant shorter than the margin (never served): at half of it', 30 * S, 0, 15 * S],
    ['the full spread moves the point a tenth of the TTL earlier', 30 * M, 1, 15 * M - 0.1 * 15 * M],
    ['half the spread, half as far', 30 * M, 0.5, 15 * M - 0.05 * 15 * M],
    ['on a short grant the spread is a tenth of the time left, not of the TTL', 10 * M, 1, 5 * M - 0.1 * 5 * M],
  ];
  for (const [name, granted, spread, after] of cases) {
    const at = renewalAt(NOW, NOW + granted, POLICY, spread);
    t.equal(at - NOW, after, name);
    const until = servableUntil(NOW + granted, POLICY.staleMarginMs);
    if (until > NOW) t.ok(at < until, `${name}: renewed before serving stops`);
    t.ok(at > NOW, `${name}: in the future`);
  }
});

t.test('credentials taken over from the previous proxy are renewed at its point, or soon when that has passed', async (t) => {
  const WINDOW = 60 * S;
  const cases: Array<[string, number, number, number, number]> = [
    // name, issued before NOW, granted for (from issue), spread, renewal point after NOW
    ['issued 5 minutes before: the TTL still remains in 10 minutes, as the previous proxy had it', 5 * M, 30 * M, 0, 10 * M],
    ['with the spread, earlier by it (as that proxy would have)', 5 * M, 30 * M, 1, 10 * M - 0.1 * 15 * M],
    ['issued 20 minutes before: its point has passed, renewed within the window', 20 * M, 30 * M, 1, WINDOW],
    ['its point has passed, no spread: at once', 20 * M, 30 * M, 0, 0],
    ['about to stop being served: before half the time left to serve it', 28 * M, 30 * M, 1, (2 * M - 60 * S) / 2],
    ['issued in the future (a clock ahead on the old proxy): from now, when the TTL remains', -1 * M, 30 * M, 0, 16 * M],
  ];
  for (const [name, ago, granted, spread, after] of cases) {
    const issuedAt = NOW - ago;
    t.equal(renewalAfterHandover(NOW, issuedAt, issuedAt + granted, POLICY, spread, WINDOW) - NOW, after, name);
  }
});
