// Routes of the metadata surface. Credential answers are prepared ahead (per role, per
// renewal, per denial), so a credential request only names its caller and picks a buffer:
// - /{version}/meta-data/iam/security-credentials[/]: the caller's role name;
// - /{version}/meta-data/iam/security-credentials/<role>: its credential document, 403
//   for another role (as kube2iam), 500 with the reason when STS has given none;
// - PUT /latest/api/token: a token issued here, bound to the caller's IP (never the
//   node's: TokenRegistry), with IMDS's TTL rules and refusals; the TTL is echoed (Go v2
//   and Java v2 need it). A token sent with any request must be one of these, for that
//   IP, unexpired (else 401, as IMDS answers); --imdsv2-required makes the credential
//   routes need one;
// - /healthz (liveness, kube2iam's: the proxy serves and has listed its pods), /readyz
//   (readiness: that, and STS works for this node), and /debug/store with --debug;
// - everything else passes through to the metadata service, except what would expose
//   the node's own identity (anything else under meta-data/iam, identity-credentials,
//   the signed instance-identity documents),
//   which gets 404 so SDKs that try the extended path first fall back to the legacy one.
//   A path that is not in canonical form (`//`, dot segments, encoded slashes) never
//   passes: the upstream might normalise it into one of those. Nor does any path outside
//   the shapes the metadata service serves, or one with a query (404).
// A caller the index does not know yet waits for its pod (CallerResolver); one whose pod
// has no role, or a role its namespace forbids, is answered at once.

import { type PreparedResponse, textResponse, type Handler, type Request } from '../http/index.js';
import type { CallerResolver } from '../pods/callers.js';
import { normalizeIp } from '../pods/ip.js';
import type { PodRecord } from '../pods/pod.js';
import type { PodRoles } from '../pods/pod-roles.js';
import { TOKEN_HEADER, TOKEN_TTL_HEADER, type MetadataUpstream } from '../upstream/metadata.js';
import { answerAfterFetch, type CredentialEntry } from '../credentials/store.js';
import { PreparedAnswers } from './documents.js';
import { parseTokenTtl, type TokenRegistry } from './tokens.js';

/** What served a request, for the stats line. */
export enum Route {
  Invalid,
  Listing,
  Credentials,
  Token,
  Health,
  Ready,
  Debug,
  Blocked,
  PassThrough,
}
/** The routes' names in the stats line, by Route value. */
export const ROUTE_NAMES: readonly string[] = Object.values(Route)
  .filter((value): value is number => typeof value === 'number')
  .map((value) => String(Route[value]).toLowerCase());

const JSON_TYPE = [['Content-Type', 'application/json']] as const;
const NOT_SERVED = textResponse(404, 'not served by this proxy\n');
const NOT_ALLOWED = textResponse(404, 'path not allowed by --allow-route-regexp\n');
const NOT_CANONICAL = textResponse(400, 'path not in canonical form\n');
const NOT_METADATA = textResponse(404, 'not a metadata path this proxy passes on\n');
const BAD_TARGET = textResponse(400, 'invalid request target\n');
const NOT_ELIGIBLE = textResponse(404, 'pod cannot use credentials (finished or on the host network)\n');
const NOT_READY = textResponse(500, 'credentials not fetched yet\n');
const UNAUTHORIZED = textResponse(401, 'a valid IMDSv2 token is required (PUT /latest/api/token)\n');
const BAD_TTL = textResponse(400, 'X-aws-ec2-metadata-token-ttl-seconds must be an integer from 1 to 21600\n');
const FORWARDED_TOKEN = textResponse(403, 'token requests with X-Forwarded-For are refused\n');
const VERSIONED_TOKEN = textResponse(403, 'tokens are issued only at /latest/api/token\n');
const TOKEN_RATE = textResponse(429, 'too many token requests from this address\n', [['Retry-After', '1']]);
const GET_ONLY = textResponse(405, 'Method Not Allowed\n', [['Allow', 'GET, HEAD']]);
const PUT_ONLY = textResponse(405, 'Method Not Allowed\n', [['Allow', 'PUT']]);

const CREDENTIALS = '/meta-data/iam/security-credentials';
const TOKEN_PATH = '/latest/api/token';
const API_TOKEN = '/api/token';

export interface RouterOptions {
  /** --allow-route-regexp: pass-through paths (the token PUT included) must match. */
  allowRoute: RegExp | null;
  /** --imdsv2-required: the credential routes need a token issued here. */
  imdsv2Required: boolean;
  /** --host-ip, shown by /healthz. */
  hostIp: string;
  /** --debug: /debug/store is served. */
  debug: boolean;
  /** Shown by /healthz. */
  version: string;
}

export interface RouterDependencies {
  /** Why the proxy cannot serve yet (pods not listed, shutting down), or null. */
  unavailable: () => string | null;
  /** Why it serves but cannot give pods credentials (no role can be assumed), or null. */
  credentialsUnready: () => string | null;
  callers: CallerResolver;
  podRoles: PodRoles;
  /** A pod asked and its credentials are not there: fetch them first (the store's `demand`). */
  demand: (entry: CredentialEntry) => Promise<void> | null;
  upstream: MetadataUpstream;
  /** The IMDSv2 tokens issued here. */
  tokens: TokenRegistry;
  stats: CredentialAnswerStats;
}

export class CredentialAnswerStats {
  /** Answered from credentials already held. */
  hits = 0;
  /** Had to wait for STS, or got an error. */
  misses = 0;
}

/**
 * The route of a path under any version segment. Compares in place (startsWith at an
 * offset) so a credential request makes no substring to be routed.
 */
function routeOf(path: string, versionEnd: number): Route {
  if (versionEnd !== -1 && path.startsWith(CREDENTIALS, versionEnd)) {
    const after = versionEnd + CREDENTIALS.length;
    if (path.length === after || (path.length === after + 1 && path.charCodeAt(after) === 0x2f)) return Route.Listing;
    if (path.charCodeAt(after) === 0x2f) return Route.Credentials;
  }
  if (versionEnd !== -1 && path.length === versionEnd + API_TOKEN.length && path.endsWith(API_TOKEN)) return Route.Token;
  if (path === '/healthz') return Route.Health;
  if (path === '/readyz') return Route.Ready;
  if (path === '/debug/store') return Route.Debug;
  return Route.PassThrough;
}

/**
 * The shapes the metadata service serves: a version (`latest` or a date), then
 * `meta-data/...` or `dynamic/...` in segments of the characters its paths use (MAC
 * addresses, `0=key-name`, tag keys), or `user-data`. Anything else, `;` parameters and
 * `%` escapes included, never reaches it: what is not passed on cannot be mis-parsed there.
 */
const METADATA_PATH = /^\/(?:latest|\d{4}-\d{2}-\d{2})\/(?:(?:meta-data|dynamic)(?:\/[\w.:=@+-]+)*\/?|user-data)$/;

/**
 * Why a path must not pass through: null when it may. Decoded first, so an encoded
 * `/` or `.` cannot hide a segment, and compared without case, since the upstream's
 * handling of either is not ours to rely on.
 */
export function passThroughRefusal(path: string): PreparedResponse | null {
  // An encoded separator would make a different path once the upstream decodes it.
  if (/%(2f|5c)/i.test(path)) return NOT_CANONICAL;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return NOT_CANONICAL;
  }
  if (decoded.includes('//') || decoded.includes('\\') || /\/\.\.?(\/|$)/.test(decoded) || /\p{Cc}/u.test(decoded)) return NOT_CANONICAL;
  const lower = decoded.toLowerCase();
  if (lower.includes('/meta-data/iam') || lower.includes('identity-credentials')) return NOT_SERVED;
  // The signed forms of the identity document (pkcs7, signature, rsa2048) prove the node's
  // identity to services such as Vault's AWS auth; the plain document (the region, for Go
  // and Java SDKs) passes.
  const identity = lower.indexOf('/dynamic/instance-identity/');
  if (identity !== -1) {
    const rest = lower.slice(identity + '/dynamic/instance-identity/'.length);
    if (rest !== '' && rest !== 'document' && rest !== 'document/') return NOT_SERVED;
  }
  return METADATA_PATH.test(path) ? null : NOT_METADATA;
}

export function createRouter(deps: RouterDependencies, options: RouterOptions): Handler {
  const { callers, podRoles, demand, upstream, tokens, stats } = deps;
  const answers = new PreparedAnswers();

  /** `roleAt`: where the requested role name starts in the path (credential requests). */
  const answerCredentials = (request: Request, pod: PodRecord, route: Route, roleAt: number): void => {
    const podRole = podRoles.roleOf(pod.uid);
    if (podRole === undefined) {
      request.send(NOT_ELIGIBLE);
      return;
    }
    if (podRole.kind === 'none') {
      request.send(answers.refusal(podRole.reason));
      return;
    }
    if (route === Route.Listing) {
      request.send(answers.listing(podRole.name));
      return;
    }
    const path = request.path;
    if (path.length !== roleAt + podRole.name.length || !path.startsWith(podRole.name, roleAt)) {
      request.respondText(403, `Invalid role ${path.slice(roleAt)}\n`);
      return;
    }
    const entry = podRole.entry;
    const current = entry.current(Date.now());
    if (current !== null) {
      stats.hits++;
      request.send(answers.credentials(current));
      return;
    }
    stats.misses++;
    // Not fetched yet (still in the start-up window, waiting for a token, or throttled),
    // or a renewal after expiry: fetched now, ahead of the rest, and waited for, briefly.
    answerAfterFetch(
      entry,
      demand,
      () => request.send(answerNow(entry)),
      (error) => request.fail(error),
    );
  };

  /** The entry's credentials, else its last STS error (the code only), else not yet. */
  const answerNow = (entry: CredentialEntry): PreparedResponse => {
    const current = entry.current(Date.now());
    if (current !== null) return answers.credentials(current);
    return entry.errorCode === null ? NOT_READY : answers.stsError(entry.errorCode);
  };

  /**
   * As IMDS judges a request's token: true for a valid one, false for none, null for one
   * that is not valid for this address now (401, whatever else the request is).
   */
  const tokenState = (request: Request, ip: string | null): boolean | null => {
    const token = request.header(TOKEN_HEADER);
    if (token === undefined) return false;
    return ip !== null && tokens.valid(ip, token, Date.now()) ? true : null;
  };

  const credentials = (request: Request, route: Route, versionEnd: number): void => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      request.send(GET_ONLY);
      return;
    }
    const ip = normalizeIp(request.remoteAddress);
    const token = tokenState(request, ip);
    if (token === null || (!token && options.imdsv2Required)) {
      request.send(UNAUTHORIZED);
      return;
    }
    const pod = ip === null ? null : callers.known(ip);
    const roleAt = versionEnd + CREDENTIALS.length + 1;
    if (pod !== null) {
      answerCredentials(request, pod, route, roleAt);
      return;
    }
    callers
      .resolve(request.remoteAddress)
      .then((caller) => {
        if (caller.kind === 'pod') answerCredentials(request, caller.pod, route, roleAt);
        else request.respondText(404, `${caller.reason}\n`);
      })
      .catch((error: unknown) => request.fail(error));
  };

  const token = (request: Request): void => {
    if (request.method !== 'PUT') {
      request.send(PUT_ONLY);
      return;
    }
    // IMDS issues tokens only under /latest; a versioned token path is refused as it does.
    if (request.path !== TOKEN_PATH) {
      request.send(VERSIONED_TOKEN);
      return;
    }
    // As IMDS does: a proxy inside the pod (an SSRF path) adds X-Forwarded-For.
    if (request.header('x-forwarded-for') !== undefined) {
      request.send(FORWARDED_TOKEN);
      return;
    }
    const ttl = parseTokenTtl(request.header(TOKEN_TTL_HEADER));
    if (ttl === null) {
      request.send(BAD_TTL);
      return;
    }
    if (options.allowRoute !== null && !options.allowRoute.test(request.path)) {
      request.send(NOT_ALLOWED);
      return;
    }
    const ip = normalizeIp(request.remoteAddress);
    const token = ip === null ? null : tokens.issue(ip, ttl, Date.now());
    if (token === null) {
      request.send(TOKEN_RATE);
      return;
    }
    request.respond(200, token, [
      ['Content-Type', 'text/plain'],
      ['X-aws-ec2-metadata-token-ttl-seconds', String(ttl)],
    ]);
  };

  const health = (request: Request): void => {
    const reason = deps.unavailable();
    if (reason === null) request.respond(200, JSON.stringify({ status: 'ok', hostIP: options.hostIp, version: options.version }), JSON_TYPE);
    else request.respond(503, JSON.stringify({ status: 'unavailable', reason, version: options.version }), JSON_TYPE);
  };

  // Any pod can read this (as /healthz): reasons name no role, the log does.
  const ready = (request: Request): void => {
    const reasons = [deps.unavailable(), deps.credentialsUnready()].filter((reason) => reason !== null);
    if (reasons.length === 0) request.respond(200, JSON.stringify({ status: 'ready' }), JSON_TYPE);
    else request.respond(503, JSON.stringify({ status: 'not ready', reasons }), JSON_TYPE);
  };

  const passThrough = (request: Request): void => {
    const refusal = request.query === '' ? passThroughRefusal(request.path) : NOT_METADATA;
    if (refusal !== null) {
      request.route = refusal === NOT_CANONICAL ? Route.Invalid : Route.Blocked;
      request.send(refusal);
      return;
    }
    if (options.allowRoute !== null && !options.allowRoute.test(request.path)) {
      request.send(NOT_ALLOWED);
      return;
    }
    const token = tokenState(request, normalizeIp(request.remoteAddress));
    if (token === null) {
      request.send(UNAUTHORIZED);
      return;
    }
    upstream.forward(request, token);
  };

  return (request) => {
    const path = request.path;
    if (!request.valid || path.charCodeAt(0) !== 0x2f) {
      request.route = Route.Invalid;
      request.send(BAD_TARGET);
      return;
    }
    const versionEnd = path.indexOf('/', 1);
    const route = routeOf(path, versionEnd);
    request.route = route;
    switch (route) {
      case Route.Listing:
      case Route.Credentials:
        return credentials(request, route, versionEnd);
      case Route.Token:
        return token(request);
      case Route.Health:
        return health(request);
      case Route.Ready:
        return ready(request);
      case Route.Debug:
        if (options.debug) return request.respond(200, JSON.stringify(podRoles.snapshot()), JSON_TYPE);
        return passThrough(request);
      default:
        return passThrough(request);
    }
  };
}
