// Routes of the metadata surface. This is the skeleton the credential and pass-through
// routes grow into: answers are prepared once, and the handler only picks one.

import { PreparedResponse, textResponse, type Handler } from '../http/index.js';

const HEALTHY = new PreparedResponse(200, [['Content-Type', 'application/json']], '{"status":"ok"}');
const NOT_FOUND = textResponse(404, 'Not Found\n');
const METHOD_NOT_ALLOWED = textResponse(405, 'Method Not Allowed\n', [['Allow', 'GET, HEAD']]);

export function createRouter(): Handler {
  return (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      request.send(METHOD_NOT_ALLOWED);
      return;
    }
    request.send(request.path === '/healthz' ? HEALTHY : NOT_FOUND);
  };
}
