// The answers the metadata service gives for credentials, rendered once per renewal.

import { PreparedResponse } from '../http/index.js';

export interface AssumedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

const HEADERS = [
  ['Content-Type', 'text/plain'],
  ['Server', 'EC2ws'],
] as const;

/** `YYYY-MM-DDTHH:MM:SSZ` in UTC, as the metadata service writes times. */
export function metadataTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** The credential document in the metadata service's own layout and field order. */
export function credentialDocument(credentials: AssumedCredentials, lastUpdated: Date): string {
  const field = (name: string, value: string): string => `  "${name}" : ${JSON.stringify(value)}`;
  return [
    '{',
    [
      field('Code', 'Success'),
      field('LastUpdated', metadataTime(lastUpdated)),
      field('Type', 'AWS-HMAC'),
      field('AccessKeyId', credentials.accessKeyId),
      field('SecretAccessKey', credentials.secretAccessKey),
      field('Token', credentials.sessionToken),
      field('Expiration', metadataTime(credentials.expiration)),
    ].join(',\n'),
    '}',
  ].join('\n');
}

export function credentialResponse(credentials: AssumedCredentials, lastUpdated: Date): PreparedResponse {
  return new PreparedResponse(200, HEADERS, credentialDocument(credentials, lastUpdated));
}

/** The role listing: one role name, no trailing newline (botocore puts the body into its next URL). */
export function roleListingResponse(name: string): PreparedResponse {
  return new PreparedResponse(200, HEADERS, name);
}
