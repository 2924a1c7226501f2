// The role a pod gets, as a table: its annotation, its namespace's allow-list and the
// node's defaults in, the decision and its reason out (a pure function: no index, no STS).

import t from 'tap';
import { compileNamespacePolicy, type NamespacePolicy } from '../../lib/pods/namespace-policy.js';
import { decideRole, type RoleDecision, type RoleDefaults, type ServiceAccountRoles } from '../../lib/pods/role-decision.js';

const BASE = 'arn:aws:iam::123456789012:role/';
const glob = (list: string[] | string): NamespacePolicy => compileNamespacePolicy(typeof list === 'string' ? list : JSON.stringify(list), 'glob', BASE);
const regexp = (list: string[]): NamespacePolicy => compileNamespacePolicy(JSON.stringify(list), 'regexp', BASE);
const open: RoleDefaults = { policy: { baseRoleArn: BASE, defaultRoleArn: null }, restricted: false, serviceAccountRoles: 'off' };
const restricted: RoleDefaults = { policy: { baseRoleArn: BASE, defaultRoleArn: `${BASE}default` }, restricted: true, serviceAccountRoles: 'off' };

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
    t.same(decideRole({ namespace: 'shop', role }, undefined, namespacePolicy, defaults), expected, name);
});

t.test("a ServiceAccount's role, by --service-account-roles", async (t) => {
  const IRSA = 'arn:aws:iam::123456789012:role/irsa';
  // [name, mode, pod annotation, ServiceAccount annotation, namespace allow-list, expected]
  const cases: Array<[string, ServiceAccountRoles, string | undefined, string | undefined, NamespacePolicy | undefined, RoleDecision]> = [
    ['off: the ServiceAccount is not read', 'off', undefined, IRSA, undefined, { kind: 'role', arn: `${BASE}default` }],
    ['fallback: a pod without an annotation takes its ServiceAccount’s', 'fallback', undefined, IRSA, undefined, { kind: 'role', arn: IRSA }],
    ['fallback: the pod’s own annotation wins', 'fallback', 'app', IRSA, undefined, { kind: 'role', arn: `${BASE}app` }],
    [
      'fallback: an empty pod annotation is the pod’s choice, not a gap',
      'fallback',
      ' ',
      IRSA,
      undefined,
      { kind: 'refused', cause: 'none', reason: 'empty role annotation' },
    ],
    ['fallback: neither, the default', 'fallback', undefined, undefined, undefined, { kind: 'role', arn: `${BASE}default` }],
    ['override: the ServiceAccount’s wins', 'override', 'app', IRSA, undefined, { kind: 'role', arn: IRSA }],
    ['override: without one, the pod’s', 'override', 'app', undefined, undefined, { kind: 'role', arn: `${BASE}app` }],
    ['a role name (not an ARN) on the ServiceAccount takes the base ARN', 'override', undefined, 'named', undefined, { kind: 'role', arn: `${BASE}named` }],
    [
      'the namespace allow-list applies to a ServiceAccount’s role as to a pod’s',
      'fallback',
      undefined,
      IRSA,
      glob(['team-a-*']),
      { kind: 'refused', cause: 'namespace', arn: IRSA, reason: `role ${IRSA} is not allowed in namespace shop` },
    ],
    [
      'an unusable ServiceAccount annotation is refused, not skipped',
      'override',
      'app',
      'not a role!',
      undefined,
      { kind: 'refused', cause: 'invalid', reason: '"not a role!" is not a valid role name' },
    ],
  ];
  for (const [name, mode, role, serviceAccountRole, namespacePolicy, expected] of cases)
    t.same(
      decideRole({ namespace: 'shop', role }, serviceAccountRole, namespacePolicy, {
        policy: restricted.policy,
        restricted: namespacePolicy !== undefined,
        serviceAccountRoles: mode,
      }),
      expected,
      name,
    );
});
