// Routes of the metadata surface. This is the skeleton the credential and pass-through
// routes grow into: answers are prepared once, and the handler only picks one.

import { PreparedResponse, textResponse, type Handler } from '../http/index.js';

const HEALTHY = new PreparedResponse(200, [['Content-Type', 'application/json']], '{"status":"ok"}');
const SYNCING = new PreparedResponse(503, [['Content-Type', 'application/json']], '{"status":"syncing","reason":"pods not listed yet"}');
const NOT_FOUND = textResponse(404, 'Not Found\n');
const METHOD_NOT_ALLOWED = textResponse(405, 'Method Not Allowed\n', [['Allow', 'GET, HEAD']]);

export interface RouterDependencies {
  /** The pod source has delivered its first complete list. */
  ready: () => boolean;
}

export function createRouter(deps: RouterDependencies): Handler {
  return (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      request.send(METHOD_NOT_ALLOWED);
      return;
    }
    if (request.path === '/healthz') request.send(deps.ready() ? HEALTHY : SYNCING);
    else request.send(NOT_FOUND);
  };
}
