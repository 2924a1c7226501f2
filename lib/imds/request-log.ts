// The request log (--verbose, --log-level=debug): one line per answered request, with
// kube2iam's message and field names, plus the pod and role it was answered for. Built
// only when debug is on, so with it off the engine's answered hook stays the stats count.
// It writes one line per request, so it is formatted here, directly, in the log's shape
// (lib/log.ts: the same keys in the same sorted order), not through the logger's
// object-to-JSON-to-text path, which costs several times as much.

import type { Request } from '../http/index.js';
import type { LogFormat, LogSink } from '../log.js';
import { logfmtValue } from '../log.js';
import type { PodIndex } from '../pods/pod-index.js';
import { normalizeIp } from '../pods/ip.js';
import type { PodRoles } from '../pods/pod-roles.js';
import { Route, ROUTE_NAMES } from './router.js';

/** A pod writes the path: the log keeps its start. */
const MAX_LOGGED_PATH = 512;

export function requestLogger(format: LogFormat, out: LogSink, index: PodIndex, podRoles: PodRoles): (request: Request, status: number, ms: number) => void {
  return (request, status, ms) => {
    // Probes every few seconds would drown the rest (kube2iam does not log /healthz either).
    if (request.route === Route.Health || request.route === Route.Ready) return;
    const ip = normalizeIp(request.remoteAddress);
    const owner = ip === null ? null : (index.lookup(ip)?.owner ?? null);
    const assigned = owner === null ? undefined : podRoles.roleOf(owner.uid);
    const path = request.path.length > MAX_LOGGED_PATH ? `${request.path.slice(0, MAX_LOGGED_PATH)}…` : request.path;
    const duration = Math.round(ms * 1000) / 1000;
    const msg = `${request.method} ${path} (${status}) took ${duration} ms`;
    const pod = owner === null ? '' : `${owner.namespace}/${owner.name}`;
    const remote = ip ?? request.remoteAddress;
    const role = assigned?.kind === 'role' ? assigned.roleArn : '';
    const route = ROUTE_NAMES[request.route] ?? '';
    const time = new Date().toISOString();
    const us = Math.round(ms * 1000);
    out.write(
      format === 'json'
        ? `${JSON.stringify({ level: 'debug', time, msg, pod, 'req.method': request.method, 'req.path': path, 'req.remote': remote, 'res.duration': duration, 'res.durationUs': us, 'res.status': status, role, route })}\n`
        : `time="${time}" level=debug msg=${logfmtValue(msg)} pod=${logfmtValue(pod)} req.method=${logfmtValue(request.method)} req.path=${logfmtValue(path)} req.remote=${logfmtValue(remote)} res.duration=${duration} res.durationUs=${us} res.status=${status} role=${logfmtValue(role)} route=${route}\n`,
    );
  };
}
