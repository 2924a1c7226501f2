import t from 'tap';
import { normalizeBaseRoleArn, resolvePodRole, resolveRoleName, roleListingName, type RolePolicy } from '../../lib/credentials/roles.js';

const BASE = 'arn:aws:iam::123456789012:role/';

t.test('--base-role-arn is validated and gets a trailing slash', async (t) => {
  t.equal(normalizeBaseRoleArn('arn:aws:iam::123456789012:role'), BASE);
  t.equal(normalizeBaseRoleArn(BASE), BASE);
  t.equal(normalizeBaseRoleArn('arn:aws:iam::123456789012:role/team'), 'arn:aws:iam::123456789012:role/team/');
  t.equal(normalizeBaseRoleArn('arn:aws-cn:iam::123456789012:role/'), 'arn:aws-cn:iam::123456789012:role/');
  for (const bad of ['', 'arn:aws:iam::123456789012:user/', 'arn:aws:s3:::bucket', 'role/', 'arn:aws:iam::abc:role/']) {
    t.throws(() => normalizeBaseRoleArn(bad), /--base-role-arn/, `rejects ${JSON.stringify(bad)}`);
  }
});

interface Row {
  annotation: string | undefined;
  policy: RolePolicy;
  expect: string | { none: true } | { invalid: RegExp };
}

const withBase: RolePolicy = { baseRoleArn: BASE, defaultRoleArn: null };
const withDefault: RolePolicy = { baseRoleArn: BASE, defaultRoleArn: `${BASE}default` };
const noBase: RolePolicy = { baseRoleArn: null, defaultRoleArn: null };
const noBaseDefault: RolePolicy = { baseRoleArn: null, defaultRoleArn: 'arn:aws:iam::999999999999:role/fallback' };

const table: Row[] = [
  { annotation: 'app', policy: withBase, expect: `${BASE}app` },
  { annotation: 'team/app', policy: withBase, expect: `${BASE}team/app` },
  { annotation: '/team/app', policy: withBase, expect: `${BASE}team/app` },
  { annotation: 'app.v2@x', policy: withBase, expect: `${BASE}app.v2@x` },
  { annotation: 'my_role+=,', policy: withBase, expect: `${BASE}my_role+=,` },
  { annotation: '  app  ', policy: withBase, expect: `${BASE}app` },
  { annotation: 'arn:aws:iam::123456789012:role/app', policy: withBase, expect: 'arn:aws:iam::123456789012:role/app' },
  { annotation: 'arn:aws:iam::210987654321:role/other', policy: withBase, expect: 'arn:aws:iam::210987654321:role/other' },
  { annotation: 'arn:aws-cn:iam::123456789012:role/cn-app', policy: withBase, expect: 'arn:aws-cn:iam::123456789012:role/cn-app' },
  { annotation: 'arn:aws-us-gov:iam::123456789012:role/gov', policy: withBase, expect: 'arn:aws-us-gov:iam::123456789012:role/gov' },
  { annotation: 'arn:aws:iam::123456789012:role/path/to/app', policy: noBase, expect: 'arn:aws:iam::123456789012:role/path/to/app' },
  { annotation: 'ARN:aws:iam::123456789012:role/app', policy: withBase, expect: { invalid: /not a valid role ARN/ } },
  { annotation: 'arn:aws:iam::123456789012:user/bob', policy: withBase, expect: { invalid: /not a valid role ARN/ } },
  { annotation: 'arn:aws:iam::12345:role/short-account', policy: withBase, expect: { invalid: /not a valid role ARN/ } },
  { annotation: 'app', policy: noBase, expect: { invalid: /--base-role-arn is not set/ } },
  { annotation: 'bad name', policy: withBase, expect: { invalid: /not a valid role name/ } },
  { annotation: 'team//app', policy: withBase, expect: { invalid: /not a valid role name/ } },
  { annotation: 'app/', policy: withBase, expect: { invalid: /not a valid role name/ } },
  { annotation: '', policy: withBase, expect: { none: true } },
  { annotation: '   ', policy: withDefault, expect: { none: true } },
  { annotation: undefined, policy: withBase, expect: { none: true } },
  { annotation: undefined, policy: withDefault, expect: `${BASE}default` },
  { annotation: undefined, policy: noBaseDefault, expect: 'arn:aws:iam::999999999999:role/fallback' },
  { annotation: 'explicit', policy: withDefault, expect: `${BASE}explicit` },
];

t.test(`role resolution table (${table.length} cases)`, async (t) => {
  t.ok(table.length >= 20);
  for (const row of table) {
    const got = resolvePodRole(row.annotation, row.policy);
    const label = `${JSON.stringify(row.annotation)} with base ${row.policy.baseRoleArn ?? '-'} default ${row.policy.defaultRoleArn ?? '-'}`;
    if (typeof row.expect === 'string') t.same(got, { kind: 'role', arn: row.expect }, label);
    else if ('none' in row.expect) t.equal(got.kind, 'none', label);
    else {
      t.equal(got.kind, 'invalid', label);
      if (got.kind === 'invalid') t.match(got.reason, row.expect.invalid, label);
    }
  }
});

t.test('the role listing strips the base prefix, and shows other accounts in full', async (t) => {
  t.equal(roleListingName(`${BASE}app`, BASE), 'app');
  t.equal(roleListingName(`${BASE}team/app`, BASE), 'team/app');
  t.equal(roleListingName('arn:aws:iam::210987654321:role/other', BASE), 'arn:aws:iam::210987654321:role/other');
  t.equal(roleListingName(`${BASE}app`, null), `${BASE}app`);
});

t.test('names resolve the same way in allow-lists and flags', async (t) => {
  t.same(resolveRoleName('default', BASE), { kind: 'role', arn: `${BASE}default` });
});

t.test('roles longer than IAM allows are refused before any pattern runs, without echoing them', async (t) => {
  const refused = (value: string, reason: RegExp, why: string): void => {
    const resolution = resolveRoleName(value, BASE);
    t.equal(resolution.kind, 'invalid', why);
    t.match(resolution.kind === 'invalid' ? resolution.reason : '', reason, why);
    t.ok(resolution.kind !== 'invalid' || resolution.reason.length < 200, `${why}: a short reason`);
  };
  refused('a'.repeat(65), /^a role name of 65 characters is longer than IAM allows \(64\)$/, 'name over 64');
  refused(`${'p/'.repeat(256)}app`, /^a role path of 513 characters is longer than IAM allows \(512\)$/, 'path over 512');
  refused('x'.repeat(300_000), /^a role of 300000 characters is longer than IAM allows \(2048 for an ARN\)$/, 'a huge annotation');
  refused(`arn:aws:iam::123456789012:role/${'b'.repeat(65)}`, /role name of 65 characters/, 'an ARN whose name is over 64');
  t.same(resolveRoleName('a'.repeat(64), BASE), { kind: 'role', arn: `${BASE}${'a'.repeat(64)}` }, '64 is allowed');
  t.same(resolveRoleName(`${'p/'.repeat(254)}app`, BASE).kind, 'role', 'a path of 509 is allowed');
});
