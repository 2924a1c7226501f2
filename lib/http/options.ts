// Limits and timeouts of the HTTP engine, and its counters.

import type { ParserLimits } from './parser.js';

export interface HttpServerOptions extends ParserLimits {
  /** Open connections; one more is answered 503 and closed. */
  maxConnections: number;
  /**
   * Open connections from one client address (one pod), so one pod cannot take the cap
   * from every other. Past it, and once the last tenth of the cap is reached for an
   * address already holding `FEW_CONNECTIONS`, a connection is answered 503 and closed.
   */
  maxConnectionsPerAddress: number;
  /** Requests read ahead of their answers on one connection; reading stops at the cap. */
  maxPipelined: number;
  /** ms for a request (head and body) to arrive once its first byte has (slowloris bound). */
  headersTimeout: number;
  /** ms an idle keep-alive connection stays open. */
  keepAliveTimeout: number;
  /** ms a handler may take to answer before the engine answers 503 and closes. */
  handlerTimeout: number;
  /** ms the socket may refuse writes (a client that does not read) before it is destroyed. */
  sendTimeout: number;
  /** ms to wait, after ending a connection, for the client to close it. */
  lingerTimeout: number;
}

export const DEFAULT_HTTP_OPTIONS: Readonly<HttpServerOptions> = Object.freeze({
  maxHeaderSize: 8 * 1024,
  maxHeaders: 100,
  maxBodySize: 64 * 1024,
  // Sized to the DaemonSet's 128 Mi limit: each connection holding a head at the size
  // limit costs about 12 KB (benchmarks/RESULTS.md, half-sent heads), and a node's
  // cold-start storm opens under 800 at once.
  maxConnections: 2_048,
  maxConnectionsPerAddress: 1_000,
  maxPipelined: 16,
  headersTimeout: 10_000,
  keepAliveTimeout: 5_000,
  handlerTimeout: 30_000,
  sendTimeout: 10_000,
  lingerTimeout: 2_000,
});

/**
 * The last tenth of `maxConnections` is kept for addresses holding fewer connections
 * than this: a flood from several addresses still leaves every other pod its few (an SDK
 * uses one or two). Only more flooding addresses than a tenth of the cap over this can
 * fill the cap.
 */
export const FEW_CONNECTIONS = 8;

export function httpOptions(overrides: Partial<HttpServerOptions> = {}): HttpServerOptions {
  const options = { ...DEFAULT_HTTP_OPTIONS, ...overrides };
  for (const [key, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value <= 0) throw new RangeError(`HTTP option ${key} must be a positive integer, got ${value}`);
  }
  return options;
}

/** Counters only; whoever reports them reads and resets what it needs. */
export class HttpStats {
  connections = 0;
  /** Refused at the cap, or at an address's share of it. */
  connectionsRejected = 0;
  requests = 0;
  refused = 0;
  requestTimeouts = 0;
  idleTimeouts = 0;
  handlerTimeouts = 0;
  sendTimeouts = 0;
  socketErrors = 0;
  handlerErrors = 0;
  /** Streamed answers whose body failed midway (the connection was dropped). */
  streamsAborted = 0;
}
