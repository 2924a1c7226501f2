// One parsed request, and the handle through which its handler answers it.

import { PreparedResponse, textResponse, type Answer, type HeaderList } from './response.js';

const EMPTY = Buffer.alloc(0);

/** Where a request's answer goes; implemented by the connection that read it. */
export interface Responder {
  answer(request: Request, response: Answer): void;
  failed(request: Request, error: unknown): void;
}

export class Request {
  readonly method: string;
  /** The request-target exactly as sent. */
  readonly target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: number;
  /** Header names (lower case) and values, alternating, in the order they came. */
  readonly headers: string[];
  /** Whether the client wants the connection kept open after this exchange. */
  readonly keepAlive: boolean;
  /** Path of the target, without the query; for absolute-form targets the path part. */
  path = '/';
  /** Query string without its `?`, or ''. */
  query = '';
  /** host[:port] of an absolute-form target (a client using this as its HTTP proxy), else ''. */
  authority = '';
  /** False when the target is none of origin-form, absolute-form or asterisk-form. */
  valid = true;
  body: Buffer = EMPTY;
  remoteAddress = '';
  /** Set by the handler: which of its routes served this request (for stats). */
  route = 0;
  /** Set by a handler with work under way elsewhere (an upstream request): called if the client goes away first. */
  onAbandoned: (() => void) | null = null;

  // Owned by the connection.
  /** @internal */ responder: Responder | null = null;
  /** @internal */ startedAt = 0;
  /** @internal */ answered = false;
  /** @internal */ pending: Answer | null = null;

  constructor(method: string, target: string, minor: number, headers: string[], keepAlive: boolean) {
    this.method = method;
    this.target = target;
    this.minor = minor;
    this.headers = headers;
    this.keepAlive = keepAlive;
    this.splitTarget(target);
  }

  /** The first value of a header; `name` must be lower case. */
  header(name: string): string | undefined {
    const headers = this.headers;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] === name) return headers[i + 1];
    }
    return undefined;
  }

  /**
   * Answers with a prepared response, or a streamed one whose body arrives later; the
   * engine adds only what the connection needs.
   */
  send(response: Answer): void {
    this.responder?.answer(this, response);
  }

  /**
   * The handler failed, at once or in a continuation after an await: the error is
   * reported (onHandlerError) and the request, unless already answered, gets 500 and its
   * connection closes. Every asynchronous route ends its promise chain here, so a throw
   * can never become an unhandled rejection, which would end the process for every pod.
   */
  fail(error: unknown): void {
    this.responder?.failed(this, error);
  }

  /** Answers with a response built now, for answers that are not worth preparing. */
  respond(status: number, body: Buffer | string, headers: HeaderList = []): void {
    this.send(new PreparedResponse(status, headers, body));
  }

  /** Answers with a one-line plain-text message. */
  respondText(status: number, text: string, headers: HeaderList = []): void {
    this.send(textResponse(status, text, headers));
  }

  private splitTarget(target: string): void {
    const first = target.charCodeAt(0);
    if (first === 0x2f /* / */) {
      this.splitQuery(target);
      return;
    }
    if (target === '*') {
      this.path = '*';
      this.valid = this.method === 'OPTIONS';
      return;
    }
    const scheme = /^https?:\/\//i.exec(target);
    if (scheme === null || this.method === 'CONNECT') {
      this.valid = false;
      return;
    }
    const rest = target.slice(scheme[0].length);
    let authorityEnd = rest.length;
    for (let i = 0; i < rest.length; i++) {
      const c = rest.charCodeAt(i);
      if (c === 0x2f || c === 0x3f) {
        authorityEnd = i;
        break;
      }
    }
    this.authority = rest.slice(0, authorityEnd);
    if (this.authority.length === 0 || this.authority.includes('@')) {
      this.valid = false; // userinfo is forbidden in http(s) URIs sent to a server (RFC 9110 4.2.4)
      return;
    }
    const pathAndQuery = rest.slice(authorityEnd);
    this.splitQuery(pathAndQuery.charCodeAt(0) === 0x2f ? pathAndQuery : `/${pathAndQuery}`);
  }

  private splitQuery(pathAndQuery: string): void {
    const q = pathAndQuery.indexOf('?');
    if (q === -1) {
      this.path = pathAndQuery;
    } else {
      this.path = pathAndQuery.slice(0, q);
      this.query = pathAndQuery.slice(q + 1);
    }
  }
}
