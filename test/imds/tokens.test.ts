import t from 'tap';
import { parseTokenTtl, TokenRegistry } from '../../lib/imds/tokens.js';

t.test('token TTLs: integers from 1 to 21600 seconds, anything else refused', async (t) => {
  for (const [text, ttl] of [['1', 1], ['21600', 21600], [' 300 ', 300], ['0', null], ['21601', null], ['-5', null], ['1.5', null], ['1e3', null], ['', null], [undefined, null], ['999999', null]] as const) {
    t.equal(parseTokenTtl(text), ttl, JSON.stringify(text));
  }
});

t.test('a token is valid only for the address it was issued to, until it expires', async (t) => {
  const tokens = new TokenRegistry();
  tokens.issued('10.0.0.1', 'tok', 10, 1_000);
  t.ok(tokens.valid('10.0.0.1', 'tok', 1_000));
  t.ok(tokens.valid('10.0.0.1', 'tok', 10_999));
  t.notOk(tokens.valid('10.0.0.1', 'tok', 11_000), 'expired');
  t.notOk(tokens.valid('10.0.0.2', 'tok', 2_000), 'another address');
  t.notOk(tokens.valid('10.0.0.1', 'other', 2_000));
  t.notOk(tokens.valid('10.0.0.1', undefined, 2_000));
  t.notOk(tokens.valid('10.0.0.1', '', 2_000));
});

t.test('a pod that floods token requests evicts only its own tokens', async (t) => {
  const tokens = new TokenRegistry(100, 8);
  tokens.issued('10.0.0.2', 'victim', 21_600, 0);
  for (let n = 0; n < 1_000; n++) tokens.issued('10.0.0.1', `flood-${n}`, 21_600, 0);
  t.ok(tokens.valid('10.0.0.2', 'victim', 1), 'the other pod’s token survives');
  t.ok(tokens.valid('10.0.0.1', 'flood-999', 1), 'the flooder keeps its newest');
  t.notOk(tokens.valid('10.0.0.1', 'flood-0', 1), 'and loses its oldest');
  t.equal(tokens.size, 2);
});
