// Who a token belongs to, as tables: what its own claims refuse before any review
// (screenToken), and what the API server's TokenReview answer means (reviewVerdict).
// Pure functions: the real API server's answers are in test/container-credentials.

import t from 'tap';
import { MAX_TOKEN_BYTES, readServiceAccountToken } from '../../lib/pods/service-account-token.js';
import { reviewVerdict, screenToken, type TokenReviewStatus, type TokenVerdict } from '../../lib/pods/token-review.js';

const NOW = Date.parse('2026-12-04T12:00:00Z');
const S = NOW / 1000;
const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const jwt = (claims: unknown): string => `${part({ alg: 'RS256' })}.${part(claims)}.c2lnbmF0dXJl`;
const bound = {
  aud: ['kube2iam'],
  exp: S + 600,
  nbf: S - 60,
  'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'web', uid: 'sa-1' }, pod: { name: 'web-0', uid: 'pod-1' } },
};

t.test('screening a token by its own claims', async (t) => {
  const cases: Array<[string, string, string | 'claims']> = [
    ['a pod-bound token for this audience goes to review', jwt(bound), 'claims'],
    ['a single audience as a string', jwt({ ...bound, aud: 'kube2iam' }), 'claims'],
    ['not three parts', 'abc.def', '401 not a JSON web token (three base64url parts)'],
    ['not base64url', 'a.b+c.d', '401 not a JSON web token (three base64url parts)'],
    ['a payload that is not JSON', `${part({})}.${Buffer.from('{x').toString('base64url')}.sig`, '401 the token payload is not JSON'],
    ['a payload that is JSON but no object', jwt(7), '401 the token payload is not a JSON object'],
    ['no Kubernetes claims (another issuer)', jwt({ aud: ['kube2iam'], exp: S + 600 }), '401 not a Kubernetes service account token'],
    ['no expiry', jwt({ ...bound, exp: undefined }), '401 the token has no expiry'],
    ['expired', jwt({ ...bound, exp: S - 1 }), '401 the token has expired'],
    ['not valid for another hour', jwt({ ...bound, nbf: S + 3600 }), '401 the token is not valid yet'],
    ['within the clock skew allowed', jwt({ ...bound, nbf: S + 30 }), 'claims'],
    ["the API server's audience", jwt({ ...bound, aud: ['https://kubernetes.default.svc'] }), '401 the token is not for audience kube2iam'],
    ['no audience', jwt({ ...bound, aud: undefined }), '401 the token is not for audience kube2iam'],
    [
      'bound to a Secret, not a pod (a legacy token)',
      jwt({ ...bound, 'kubernetes.io': { ...bound['kubernetes.io'], pod: undefined } }),
      '403 the token is not bound to a pod (use a projected service account token)',
    ],
    ['longer than any token the API server issues', 'a'.repeat(MAX_TOKEN_BYTES + 1), `401 token longer than ${MAX_TOKEN_BYTES} bytes`],
  ];
  for (const [name, token, expected] of cases) {
    const screened = screenToken(token, 'kube2iam', NOW);
    t.equal(screened.kind === 'refused' ? `${screened.status} ${screened.reason}` : screened.kind, expected, name);
  }
});

t.test("a token's claims as read", async (t) => {
  t.same(readServiceAccountToken(jwt(bound)), {
    kind: 'claims',
    claims: {
      namespace: 'shop',
      serviceAccount: 'web',
      pod: { name: 'web-0', uid: 'pod-1' },
      audiences: ['kube2iam'],
      expiresAt: NOW + 600_000,
      notBefore: NOW - 60_000,
    },
  });
});

t.test("the API server's review, read", async (t) => {
  const user = {
    username: 'system:serviceaccount:shop:web',
    extra: { 'authentication.kubernetes.io/pod-name': ['web-0'], 'authentication.kubernetes.io/pod-uid': ['pod-1'] },
  };
  const ok: TokenReviewStatus = { authenticated: true, audiences: ['kube2iam'], user };
  const cases: Array<[string, TokenReviewStatus | undefined, TokenVerdict]> = [
    ['a pod-bound token', ok, { kind: 'pod', namespace: 'shop', serviceAccount: 'web', podName: 'web-0', podUid: 'pod-1' }],
    [
      'not authenticated, with the reason (a deleted pod)',
      { authenticated: false, error: 'service account token has been invalidated' },
      { kind: 'refused', status: 401, reason: 'the API server did not authenticate the token: service account token has been invalidated' },
    ],
    ['no status at all', undefined, { kind: 'refused', status: 401, reason: 'the API server did not authenticate the token: no reason given' }],
    [
      'authenticated for its own audience only (a server that ignores spec.audiences)',
      { ...ok, audiences: ['https://kubernetes.default.svc'] },
      { kind: 'refused', status: 401, reason: 'the token is not for audience kube2iam' },
    ],
    [
      'a user, not a service account (a static token)',
      { ...ok, user: { ...user, username: 'admin' } },
      { kind: 'refused', status: 403, reason: 'the token is not a service account token' },
    ],
    [
      'a service account token bound to no pod',
      { ...ok, user: { username: user.username } },
      { kind: 'refused', status: 403, reason: 'the token is not bound to a pod (use a projected service account token)' },
    ],
    [
      'two pod names cannot name one pod',
      { ...ok, user: { ...user, extra: { ...user.extra, 'authentication.kubernetes.io/pod-name': ['a', 'b'] } } },
      { kind: 'refused', status: 403, reason: 'the token is not bound to a pod (use a projected service account token)' },
    ],
  ];
  for (const [name, status, verdict] of cases) t.same(reviewVerdict(status, 'kube2iam'), verdict, name);
});
