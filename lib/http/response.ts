// Responses built once and written as they are. A hot path (a credential document, a
// role name) keeps one PreparedResponse per answer and re-renders it only when the
// answer changes, so serving it costs a socket write and nothing else.

import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { TOKEN } from './chars.js';

export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

/** What the connection needs the response to say about itself. */
export enum Persistence {
  /** HTTP/1.1 keep-alive: persistence is the default, nothing is added. */
  KeepAlive11 = 0,
  /** HTTP/1.0 keep-alive: persistence must be confirmed with `Connection: keep-alive`. */
  KeepAlive10 = 1,
  /** The connection closes after this response: `Connection: close`. */
  Close = 2,
}

const CONNECTION_LINES = ['', 'Connection: keep-alive\r\n', 'Connection: close\r\n'];

export class PreparedResponse {
  readonly status: number;
  private readonly head: string; // status line and headers, without the blank line
  private readonly body: Buffer;
  private readonly full: Array<Buffer | undefined> = [undefined, undefined, undefined];
  private readonly headOnly: Array<Buffer | undefined> = [undefined, undefined, undefined];

  constructor(status: number, headers: HeaderList, body: Buffer | string) {
    const head = statusAndHeaders(status, headers);
    this.status = status;
    this.body = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    // 204 and 304 carry no body and no Content-Length (RFC 9110 8.6).
    const bodiless = status === 204 || status === 304;
    if (bodiless && this.body.length > 0) throw new TypeError(`status ${status} cannot have a body`);
    this.head = bodiless ? head : `${head}Content-Length: ${this.body.length}\r\n`;
  }

  /** The bytes to write, for a connection in the given state; for HEAD, without the body. */
  bytes(persistence: Persistence, headRequest: boolean): Buffer {
    const cache = headRequest ? this.headOnly : this.full;
    return cache[persistence] ?? this.render(persistence, headRequest);
  }

  private render(persistence: Persistence, headRequest: boolean): Buffer {
    const head = Buffer.from(`${this.head}${CONNECTION_LINES[persistence]}\r\n`, 'latin1');
    const full = Buffer.concat([head, this.body]);
    this.full[persistence] = full;
    // The HEAD form is a view of the GET form, so both share one allocation.
    this.headOnly[persistence] = full.subarray(0, head.length);
    return (headRequest ? this.headOnly[persistence] : full) as Buffer;
  }
}

/** The status line and the headers, each checked. */
function statusAndHeaders(status: number, headers: HeaderList): string {
  if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`invalid status ${status}`);
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [name, value] of headers) {
    checkHeader(name, value);
    head += `${name}: ${value}\r\n`;
  }
  return head;
}

/** The engine itself adds Content-Length and Connection; a caller supplying them is a bug. */
const RESERVED = new Set(['content-length', 'connection', 'transfer-encoding', 'keep-alive']);

function checkHeader(name: string, value: string): void {
  if (name.length === 0) throw new TypeError('empty header name');
  for (let i = 0; i < name.length; i++) {
    if (TOKEN[name.charCodeAt(i) & 0xff] !== 1 || name.charCodeAt(i) > 0xff) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
  }
  if (RESERVED.has(name.toLowerCase())) throw new TypeError(`header ${name} is set by the engine`);
  if (/[\0\r\n]/.test(value)) throw new TypeError(`invalid value for header ${name}`);
}

/** A short plain-text answer, for errors and simple routes. */
export function textResponse(status: number, text: string, headers: HeaderList = []): PreparedResponse {
  return new PreparedResponse(status, [['Content-Type', 'text/plain; charset=utf-8'], ...headers], text);
}

/**
 * A response whose body arrives later (pass-through from upstream). Framed with the
 * upstream's Content-Length when it gave one, else chunked (HTTP/1.1) or by closing the
 * connection (HTTP/1.0). Headers must not include the framing ones the engine sets.
 */
export class StreamedResponse {
  readonly status: number;
  /** Body length in bytes when known ahead. */
  readonly length: number | null;
  readonly body: Readable | null;
  private readonly head: string;

  constructor(status: number, headers: HeaderList, body: Readable | null, length: number | null) {
    // An answer may be dropped (client gone, timeout) and its body destroyed before anyone
    // reads it; the error that destroy raises must not reach the process as unhandled.
    body?.on('error', ignore);
    this.head = statusAndHeaders(status, headers);
    this.status = status;
    this.body = body;
    this.length = status === 204 || status === 304 ? 0 : length;
  }

  /** Whether the body is sent with chunked framing to a client of this HTTP minor version. */
  chunked(minor: number): boolean {
    return this.length === null && minor === 1;
  }

  /** The head for this exchange, to a client of HTTP/1.`minor`. */
  headBytes(minor: number, persistence: Persistence): Buffer {
    let head = this.head;
    if (this.status !== 204 && this.status !== 304) {
      if (this.length !== null) head += `Content-Length: ${this.length}\r\n`;
      else if (minor === 1) head += 'Transfer-Encoding: chunked\r\n';
    }
    return Buffer.from(`${head}${CONNECTION_LINES[persistence]}\r\n`, 'latin1');
  }
}

export type Answer = PreparedResponse | StreamedResponse;

function ignore(): void {}

/** Drops a body nobody will read, without an unhandled error. */
export function discardBody(body: Readable): void {
  body.on('error', ignore);
  body.destroy();
}
