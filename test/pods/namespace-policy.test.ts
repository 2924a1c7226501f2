import t from 'tap';
import { compileNamespacePolicy, roleAllowed } from '../../lib/pods/namespace-policy.js';

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
