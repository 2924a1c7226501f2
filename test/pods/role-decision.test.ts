// The role a pod gets, as a table: its annotation, its namespace's allow-list and the
// node's defaults in, the decision and its reason out (a pure function: no index, no STS).

import t from 'tap';
import { compileNamespacePolicy, type NamespacePolicy } from '../../lib/pods/namespace-policy.js';
import { decideRole, type RoleDecision, type RoleDefaults } from '../../lib/pods/role-decision.js';

const BASE = 'arn:aws:iam::123456789012:role/';
const glob = (list: string[] | string): NamespacePolicy => compileNamespacePolicy(typeof list === 'string' ? list : JSON.stringify(list), 'glob', BASE);
const regexp = (list: string[]): NamespacePolicy => compileNamespacePolicy(JSON.stringify(list), 'regexp', BASE);
const open: RoleDefaults = { policy: { baseRoleArn: BASE, defaultRoleArn: null }, restricted: false };
const restricted: RoleDefaults = { policy: { baseRoleArn: BASE, defaultRoleArn: `${BASE}default` }, restricted: true };

t.test('decisions', async (t) => {
  const cases: Array<[string, string | undefined, NamespacePolicy | undefined, RoleDefaults, RoleDecision]> = [
    ['a role name, no restrictions', 'app', undefined, open, { kind: 'role', arn: `${BASE}app` }],
    ['a full ARN of another account', 'arn:aws:iam::210987654321:role/x', undefined, open, { kind: 'role', arn: 'arn:aws:iam::210987654321:role/x' }],
    ['no annotation and no default', undefined, undefined, open, { kind: 'refused', cause: 'none', reason: 'no role annotation and no default role' }],
    ['no annotation: the default role', undefined, undefined, restricted, { kind: 'role', arn: `${BASE}default` }],
    [
      'an empty annotation is no role (kube2iam: the bare base ARN)',
      '  ',
      undefined,
      restricted,
      { kind: 'refused', cause: 'none', reason: 'empty role annotation' },
    ],
    [
      'an annotation that names no valid role',
      'bad role!',
      undefined,
      open,
      { kind: 'refused', cause: 'invalid', reason: '"bad role!" is not a valid role name' },
    ],
    ['allowed by a glob', 'team-a-api', glob(['team-a-*']), restricted, { kind: 'role', arn: `${BASE}team-a-api` }],
    [
      'not allowed by the glob',
      'team-b-api',
      glob(['team-a-*']),
      restricted,
      { kind: 'refused', cause: 'namespace', arn: `${BASE}team-b-api`, reason: `role ${BASE}team-b-api is not allowed in namespace shop` },
    ],
    [
      'a namespace without an allow-list allows nothing',
      'app',
      undefined,
      restricted,
      { kind: 'refused', cause: 'namespace', arn: `${BASE}app`, reason: `role ${BASE}app is not allowed in namespace shop` },
    ],
    [
      'an allow-list that does not parse allows nothing',
      'app',
      glob('[not json'),
      restricted,
      { kind: 'refused', cause: 'namespace', arn: `${BASE}app`, reason: `role ${BASE}app is not allowed in namespace shop` },
    ],
    ['the default role is exempt from the allow-list', 'default', glob(['team-a-*']), restricted, { kind: 'role', arn: `${BASE}default` }],
    ['and so is no annotation under a restrictive list', undefined, glob([]), restricted, { kind: 'role', arn: `${BASE}default` }],
    [
      'a regexp allow-list matches the whole ARN',
      'prod-admin',
      regexp([`${BASE}prod`]),
      restricted,
      { kind: 'refused', cause: 'namespace', arn: `${BASE}prod-admin`, reason: `role ${BASE}prod-admin is not allowed in namespace shop` },
    ],
    ['restrictions off: any namespace allows', 'app', glob([]), open, { kind: 'role', arn: `${BASE}app` }],
  ];
  for (const [name, role, namespacePolicy, defaults, expected] of cases)
    t.same(decideRole({ namespace: 'shop', role }, namespacePolicy, defaults), expected, name);
});
