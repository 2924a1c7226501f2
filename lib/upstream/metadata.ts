// The real metadata service (--metadata-addr), for every path this proxy does not answer
// itself. One undici Pool: kept-alive, bounded connections, so pass-through traffic from
// every pod on the node costs the instance's metadata quota as little as it can.
//
// Nothing of the pod's is added on the way: no X-Forwarded-For (IMDS rejects IMDSv2
// requests that carry one), no Via. Hop-by-hop and IMDSv2 headers are dropped both ways;
// a request whose pod showed a valid token of this proxy's goes with the node's own
// (NodeToken). A failing upstream is answered 502 within a bound, never left hanging.

import { Pool } from '../undici.js';
import type { IncomingHttpHeaders } from 'undici/types/header.js';
import { AddressCounts, discardBody, StreamedResponse, textResponse, type HeaderList, type Request } from '../http/index.js';
import { NODE_TOKEN_TTL_SECONDS, NodeToken } from './node-token.js';

export interface UpstreamOptions {
  /** Connections to the metadata service at most, for pass-through. */
  connections: number;
  /** Pass-through requests one client address may have waiting upstream at once. */
  perClient: number;
  connectTimeoutMs: number;
  /** From sending the request (or waiting for a connection) to the upstream's head. */
  headersTimeoutMs: number;
  /** Longest pause between body chunks. */
  bodyTimeoutMs: number;
  /** A pod's pass-through request failed or timed out (not one its client left); the proxy's own requests reject instead. */
  onFailure: (failure: { path: string; timedOut: boolean; error: unknown }) => void;
}

export const DEFAULT_UPSTREAM_OPTIONS: Readonly<UpstreamOptions> = Object.freeze({
  connections: 16,
  perClient: 8,
  connectTimeoutMs: 1_000,
  headersTimeoutMs: 2_000,
  bodyTimeoutMs: 2_000,
  onFailure: () => undefined,
});

/** IMDSv2's headers: a pod's token is this proxy's and never goes upstream; the node's own does. */
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
export const TOKEN_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';

/**
 * Never passed either way: RFC 9110 7.6.1's hop-by-hop headers and the proxy-era ones
 * (the framing headers are the engine's to set), and IMDSv2's: a pod's token is not the
 * node's, and the node's (which an upstream echoing headers would hand back) is not a pod's.
 */
const NOT_PASSED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'content-length',
  'expect',
  TOKEN_HEADER,
  TOKEN_TTL_HEADER,
]);

const BAD_GATEWAY = textResponse(502, 'metadata service unreachable\n');
const GATEWAY_TIMEOUT = textResponse(502, 'metadata service did not answer in time\n');
const TOO_MANY = textResponse(503, 'too many metadata requests in flight from this address\n', [['Retry-After', '1']]);

export class UpstreamStats {
  requests = 0;
  errors = 0;
  timeouts = 0;
  /** Requests cancelled because their client went away first. */
  abandoned = 0;
  /** Refused because their client already had `perClient` requests waiting. */
  refused = 0;
}

export interface UpstreamAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export class MetadataUpstream {
  readonly origin: string;
  readonly stats = new UpstreamStats();
  private readonly options: UpstreamOptions;
  private readonly pool: Pool;
  /** The proxy's own requests (tokens, discovery): never queued behind pods' pass-through. */
  private readonly ownPool: Pool;
  /** Pass-through requests waiting upstream, by client address. */
  private readonly waiting = new AddressCounts();
  private readonly nodeToken: NodeToken;

  /** `address`: host or host:port (IPv6 in brackets). */
  constructor(address: string, options: Partial<UpstreamOptions> = {}) {
    this.options = { ...DEFAULT_UPSTREAM_OPTIONS, ...options };
    this.origin = `http://${address}`;
    const pool = (connections: number): Pool =>
      new Pool(this.origin, {
        connections,
        connectTimeout: this.options.connectTimeoutMs,
        headersTimeout: this.options.headersTimeoutMs,
        bodyTimeout: this.options.bodyTimeoutMs,
        keepAliveTimeout: 4_000,
      });
    this.pool = pool(this.options.connections);
    this.ownPool = pool(2);
    this.nodeToken = new NodeToken(() => this.fetch('PUT', '/latest/api/token', { [TOKEN_TTL_HEADER]: String(NODE_TOKEN_TTL_SECONDS) }));
  }

  /** The node's own IMDSv2 token (null when the metadata service gives none). */
  token(): Promise<string | null> {
    return this.nodeToken.get(Date.now());
  }

  /**
   * Passes a request through; answers it with the upstream's answer, streamed, or 502.
   * `withNodeToken`: the pod showed a valid token of this proxy's, so the request goes
   * with the node's; without, it goes without one, and a node that requires IMDSv2
   * refuses it as it would refuse the pod without the proxy.
   */
  forward(request: Request, withNodeToken: boolean): void {
    // One pod cannot fill the pool that every pod's pass-through shares.
    const client = request.remoteAddress;
    if (this.waiting.of(client) >= this.options.perClient) {
      this.stats.refused++;
      request.send(TOO_MANY);
      return;
    }
    this.waiting.add(client);
    this.stats.requests++;
    const deadline = this.deadline();
    // A client that leaves frees its pool connection at once, not at the deadline.
    request.onAbandoned = deadline.abandon;
    (withNodeToken ? this.nodeToken.get(Date.now()) : Promise.resolve(null))
      .then((token) =>
        this.pool.request({
          method: request.method as 'GET',
          path: request.query === '' ? request.path : `${request.path}?${request.query}`,
          headers: forwardedHeaders(request.headers, token),
          body: request.body.length > 0 ? request.body : null,
          signal: deadline.signal,
        }),
      )
      .then(
        (answer) => {
          clearTimeout(deadline.timer);
          this.waiting.remove(client);
          let response: StreamedResponse;
          try {
            const length = Number(answer.headers['content-length']);
            response = new StreamedResponse(
              answer.statusCode,
              returnedHeaders(answer.headers),
              answer.body,
              Number.isSafeInteger(length) && length >= 0 ? length : null,
            );
          } catch {
            // A status or header this engine will not write: not a usable answer.
            this.stats.errors++;
            this.options.onFailure({
              path: request.path,
              timedOut: false,
              error: new Error(`answered ${answer.statusCode} with a status or header this proxy does not pass on`),
            });
            discardBody(answer.body);
            request.send(BAD_GATEWAY);
            return;
          }
          request.send(response);
        },
        (error: unknown) => {
          clearTimeout(deadline.timer);
          this.waiting.remove(client);
          const answer = this.failed(error);
          if (!(error instanceof ClientGone)) this.options.onFailure({ path: request.path, timedOut: answer === GATEWAY_TIMEOUT, error });
          request.send(answer);
        },
      )
      .catch((error: unknown) => request.fail(error));
  }

  /** A small answer read whole (a token, auto-discovery); rejects when the upstream fails. */
  async fetch(method: 'GET' | 'PUT', path: string, headers: Record<string, string> = {}): Promise<UpstreamAnswer> {
    this.stats.requests++;
    const deadline = this.deadline();
    try {
      const answer = await this.ownPool.request({ method, path, headers, signal: deadline.signal });
      const body = await answer.body.text();
      return { status: answer.statusCode, headers: answer.headers, body };
    } catch (error) {
      this.failed(error);
      throw new Error(`metadata service ${this.origin}${path}: ${(error as Error).message}`);
    } finally {
      clearTimeout(deadline.timer);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.ownPool.close()]);
  }

  /** Bounds the whole wait for a head, queueing for a pool connection included. */
  private deadline(): { signal: AbortSignal; timer: NodeJS.Timeout; abandon: () => void } {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DeadlineExceeded()), this.options.connectTimeoutMs + this.options.headersTimeoutMs);
    return {
      signal: controller.signal,
      timer,
      abandon: () => {
        clearTimeout(timer);
        controller.abort(new ClientGone());
      },
    };
  }

  private failed(error: unknown) {
    if (error instanceof ClientGone) {
      this.stats.abandoned++;
      return BAD_GATEWAY; // written nowhere: the client has gone
    }
    const timedOut =
      error instanceof DeadlineExceeded ||
      (error as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT' ||
      (error as { code?: string }).code === 'UND_ERR_CONNECT_TIMEOUT';
    if (timedOut) this.stats.timeouts++;
    else this.stats.errors++;
    return timedOut ? GATEWAY_TIMEOUT : BAD_GATEWAY;
  }
}

class DeadlineExceeded extends Error {}
class ClientGone extends Error {}

/**
 * The client's headers minus hop-by-hop ones, those its Connection header names and its
 * IMDSv2 token, plus the node's token when given.
 */
export function forwardedHeaders(headers: readonly string[], nodeToken: string | null = null): string[] {
  let named: string[] | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'connection') continue;
    named ??= [];
    named.push(...connectionTokens(headers[i + 1] as string));
  }
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (NOT_PASSED.has(name) || named?.includes(name)) continue;
    out.push(name, headers[i + 1] as string);
  }
  if (nodeToken !== null) out.push(TOKEN_HEADER, nodeToken);
  return out;
}

/** The upstream's headers to hand back, minus hop-by-hop ones and IMDSv2's. */
export function returnedHeaders(headers: IncomingHttpHeaders): HeaderList {
  const named = typeof headers.connection === 'string' ? connectionTokens(headers.connection) : [];
  const out: Array<[string, string]> = [];
  for (const name of Object.keys(headers)) {
    if (NOT_PASSED.has(name) || named.includes(name)) continue;
    const value = headers[name];
    if (Array.isArray(value)) for (const item of value) out.push([name, item]);
    else if (value !== undefined) out.push([name, value]);
  }
  return out;
}

/** The header names a Connection header lists (RFC 9110 7.6.1): hop-by-hop too. */
function connectionTokens(value: string): string[] {
  return value
    .toLowerCase()
    .split(',')
    .map((name) => name.trim());
}
