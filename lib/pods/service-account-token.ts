// What a projected ServiceAccount token says about itself, read without verifying it.
// Identity never comes from here (TokenReview decides who a token belongs to); the
// claims only refuse early what the API server would refuse anyway (expired, another
// audience, not bound to a pod), so a pod sending junk costs no API call, and bound how
// long a review of it is kept. Pure.

/** Larger than any token the API server issues (about 1 KB), smaller than a header may be. */
export const MAX_TOKEN_BYTES = 4096;

export interface ServiceAccountClaims {
  namespace: string;
  serviceAccount: string;
  /** The pod the token is bound to (TokenRequest with a Pod object), else null. */
  pod: { name: string; uid: string } | null;
  audiences: string[];
  /** ms since the epoch. */
  expiresAt: number;
  notBefore: number;
}

export type TokenReading = { kind: 'claims'; claims: ServiceAccountClaims } | { kind: 'malformed'; reason: string };

const BASE64URL = /^[A-Za-z0-9_-]+$/;

interface RawClaims {
  aud?: unknown;
  exp?: unknown;
  nbf?: unknown;
  iat?: unknown;
  'kubernetes.io'?: {
    namespace?: unknown;
    serviceaccount?: { name?: unknown };
    pod?: { name?: unknown; uid?: unknown };
  };
}

export function readServiceAccountToken(token: string): TokenReading {
  if (token.length > MAX_TOKEN_BYTES) return malformed(`token longer than ${MAX_TOKEN_BYTES} bytes`);
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) return malformed('not a JSON web token (three base64url parts)');
  let raw: RawClaims;
  try {
    raw = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as RawClaims;
  } catch {
    return malformed('the token payload is not JSON');
  }
  if (typeof raw !== 'object' || raw === null) return malformed('the token payload is not a JSON object');
  const kubernetes = raw['kubernetes.io'];
  const namespace = kubernetes?.namespace;
  const serviceAccount = kubernetes?.serviceaccount?.name;
  if (typeof namespace !== 'string' || typeof serviceAccount !== 'string') return malformed('not a Kubernetes service account token');
  if (typeof raw.exp !== 'number') return malformed('the token has no expiry');
  const audiences = typeof raw.aud === 'string' ? [raw.aud] : Array.isArray(raw.aud) ? raw.aud.filter((a): a is string => typeof a === 'string') : [];
  const pod = kubernetes?.pod;
  return {
    kind: 'claims',
    claims: {
      namespace,
      serviceAccount,
      pod: typeof pod?.name === 'string' && typeof pod.uid === 'string' ? { name: pod.name, uid: pod.uid } : null,
      audiences,
      expiresAt: raw.exp * 1000,
      notBefore: typeof raw.nbf === 'number' ? raw.nbf * 1000 : -Infinity,
    },
  };
}

function malformed(reason: string): TokenReading {
  return { kind: 'malformed', reason };
}
