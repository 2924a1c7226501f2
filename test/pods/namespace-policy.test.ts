import t from 'tap';
import {
  compileNamespacePolicy,
  globMatches,
  MAX_ALLOW_LIST_BYTES,
  MAX_ALLOW_LIST_PATTERNS,
  MAX_REGEXP_WORK,
  roleAllowed,
  tooCostly,
} from '../../lib/pods/namespace-policy.js';

const BASE = 'arn:aws:iam::123456789012:role/';
const allowed = (annotation: string | undefined, format: 'glob' | 'regexp', arn: string): boolean =>
  roleAllowed(compileNamespacePolicy(annotation, format, BASE), arn);

t.test('glob patterns match the whole ARN, with * as the only wildcard', async (t) => {
  const list = JSON.stringify(['app', 'team-*', 'arn:aws:iam::999999999999:role/cross']);
  t.ok(allowed(list, 'glob', `${BASE}app`));
  t.notOk(allowed(list, 'glob', `${BASE}app-admin`), 'no prefix match');
  t.ok(allowed(list, 'glob', `${BASE}team-a`));
  t.ok(allowed(list, 'glob', `${BASE}team-a/nested`), '* crosses / as in kube2iam');
  t.ok(allowed(list, 'glob', 'arn:aws:iam::999999999999:role/cross'), 'full ARNs for other accounts');
  t.notOk(allowed(list, 'glob', 'arn:aws:iam::999999999999:role/team-a'), 'bare patterns stay in the base account');
  t.ok(allowed(JSON.stringify(['*']), 'glob', `${BASE}anything`));
  t.notOk(allowed(JSON.stringify(['*']), 'glob', 'arn:aws:iam::999999999999:role/x'));
  t.notOk(allowed(JSON.stringify(['a.b']), 'glob', `${BASE}aXb`), 'dots are literal');
});

t.test('regexp patterns are anchored at both ends (kube2iam #341)', async (t) => {
  const list = JSON.stringify(['foo', 'team-[0-9]+', 'arn:aws:iam::999999999999:role/x.*']);
  t.ok(allowed(list, 'regexp', `${BASE}foo`));
  t.notOk(allowed(list, 'regexp', `${BASE}foobar`), 'unanchored kube2iam would allow this');
  t.notOk(allowed(list, 'regexp', `${BASE}foo-admin`));
  t.ok(allowed(list, 'regexp', `${BASE}team-42`));
  t.notOk(allowed(list, 'regexp', `${BASE}team-42x`));
  t.ok(allowed(list, 'regexp', 'arn:aws:iam::999999999999:role/xyz'));
  t.notOk(allowed(JSON.stringify(['.*']), 'regexp', 'arn:aws:iam::999999999999:role/x'), 'the base prefix is literal and fixed');
  t.notOk(allowed(JSON.stringify(['foo|.*']), 'regexp', 'arn:aws:iam::999999999999:role/x'), 'alternation stays inside the group');
});

t.test('missing, malformed or invalid allow-lists deny everything, and say why once', async (t) => {
  t.notOk(allowed(undefined, 'glob', `${BASE}app`));
  t.notOk(allowed('', 'glob', `${BASE}app`));
  t.notOk(allowed('[]', 'glob', `${BASE}app`));
  const malformed = compileNamespacePolicy('["app"', 'glob', BASE);
  t.equal(malformed.matchers, null);
  t.match(malformed.problem, /not valid JSON/);
  t.match(compileNamespacePolicy('{"a":1}', 'glob', BASE).problem, /not a JSON array of strings/);
  t.match(compileNamespacePolicy('[1]', 'glob', BASE).problem, /not a JSON array of strings/);
  const badRegexp = compileNamespacePolicy('["app", "(unclosed"]', 'regexp', BASE);
  t.equal(badRegexp.matchers, null, 'one bad pattern denies all');
  t.match(badRegexp.problem, /not a valid regular expression/);
});

t.test('globMatches places each literal part leftmost, without backtracking', async (t) => {
  const table: Array<[string, string, boolean]> = [
    ['abc', 'abc', true],
    ['abc', 'abcd', false],
    ['*', '', true],
    ['*', 'anything/at/all', true],
    ['a*', 'a', true],
    ['*c', 'abc', true],
    ['*c', 'abd', false],
    ['a*c', 'ac', true],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'acb', false],
    ['a*a', 'a', false],
    ['ab*ba', 'aba', false],
    ['*-prod-*-reader', 'x-prod-y-reader', true],
    ['*-prod-*-reader', 'x-prod-reader', false],
    ['*ab*ab*', 'abab', true],
    ['*ab*ab*', 'aba', false],
    ['a**b', 'ab', true],
  ];
  for (const [glob, text, expected] of table) t.equal(globMatches(glob.split('*'), text), expected, `${glob} ~ ${JSON.stringify(text)}`);
});

t.test('a hostile role against a many-star glob is decided at once (it used to backtrack for minutes)', async (t) => {
  const list = JSON.stringify(['*-prod-*-*-*-*-*-reader']);
  const hostile = `${BASE}${'-prod-'.repeat(330)}`;
  for (const format of ['glob', 'regexp'] as const) {
    const started = process.hrtime.bigint();
    t.notOk(allowed(format === 'glob' ? list : JSON.stringify(['.*-prod-.*-.*-.*-.*-.*-reader']), format, hostile), format);
    // Not a timing target (benchmarks measure that): a backtracking matcher would not return here at all.
    t.ok(process.hrtime.bigint() - started < 5_000_000_000n, `${format} decided`);
  }
});

t.test('regexps run on the linear-time engine: what RE2 cannot run in linear time is invalid, as kube2iam’s Go refuses it', async (t) => {
  for (const pattern of ['(a)\\1', '(?=app)app', '(?<!x)app', '(?i)app']) {
    const policy = compileNamespacePolicy(JSON.stringify([pattern]), 'regexp', BASE);
    t.equal(policy.matchers, null, pattern);
    t.match(policy.problem, /not a valid regular expression that runs in linear time/, pattern);
  }
  t.ok(allowed(JSON.stringify(['(app|web)-[0-9]{1,3}']), 'regexp', `${BASE}web-42`), 'alternation and counted repetition');
  t.ok(allowed(JSON.stringify(['(?s)team.*']), 'regexp', `${BASE}team-a`), 'Go’s leading (?s) flag');
  t.notOk(allowed(JSON.stringify(['(a+)+']), 'regexp', `${BASE}${'a'.repeat(2000)}!`), 'a nested quantifier is answered, not backtracked');
});

t.test('an allow-list larger than the caps is refused whole, saying so', async (t) => {
  const many = compileNamespacePolicy(JSON.stringify(Array.from({ length: MAX_ALLOW_LIST_PATTERNS + 1 }, (_, i) => `r${i}`)), 'glob', BASE);
  t.equal(many.matchers, null);
  t.match(many.problem, new RegExp(`has ${MAX_ALLOW_LIST_PATTERNS + 1} patterns, more than ${MAX_ALLOW_LIST_PATTERNS}`));
  const big = compileNamespacePolicy(JSON.stringify(['x'.repeat(MAX_ALLOW_LIST_BYTES)]), 'glob', BASE);
  t.equal(big.matchers, null);
  t.match(big.problem, /characters, more than 16384/);
});

t.test('a regexp match whose size times the role’s length is over the work bound is refused, not run', async (t) => {
  const everyday = compileNamespacePolicy(JSON.stringify(['team-a-.*', 'arn:aws:iam::123456789012:role/shared-(reader|writer)', 'batch/.*']), 'regexp', BASE);
  t.notOk(tooCostly(everyday, `${BASE}team-a-api`), 'an everyday allow-list and role');
  const big = compileNamespacePolicy(JSON.stringify(Array.from({ length: 100 }, (_, n) => `(.*-prod-)+(.*-)*x${n}.*reader`)), 'regexp', BASE);
  const role = `${BASE}${'-prod-/'.repeat(70)}reader`;
  t.ok((big.regexpSize ?? 0) * role.length > MAX_REGEXP_WORK);
  t.ok(tooCostly(big, role), 'a large regexp list against a long role');
  t.notOk(tooCostly(big, `${BASE}x1-reader`), 'the same list against a short role runs');
  t.notOk(
    tooCostly(compileNamespacePolicy(JSON.stringify(['*'.repeat(4000)]), 'glob', BASE), role),
    'globs have no such bound: they are matched without backtracking',
  );
});
