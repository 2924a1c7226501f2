// Routes of the metadata surface. Answers are prepared ahead (per role, per renewal, per
// denial), so a credential request only names its caller and picks a buffer:
// - /{version}/meta-data/iam/security-credentials[/]: the caller's role name;
// - /{version}/meta-data/iam/security-credentials/<role>: its credential document, 403
//   for another role (as kube2iam), 500 with the reason when STS has given none;
// - paths that would expose the node's identity (security-credentials-extended,
//   identity-credentials, iam/info) get 404, never the node's answer: SDKs that try the
//   extended path first fall back to the legacy one on 404;
// - /healthz: 200 once the pods are listed, 503 before.
// A caller the index does not know yet waits for its pod (CallerResolver); one whose pod
// has no role, or a role its namespace forbids, is answered at once.

import { PreparedResponse, textResponse, type Handler, type Request } from '../http/index.js';
import type { CallerResolver } from '../pods/callers.js';
import { normalizeIp } from '../pods/ip.js';
import type { PodRecord } from '../pods/pod.js';
import type { RoleAssignment } from '../pods/role-assignment.js';

const HEALTHY = new PreparedResponse(200, [['Content-Type', 'application/json']], '{"status":"ok"}');
const SYNCING = new PreparedResponse(503, [['Content-Type', 'application/json']], '{"status":"syncing","reason":"pods not listed yet"}');
const NOT_FOUND = textResponse(404, 'Not Found\n');
const NOT_SERVED = textResponse(404, 'not served by this proxy\n');
const NOT_ELIGIBLE = textResponse(404, 'pod cannot use credentials (finished or on the host network)\n');
const NOT_READY = textResponse(500, 'credentials not fetched yet\n');
const METHOD_NOT_ALLOWED = textResponse(405, 'Method Not Allowed\n', [['Allow', 'GET, HEAD']]);

const CREDENTIALS = '/meta-data/iam/security-credentials';
const BLOCKED = ['/meta-data/iam/security-credentials-extended', '/meta-data/identity-credentials', '/meta-data/iam/info'];

/** How long a credential request waits for a first fetch already under way. */
const FETCH_WAIT_MS = 800;

export interface RouterDependencies {
  /** The pod source has delivered its first complete list. */
  ready: () => boolean;
  callers: CallerResolver;
  assignment: RoleAssignment;
}

const enum Route {
  Listing,
  Credentials,
  Blocked,
  Other,
}

/**
 * The route of a path under any version segment. Compares in place (startsWith at an
 * offset) so a credential request makes no substring to be routed.
 */
function routeOf(path: string, versionEnd: number): Route {
  if (versionEnd === -1) return Route.Other;
  for (const blocked of BLOCKED) {
    if (path.startsWith(blocked, versionEnd) && (path.length === versionEnd + blocked.length || path.charCodeAt(versionEnd + blocked.length) === 0x2f)) {
      return Route.Blocked;
    }
  }
  if (!path.startsWith(CREDENTIALS, versionEnd)) return Route.Other;
  const after = versionEnd + CREDENTIALS.length;
  if (path.length === after || (path.length === after + 1 && path.charCodeAt(after) === 0x2f)) return Route.Listing;
  return path.charCodeAt(after) === 0x2f ? Route.Credentials : Route.Other;
}

export function createRouter(deps: RouterDependencies): Handler {
  /** `roleAt`: where the requested role name starts in the path (credential requests). */
  const answer = (request: Request, pod: PodRecord, kind: Route, roleAt: number): void => {
    const assignment = deps.assignment.of(pod.uid);
    if (assignment === undefined) return request.send(NOT_ELIGIBLE);
    if (assignment.kind === 'none') return request.send(assignment.response);
    if (kind === Route.Listing) return request.send(assignment.listing);
    const path = request.path;
    if (path.length !== roleAt + assignment.name.length || !path.startsWith(assignment.name, roleAt)) {
      return request.respondText(403, `Invalid role ${path.slice(roleAt)}\n`);
    }
    const entry = assignment.entry;
    const current = entry.current(Date.now());
    if (current !== null) return request.send(current);
    if (entry.fetching !== null) {
      // The first fetch (or a renewal after expiry) is under way: wait for it, briefly.
      const timer = new Promise((resolve) => setTimeout(resolve, FETCH_WAIT_MS).unref());
      void Promise.race([entry.fetching, timer]).then(() => request.send(entry.current(Date.now()) ?? entry.errorResponse ?? NOT_READY));
      return;
    }
    request.send(entry.errorResponse ?? NOT_READY);
  };

  return (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      request.send(METHOD_NOT_ALLOWED);
      return;
    }
    if (request.path === '/healthz') {
      request.send(deps.ready() ? HEALTHY : SYNCING);
      return;
    }
    const path = request.path;
    const versionEnd = path.indexOf('/', 1);
    const kind = routeOf(path, versionEnd);
    if (kind === Route.Blocked) {
      request.send(NOT_SERVED);
      return;
    }
    if (kind === Route.Other) {
      request.send(NOT_FOUND);
      return;
    }
    const ip = normalizeIp(request.remoteAddress);
    const pod = ip === null ? null : deps.callers.known(ip);
    const roleAt = versionEnd + CREDENTIALS.length + 1;
    if (pod !== null) {
      answer(request, pod, kind, roleAt);
      return;
    }
    void deps.callers.resolve(request.remoteAddress).then((caller) => {
      if (caller.kind === 'pod') answer(request, caller.pod, kind, roleAt);
      else request.respondText(404, `${caller.reason}\n`);
    });
  };
}
