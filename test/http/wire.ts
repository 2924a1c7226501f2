// Raw-socket helpers for HTTP engine tests: a server with an echo handler, and a
// client that writes exact bytes and reads responses off the wire.

import { connect, type Socket } from 'node:net';
import { HttpServer, type HttpServerOptions, type Handler, type Request } from '../../lib/http/index.js';

export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** What the echo handler reports about the request it parsed. */
export interface Echo {
  method: string;
  target: string;
  path: string;
  query: string;
  authority: string;
  minor: number;
  keepAlive: boolean;
  headers: string[];
  body: string;
}

export function describe(request: Request): Echo {
  return {
    method: request.method,
    target: request.target,
    path: request.path,
    query: request.query,
    authority: request.authority,
    minor: request.minor,
    keepAlive: request.keepAlive,
    headers: request.headers,
    body: request.body.toString('latin1'),
  };
}

export const echoHandler: Handler = (request) => {
  request.respond(200, JSON.stringify(describe(request)), [['Content-Type', 'application/json']]);
};

export async function startServer(handler: Handler = echoHandler, options: Partial<HttpServerOptions> = {}): Promise<{ server: HttpServer; port: number }> {
  const server = new HttpServer(handler, options);
  const address = await server.listen(0, '127.0.0.1');
  return { server, port: address.port };
}

/** A client connection that buffers everything the server sends. */
export class WireClient {
  readonly socket: Socket;
  private data = Buffer.alloc(0);
  private offset = 0;
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('end', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects to the server on loopback, from `localAddress` (another loopback address stands for another pod). */
  static open(port: number, localAddress?: string): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', localAddress });
      socket.setNoDelay(true);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new WireClient(socket));
      });
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private changed(timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Everything received and not yet taken as a response. */
  get unread(): Buffer {
    return this.data.subarray(this.offset);
  }

  /** The next complete response, or null if none arrives within `timeoutMs`. */
  async response(timeoutMs = 2000, headRequest = false): Promise<WireResponse | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = parseResponse(this.data, this.offset, headRequest);
      if (parsed !== null) {
        this.offset = parsed.end;
        return parsed.response;
      }
      const left = deadline - Date.now();
      if (this.closed || left <= 0) return null;
      await this.changed(left);
    }
  }

  /** True if the server closes the connection within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.changed(left);
    }
    return true;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Parses one response at `offset`; null until it is complete. */
export function parseResponse(data: Buffer, offset: number, headRequest = false): { response: WireResponse; end: number } | null {
  const headEnd = data.indexOf('\r\n\r\n', offset, 'latin1');
  if (headEnd === -1) return null;
  const lines = data.toString('latin1', offset, headEnd).split('\r\n');
  const status = Number((lines[0] ?? '').split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const bodyStart = headEnd + 4;
  if (status === 100) return { response: { status, headers, body: Buffer.alloc(0) }, end: bodyStart };
  const length = headRequest ? 0 : Number(headers['content-length'] ?? 0);
  if (data.length < bodyStart + length) return null;
  return { response: { status, headers, body: data.subarray(bodyStart, bodyStart + length) }, end: bodyStart + length };
}

/**
 * Every byte the server sent is a sequence of complete responses. An answer to HEAD has
 * no body despite its Content-Length; the checker cannot know which answers those were,
 * so it accepts a bodiless reading when the next bytes start a response.
 */
export function wellFormed(data: Buffer): boolean {
  let offset = 0;
  while (offset < data.length) {
    const full = parseResponse(data, offset);
    const startsNext = (end: number): boolean => end === data.length || data.toString('latin1', end, end + 5) === 'HTTP/';
    if (full !== null && startsNext(full.end)) {
      offset = full.end;
      continue;
    }
    const bodiless = parseResponse(data, offset, true);
    if (bodiless === null || !startsNext(bodiless.end)) return false;
    offset = bodiless.end;
  }
  return true;
}

export const PROBE = 'GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n';
