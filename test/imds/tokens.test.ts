import t from 'tap';
import { parseTokenTtl, TOKEN_REQUEST_LIMITS, TokenRegistry } from '../../lib/imds/tokens.js';

t.test('token TTLs: integers from 1 to 21600 seconds, anything else refused', async (t) => {
  for (const [text, ttl] of [
    ['1', 1],
    ['21600', 21600],
    [' 300 ', 300],
    ['0', null],
    ['21601', null],
    ['-5', null],
    ['1.5', null],
    ['1e3', null],
    ['', null],
    [undefined, null],
    ['999999', null],
  ] as const) {
    t.equal(parseTokenTtl(text), ttl, JSON.stringify(text));
  }
});

t.test('a token issued here is valid only for the address it was issued to, until its TTL ends', async (t) => {
  const tokens = new TokenRegistry();
  const token = tokens.issue('10.0.0.1', 10, 1_000) ?? '';
  t.match(token, /^[A-Za-z0-9+/]{56}$/, 'opaque, the length of an IMDS token');
  t.ok(tokens.valid('10.0.0.1', token, 1_000));
  t.ok(tokens.valid('10.0.0.1', token, 10_999));
  t.notOk(tokens.valid('10.0.0.1', token, 11_000), 'expired');
  t.notOk(tokens.valid('10.0.0.2', token, 2_000), 'another address');
  t.notOk(tokens.valid('10.0.0.1', 'other', 2_000));
  t.notOk(tokens.valid('10.0.0.1', undefined, 2_000));
  t.notOk(tokens.valid('10.0.0.1', '', 2_000));
  t.not(tokens.issue('10.0.0.1', 10, 1_000), token, 'every token is new');
});

t.test('a pod that floods token requests evicts only its own tokens and is slowed alone', async (t) => {
  const tokens = new TokenRegistry(100, 8);
  const victim = tokens.issue('10.0.0.2', 21_600, 0) ?? '';
  const flood: Array<string | null> = [];
  for (let n = 0; n < 1_000; n++) flood.push(tokens.issue('10.0.0.1', 21_600, 0));
  t.ok(tokens.valid('10.0.0.2', victim, 1), 'the other pod’s token survives');
  const issued = flood.filter((token): token is string => token !== null);
  t.equal(issued.length, TOKEN_REQUEST_LIMITS.burst, 'past its burst the flooder is refused (429)');
  t.ok(tokens.valid('10.0.0.1', issued.at(-1), 1), 'the flooder keeps its newest');
  t.notOk(tokens.valid('10.0.0.1', issued[0], 1), 'and loses its oldest');
  t.ok(tokens.issue('10.0.0.2', 60, 0), 'the other pod is still issued tokens at once');
  t.ok(tokens.issue('10.0.0.1', 60, 1_000), 'the flooder again a second later');
  t.equal(tokens.size, 2);
});
