// The handover: at shutdown a proxy leaves the credentials it holds for the next proxy on
// its node, which serves them at once, so a DaemonSet rollout does not refetch the keys
// its nodes already held (issue 18: a fleet's rollout is otherwise thousands of
// AssumeRole calls against one account's limit). Pure functions: the text written
// and what is taken back from it. The file is written by the proxy itself, but a file
// on the node is read as untrusted: bounded, and checked field by field.

import { resolveRoleName } from './roles.js';
import type { CredentialParameters, IssuedCredentials } from './store.js';

export interface HandedOver {
  parameters: CredentialParameters;
  credentials: IssuedCredentials;
}

export const HANDOVER_VERSION = 1;
/**
 * At most this many credentials are handed over (in-use keys first: a node has at most a
 * few hundred, and keeps 1,000 for workloads' next pods), in a text of at most this many
 * bytes, which the next proxy reads whole within the image's heap.
 */
export const HANDOVER_MAX_ENTRIES = 2_000;
export const HANDOVER_MAX_BYTES = 8 * 1024 * 1024;
/** Longer than any field STS or IAM issues (a session token with session tags is a few KiB). */
const MAX_FIELD = 8_192;

export class HandoverError extends Error {}

/** The text for `items`, in order, as many as fit the bounds (`count`). */
export function handoverText(items: HandedOver[], now: number): { text: string; count: number } {
  const head = `{"version":${HANDOVER_VERSION},"writtenAt":"${new Date(now).toISOString()}","credentials":[`;
  const entries: string[] = [];
  let bytes = head.length + 2;
  for (const { parameters: p, credentials: c } of items) {
    const entry = JSON.stringify({
      roleArn: p.roleArn,
      externalId: p.externalId,
      sessionName: p.sessionName,
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      sessionToken: c.sessionToken,
      expiration: c.expiration.toISOString(),
      issuedAt: c.issuedAt.toISOString(),
    });
    bytes += Buffer.byteLength(entry) + 1;
    if (entries.length === HANDOVER_MAX_ENTRIES || bytes > HANDOVER_MAX_BYTES) break;
    entries.push(entry);
  }
  return { text: `${head}${entries.join(',')}]}`, count: entries.length };
}

export interface TakenBack {
  items: HandedOver[];
  /** Entries past their expiration at `now`. */
  expired: number;
  /** Entries with a field missing, of the wrong type, too long or not a role ARN. */
  invalid: number;
}

/** What a handover text holds that may still be used at `now`; throws HandoverError when the text as a whole is not one. */
export function takeBack(text: string, now: number): TakenBack {
  if (Buffer.byteLength(text) > HANDOVER_MAX_BYTES) throw new HandoverError(`longer than ${HANDOVER_MAX_BYTES} bytes`);
  // Before parsing: 8 MiB of empty objects would not fit the heap the image gives.
  if (objects(text) > HANDOVER_MAX_ENTRIES + 1) throw new HandoverError(`more than ${HANDOVER_MAX_ENTRIES} credentials`);
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new HandoverError('not JSON');
  }
  if (typeof document !== 'object' || document === null) throw new HandoverError('not a JSON object');
  const { version, credentials } = document as { version?: unknown; credentials?: unknown };
  if (version !== HANDOVER_VERSION) throw new HandoverError(`version ${JSON.stringify(version)}, this proxy reads ${HANDOVER_VERSION}`);
  if (!Array.isArray(credentials)) throw new HandoverError('no credentials list');
  if (credentials.length > HANDOVER_MAX_ENTRIES) throw new HandoverError(`more than ${HANDOVER_MAX_ENTRIES} credentials`);
  const out: TakenBack = { items: [], expired: 0, invalid: 0 };
  for (const raw of credentials) {
    const item = handedOver(raw);
    if (item === null) out.invalid++;
    else if (item.credentials.expiration.getTime() <= now) out.expired++;
    else out.items.push(item);
  }
  return out;
}

function handedOver(raw: unknown): HandedOver | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const r = raw as Record<string, unknown>;
  const text = (name: string): string | null => {
    const value = r[name];
    return typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD ? value : null;
  };
  const roleArn = text('roleArn');
  const sessionName = text('sessionName');
  const accessKeyId = text('accessKeyId');
  const secretAccessKey = text('secretAccessKey');
  const sessionToken = text('sessionToken');
  const expiration = time(text('expiration'));
  const issuedAt = time(text('issuedAt'));
  const externalId = r.externalId === null ? null : text('externalId');
  if (roleArn === null || resolveRoleName(roleArn, null).kind !== 'role') return null;
  if (sessionName === null || accessKeyId === null || secretAccessKey === null || sessionToken === null) return null;
  if (expiration === null || issuedAt === null || (r.externalId !== null && externalId === null)) return null;
  return {
    parameters: { roleArn, externalId, sessionName },
    credentials: { accessKeyId, secretAccessKey, sessionToken, expiration, issuedAt },
  };
}

function objects(text: string): number {
  let n = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) n++;
  return n;
}

function time(value: string | null): Date | null {
  if (value === null) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}
