// The request log (--verbose, --log-level=debug): one line per answered request, with
// kube2iam's message and field names, plus the pod and role it was answered for. Built
// only when debug is on, so with it off the engine's answered hook stays the stats count.

import type { Request } from '../http/index.js';
import type { Logger } from '../log.js';
import type { PodIndex } from '../pods/index.js';
import { normalizeIp } from '../pods/ip.js';
import type { RoleAssignment } from '../pods/role-assignment.js';
import { Route, ROUTE_NAMES } from './router.js';

/** A pod writes the path: the log keeps its start. */
const MAX_LOGGED_PATH = 512;

export function requestLogger(log: Logger, index: PodIndex, assignment: RoleAssignment): (request: Request, status: number, ms: number) => void {
  return (request, status, ms) => {
    // Probes every few seconds would drown the rest (kube2iam does not log /healthz either).
    if (request.route === Route.Health || request.route === Route.Ready) return;
    const ip = normalizeIp(request.remoteAddress);
    const pod = ip === null ? null : (index.lookup(ip)?.owner ?? null);
    const assigned = pod === null ? undefined : assignment.of(pod.uid);
    const path = request.path.length > MAX_LOGGED_PATH ? `${request.path.slice(0, MAX_LOGGED_PATH)}…` : request.path;
    const duration = Math.round(ms * 1000) / 1000;
    log.debug(
      {
        'req.method': request.method,
        'req.path': path,
        'req.remote': ip ?? request.remoteAddress,
        'res.status': status,
        'res.duration': duration,
        'res.durationUs': Math.round(ms * 1000),
        route: ROUTE_NAMES[request.route],
        pod: pod === null ? '' : `${pod.namespace}/${pod.name}`,
        role: assigned?.kind === 'role' ? assigned.roleArn : '',
      },
      `${request.method} ${path} (${status}) took ${duration} ms`,
    );
  };
}
