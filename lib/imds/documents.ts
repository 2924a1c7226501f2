// The answers the metadata service gives for credentials, in its own layout, and the
// cache that renders each once: the credential store and the pod roles return data (the
// credentials STS issued, a role's name, a refusal's reason, STS's error code), and the
// routes answer with these buffers, so a request still costs one lookup and one write.

import { LRUCache } from 'lru-cache';
import type { IssuedCredentials } from '../credentials/store.js';
import { PreparedResponse, textResponse } from '../http/index.js';

const HEADERS = [
  ['Content-Type', 'text/plain'],
  ['Server', 'EC2ws'],
] as const;

/** `YYYY-MM-DDTHH:MM:SSZ` in UTC, as the metadata service writes times. */
export function metadataTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** The credential document in the metadata service's own layout and field order; LastUpdated is when STS issued them. */
export function credentialDocument(credentials: IssuedCredentials): string {
  const field = (name: string, value: string): string => `  "${name}" : ${JSON.stringify(value)}`;
  return [
    '{',
    [
      field('Code', 'Success'),
      field('LastUpdated', metadataTime(credentials.issuedAt)),
      field('Type', 'AWS-HMAC'),
      field('AccessKeyId', credentials.accessKeyId),
      field('SecretAccessKey', credentials.secretAccessKey),
      field('Token', credentials.sessionToken),
      field('Expiration', metadataTime(credentials.expiration)),
    ].join(',\n'),
    '}',
  ].join('\n');
}

export function credentialResponse(credentials: IssuedCredentials): PreparedResponse {
  return new PreparedResponse(200, HEADERS, credentialDocument(credentials));
}

/** The role listing: one role name, no trailing newline (botocore puts the body into its next URL). */
export function roleListingResponse(name: string): PreparedResponse {
  return new PreparedResponse(200, HEADERS, name);
}

/** Texts answered at most: role names, refusals and STS error codes past it are rendered again when asked. */
const MAX_TEXTS = 10_000;

/**
 * Each answer rendered once and shared: a credential document per issuance (held as long
 * as the credentials are), listings, refusals and STS errors by their text (bounded).
 */
export class PreparedAnswers {
  private readonly documents = new WeakMap<IssuedCredentials, PreparedResponse>();
  private readonly listings = new LRUCache<string, PreparedResponse>({ max: MAX_TEXTS });
  private readonly refusals = new LRUCache<string, PreparedResponse>({ max: MAX_TEXTS });
  private readonly stsErrors = new LRUCache<string, PreparedResponse>({ max: 100 });

  credentials(credentials: IssuedCredentials): PreparedResponse {
    let answer = this.documents.get(credentials);
    if (answer === undefined) {
      answer = credentialResponse(credentials);
      this.documents.set(credentials, answer);
    }
    return answer;
  }

  listing(name: string): PreparedResponse {
    return cached(this.listings, name, () => roleListingResponse(name));
  }

  /** A pod that gets no credentials: 404 with the reason, as kube2iam. */
  refusal(reason: string): PreparedResponse {
    return cached(this.refusals, reason, () => textResponse(404, `${reason}\n`));
  }

  /** STS's text names the node's role and instance: it goes to the log, the pod gets the code. */
  stsError(code: string): PreparedResponse {
    return cached(this.stsErrors, code, () => textResponse(500, `credentials unavailable: STS answered ${code}\n`));
  }
}

function cached(cache: LRUCache<string, PreparedResponse>, key: string, render: () => PreparedResponse): PreparedResponse {
  let answer = cache.get(key);
  if (answer === undefined) {
    answer = render();
    cache.set(key, answer);
  }
  return answer;
}
