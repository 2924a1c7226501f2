// One client connection: reads and parses requests, hands them to the handler, and
// writes the answers strictly in request order, whatever order the handlers finish in.
//
// Reading stops (the socket is paused and the unparsed rest of the read is held) while
// the pipelining cap is reached or the socket cannot take more writes, and resumes when
// answers are written or the socket drains. Timeouts are checked by the server's sweep
// (`checkTimeouts`), so a connection owns no timers.
//
// A streamed answer (pass-through) is written as its body arrives, paced by the socket;
// answers behind it wait until its body has ended. Times are `performance.now()` ms.

import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { RequestParser } from './parser.js';
import type { Request, Responder } from './request.js';
import { discardBody, Persistence, StreamedResponse, textResponse, type Answer, type PreparedResponse } from './response.js';
import type { HttpServerOptions, HttpStats } from './options.js';

export type Handler = (request: Request) => void;

/** What a connection needs from the server that accepted it. */
export interface ConnectionHost {
  readonly options: HttpServerOptions;
  readonly handler: Handler;
  readonly stats: HttpStats;
  readonly shuttingDown: boolean;
  connectionClosed(connection: Connection): void;
  handlerFailed(error: unknown, request: Request): void;
  /** A request got its answer (not yet written, if earlier ones are still owed). */
  answered(request: Request, status: number): void;
}

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const INTERNAL_ERROR = textResponse(500, 'internal error\n');

/**
 * The connection a socket (or the streamed body being written) belongs to. Listeners are
 * the module's functions below, reaching their connection through this, rather than
 * closures made for every connection: a connection per request (SDKs that do not keep
 * connections alive) then allocates less for the collector to trace.
 */
const OWNER = Symbol('connection');
type Owned = { [OWNER]: Connection };

/**
 * A connection's state is these flags, moved only by the named transitions below:
 * - reading: inside a read (answers given meanwhile are corked into one write);
 * - paused: the socket is paused; true whenever `unread` holds bytes or writes are
 *   blocked (`writeBlocked`), until `resumeReading` or `finish`;
 * - closing (`stopReading`): no request is parsed any more and nothing is held
 *   (`unread` is null); the in-flight answers are still written, then `finish`;
 * - ended (`finish`): the end is sent, input is read and discarded until the peer
 *   closes or the linger deadline; implies closing;
 * - destroyed: the socket closed; nothing more happens.
 * `inflight` holds the requests read and not yet written, in order; `streamBody`, the
 * body of its first request's streamed answer while it is written.
 */
export class Connection implements Responder {
  readonly socket: Socket;
  private readonly host: ConnectionHost;
  private readonly parser: RequestParser;
  readonly remoteAddress: string;
  private inflight: Request[] = [];
  // Bytes read but not parsed yet, held while reading is stopped.
  private unread: Buffer | null = null;
  private unreadOffset = 0;
  private paused = false;
  private writeBlocked = false;
  private blockedSince = 0;
  private reading = false; // inside read(): answers given now are batched in one write
  private writesThisRead = 0;
  /** No more requests are read; the socket ends once the in-flight answers are written. */
  private closing = false;
  private finalResponse: PreparedResponse | null = null;
  /** The body of the streamed answer being written, if any; later answers wait for it. */
  private streamBody: Readable | null = null;
  private streamChunked = false;
  private ended = false;
  private destroyed = false;
  private requestDeadline = 0;
  private idleSince: number;
  private lingerDeadline = 0;

  constructor(socket: Socket, host: ConnectionHost) {
    this.socket = socket;
    this.host = host;
    this.parser = new RequestParser(host.options);
    this.remoteAddress = socket.remoteAddress ?? '';
    this.idleSince = performance.now();
    socket.setNoDelay(true);
    (socket as unknown as Owned)[OWNER] = this;
    socket.on('data', socketData);
    socket.on('end', socketEnd);
    socket.on('error', socketError);
    socket.on('close', socketClose);
  }

  /** True when nothing is in flight and no request has begun: safe to close at once. */
  get idle(): boolean {
    return this.owesNothing && !this.parser.inMessage;
  }

  /** Every answer read so far is fully written (or being written by the socket). */
  private get owesNothing(): boolean {
    return this.inflight.length === 0 && this.streamBody === null;
  }

  /** @internal */ onData(chunk: Buffer): void {
    if (this.closing) return; // draining before close: the rest is discarded
    if (this.unread !== null) {
      // Reading is stopped; a read already under way is kept behind the held bytes.
      this.unread = Buffer.concat([this.unread.subarray(this.unreadOffset), chunk]);
      this.unreadOffset = 0;
      return;
    }
    this.reading = true;
    this.writesThisRead = 0;
    this.process(chunk, 0);
    this.endRead();
  }

  /** @internal */ onDrain(): void {
    this.writeBlocked = false;
    if (this.streamBody !== null) {
      this.streamBody.resume();
      return;
    }
    this.resumeReading();
  }

  /** @internal */ onEnd(): void {
    // The client will send nothing more; answer what it asked, then close.
    this.stopReading();
    if (this.owesNothing) this.finish();
  }

  /** @internal */ onClose(): void {
    this.destroyed = true;
    for (const request of this.inflight) if (!request.answered) request.onAbandoned?.();
    releasePending(this.inflight);
    this.inflight = [];
    this.unread = null;
    if (this.streamBody !== null) {
      // The upstream body has nowhere to go: release its connection.
      const body = this.streamBody;
      this.endStream();
      discardBody(body);
    }
    this.host.connectionClosed(this);
  }

  private endRead(): void {
    this.reading = false;
    if (this.writesThisRead > 1) this.socket.uncork();
    if (!this.closing && this.requestDeadline === 0 && this.parser.inMessage) {
      this.requestDeadline = performance.now() + this.host.options.headersTimeout;
    }
  }

  private process(buf: Buffer, offset: number): void {
    const parser = this.parser;
    const cap = this.host.options.maxPipelined;
    while (offset < buf.length) {
      if (this.inflight.length >= cap || this.writeBlocked) {
        this.unread = buf;
        this.unreadOffset = offset;
        this.pause();
        return;
      }
      offset = parser.execute(buf, offset, buf.length);
      if (parser.message !== null) {
        this.dispatch(parser.take());
        if (this.closing) return;
      } else if (parser.errorStatus !== 0) {
        this.refuse(parser.errorStatus, parser.errorReason);
        return;
      }
    }
    if (parser.continueRequested) {
      parser.continueRequested = false;
      // An interim answer may only go out when no earlier answer is still owed (nor a
      // streamed body still being written).
      if (this.owesNothing) this.write(CONTINUE);
    }
  }

  private dispatch(request: Request): void {
    this.requestDeadline = 0;
    request.responder = this;
    request.remoteAddress = this.remoteAddress;
    request.startedAt = performance.now();
    this.inflight.push(request);
    this.host.stats.requests++;
    // Requests pipelined after one that closes are not read (RFC 9112 9.6).
    if (!request.keepAlive || this.host.shuttingDown) this.stopReading();
    try {
      this.host.handler(request);
    } catch (error) {
      this.failed(request, error);
    }
  }

  /** Responder: the handler threw, now or after an await. */
  failed(request: Request, error: unknown): void {
    this.host.handlerFailed(error, request);
    if (request.answered || this.destroyed) return;
    this.stopReading();
    this.answer(request, INTERNAL_ERROR);
  }

  /** Responder: called once per request, in any order; written in request order. */
  answer(request: Request, response: Answer): void {
    if (request.answered || this.destroyed) {
      if (response instanceof StreamedResponse && response.body !== null) discardBody(response.body);
      return;
    }
    request.answered = true;
    this.host.answered(request, response.status);
    if (this.streamBody !== null || this.inflight[0] !== request) {
      request.pending = response;
      return;
    }
    this.flush(request, response);
  }

  private flush(request: Request, response: Answer): void {
    const inflight = this.inflight;
    let current: Request | undefined = request;
    let next: Answer | null = response;
    while (current !== undefined && next !== null) {
      inflight.shift();
      const last = inflight.length === 0;
      const close = !current.keepAlive || (this.closing && last && this.finalResponse === null);
      current.pending = null;
      if (next instanceof StreamedResponse) {
        if (this.startStream(current, next, close)) return; // the rest waits for the body's end
      } else {
        this.write(next.bytes(persistenceOf(close, current.minor), current.method === 'HEAD'));
      }
      current = inflight[0];
      next = current === undefined ? null : current.pending;
    }
    this.flushed();
  }

  /** After answers were written: close if that was the last one owed, else read on. */
  private flushed(): void {
    if (this.inflight.length === 0) {
      if (this.closing) {
        this.finish();
        return;
      }
      this.idleSince = performance.now();
    }
    this.resumeReading();
  }

  /** Writes a streamed answer's head; true while its body is still to come. */
  private startStream(request: Request, response: StreamedResponse, close: boolean): boolean {
    // Without a length, an HTTP/1.0 client learns where the body ends only by the close.
    if (response.length === null && request.minor === 0) close = true;
    if (close) {
      // Nothing may follow a body that the close delimits: requests read after it go
      // unanswered, and no refusal (400, 408) is written after it.
      this.stopReading();
      this.dropQueue();
      this.finalResponse = null;
      this.requestDeadline = 0;
    }
    this.write(response.headBytes(request.minor, persistenceOf(close, request.minor)));
    const body = response.body;
    if (body === null) return false;
    if (request.method === 'HEAD' || response.length === 0) {
      body.resume(); // drained so the upstream connection is reused
      return false;
    }
    if (body.destroyed || body.errored !== null) {
      // It died while it waited its turn; its head is out, so the connection must go.
      this.host.stats.streamsAborted++;
      this.destroy();
      return true;
    }
    this.streamBody = body;
    this.streamChunked = response.chunked(request.minor);
    (body as unknown as Owned)[OWNER] = this;
    body.on('data', streamData);
    body.on('end', streamEnd);
    body.on('error', streamError);
    body.on('close', streamClose);
    if (this.writeBlocked) body.pause();
    return true;
  }

  /** @internal */ onStreamData(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (bytes.length === 0) return;
    if (this.streamChunked) {
      this.socket.cork();
      this.write(Buffer.from(`${bytes.length.toString(16)}\r\n`, 'latin1'));
      this.write(bytes);
      this.write(CRLF);
      this.socket.uncork();
    } else {
      this.write(bytes);
    }
    if (this.writeBlocked) this.streamBody?.pause();
  }

  /** @internal */ onStreamEnd(): void {
    if (this.streamChunked) this.write(LAST_CHUNK);
    this.endStream();
    const head = this.inflight[0];
    if (head !== undefined && head.pending !== null) this.flush(head, head.pending);
    else this.flushed();
  }

  /** @internal */ socketFailed(): void {
    this.host.stats.socketErrors++;
  }

  /** @internal */ onStreamClose(): void {
    if (this.streamBody !== null && !this.streamBody.readableEnded) this.onStreamError();
  }

  /** @internal */ onStreamError(): void {
    // The body broke off mid-answer; its framing cannot be completed, so the client must
    // see the connection fail rather than a truncated answer it would take as whole.
    this.host.stats.streamsAborted++;
    this.endStream();
    this.destroy();
  }

  private endStream(): void {
    const body = this.streamBody;
    if (body === null) return;
    body.off('data', streamData);
    body.off('end', streamEnd);
    body.off('error', streamError);
    body.off('close', streamClose);
    this.streamBody = null;
  }

  private write(bytes: Buffer): void {
    if (this.reading && ++this.writesThisRead === 2) this.socket.cork();
    if (!this.socket.write(bytes) && !this.writeBlocked) {
      this.writeBlocked = true;
      this.blockedSince = performance.now();
      // Listened for only while blocked: most connections never are.
      this.socket.once('drain', socketDrain);
      this.pause();
    }
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private resumeSocket(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Closing: no more requests are parsed, and the bytes held for them are dropped. */
  private stopReading(): void {
    this.closing = true;
    this.unread = null;
  }

  /** Forgets every queued request: each marked answered, so an answer given later is ignored. */
  private dropQueue(): void {
    for (const request of this.inflight) request.answered = true;
    releasePending(this.inflight);
    this.inflight = [];
  }

  private resumeReading(): void {
    if (this.reading || this.closing || this.writeBlocked) return;
    if (this.inflight.length >= this.host.options.maxPipelined) return;
    const held = this.unread;
    if (held !== null) {
      this.unread = null;
      this.reading = true;
      this.writesThisRead = 0;
      this.process(held, this.unreadOffset);
      this.endRead();
      if (this.unread !== null || this.closing) return;
    }
    this.resumeSocket();
  }

  /** Refuses the input: an error answer after the in-flight ones, then close. */
  private refuse(status: number, reason: string): void {
    this.host.stats.refused++;
    this.stopReading();
    this.finalResponse = textResponse(status, `${reason}\n`);
    if (this.owesNothing) this.finish();
  }

  /** Everything owed is written: send the final answer if any, end, and drain until the peer closes. */
  private finish(): void {
    if (this.ended || this.destroyed) return;
    this.ended = true;
    if (this.finalResponse !== null) this.write(this.finalResponse.bytes(Persistence.Close, false));
    this.finalResponse = null;
    this.socket.end();
    // Keep reading (and discarding) so unread client bytes do not turn our FIN into a reset.
    this.writeBlocked = false;
    this.resumeSocket();
    this.lingerDeadline = performance.now() + this.host.options.lingerTimeout;
  }

  /** Stops reading new requests, for server shutdown; in-flight answers are still written. */
  shutdown(): void {
    if (this.closing) return;
    this.stopReading();
    if (this.owesNothing) this.finish();
  }

  destroy(): void {
    if (!this.destroyed) this.socket.destroy();
  }

  /** Called by the server's sweep. */
  checkTimeouts(now: number): void {
    if (this.destroyed) return;
    const options = this.host.options;
    const stats = this.host.stats;
    if (this.ended) {
      if (now >= this.lingerDeadline) this.destroy();
      return;
    }
    if (this.writeBlocked && now - this.blockedSince >= options.sendTimeout) {
      stats.sendTimeouts++;
      this.destroy();
      return;
    }
    const head = this.inflight[0];
    if (head !== undefined && !head.answered && now - head.startedAt >= options.handlerTimeout) {
      stats.handlerTimeouts++;
      // The late answer and the answers queued behind it are dropped with the connection.
      this.dropQueue();
      this.inflight = [head];
      head.answered = false;
      this.stopReading();
      this.answer(head, textResponse(503, 'no answer in time\n'));
      return;
    }
    if (this.requestDeadline !== 0 && now >= this.requestDeadline) {
      stats.requestTimeouts++;
      this.requestDeadline = 0;
      this.refuse(408, 'request not received in time');
      return;
    }
    if (this.owesNothing && !this.parser.inMessage && !this.closing && now - this.idleSince >= options.keepAliveTimeout) {
      stats.idleTimeouts++;
      this.destroy();
    }
  }
}

function persistenceOf(close: boolean, minor: number): Persistence {
  return close ? Persistence.Close : minor === 1 ? Persistence.KeepAlive11 : Persistence.KeepAlive10;
}

/** Answers that will never be written: streamed bodies are destroyed to free their upstream. */
function releasePending(requests: Request[]): void {
  for (const request of requests) {
    if (request.pending instanceof StreamedResponse && request.pending.body !== null) discardBody(request.pending.body);
    request.pending = null;
  }
}

// The listeners: `this` is the socket or the streamed body, owned by one connection.
function socketData(this: Owned, chunk: Buffer): void {
  this[OWNER].onData(chunk);
}
function socketDrain(this: Owned): void {
  this[OWNER].onDrain();
}
function socketEnd(this: Owned): void {
  this[OWNER].onEnd();
}
function socketError(this: Owned): void {
  this[OWNER].socketFailed();
}
function socketClose(this: Owned): void {
  this[OWNER].onClose();
}
function streamData(this: Owned, chunk: Buffer | string): void {
  this[OWNER].onStreamData(chunk);
}
function streamEnd(this: Owned): void {
  this[OWNER].onStreamEnd();
}
function streamError(this: Owned): void {
  this[OWNER].onStreamError();
}
/** Closed without 'end' (destroyed, or aborted): as an error. */
function streamClose(this: Owned): void {
  this[OWNER].onStreamClose();
}
