// Incremental HTTP/1.1 request parser (RFC 9112), written over Buffers.
//
// One parser per connection. `execute` scans bytes with an explicit state machine and
// stops at the end of each message, so the connection can dispatch the request (and
// apply its pipelining cap) before parsing the next one. The request line and header
// block are validated byte by byte as they arrive, so hostile input is refused at the
// first bad byte instead of after a timeout. Field positions are recorded as offsets
// from the start of the message; strings are made once, when the head is complete.
// A head that spans reads is gathered into one scratch buffer, so a request split at
// any offset parses exactly like the same request in one read.

import { COLON, CR, FIELD_VALUE, HEX, HTAB, LF, SEMICOLON, SP, TARGET, TOKEN } from './chars.js';
import { Request } from './request.js';

export interface ParserLimits {
  /** Bytes in the request line plus header block (and, separately, in a trailer block). */
  maxHeaderSize: number;
  /** Header lines in one message. */
  maxHeaders: number;
  /** Body bytes, with Content-Length or after de-chunking. */
  maxBodySize: number;
}

enum State {
  MessageStart,
  MessageStartLf,
  Method,
  Target,
  Version,
  RequestLineLf,
  FieldStart,
  FieldName,
  FieldValueOws,
  FieldValue,
  FieldValueLf,
  HeadEndLf,
  BodyIdentity,
  ChunkSize,
  ChunkExt,
  ChunkSizeLf,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  Failed,
}

const MAX_CHUNK_SIZE_DIGITS = 8;
/** Chunk extensions are read and dropped; this many bytes of them per message at most. */
export const MAX_CHUNK_EXTENSION_BYTES = 1024;
/** A head split across reads is gathered in a buffer that starts this small and doubles as needed. */
const SCRATCH_START = 512;
/** The field offsets of whichever head is being scanned within one read (see RequestParser.fields). */
const SHARED_FIELDS: number[] = [];

/** Methods and header names that clients send every time, interned so the hot path makes no string for them. */
const KNOWN_METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH'];
const KNOWN_HEADERS = [
  'host',
  'user-agent',
  'accept',
  'accept-encoding',
  'connection',
  'content-length',
  'content-type',
  'transfer-encoding',
  'expect',
  'x-aws-ec2-metadata-token',
  'x-aws-ec2-metadata-token-ttl-seconds',
  'x-forwarded-for',
  'amz-sdk-invocation-id',
  'amz-sdk-request',
];

declare module 'node:buffer' {
  interface Buffer {
    /** Node's own latin1 decoder, without `toString`'s argument handling. */
    latin1Slice(start: number, end: number): string;
  }
}

export class RequestParser {
  /** The request that `execute` finished, until the caller takes it with `take()`. */
  message: Request | null = null;
  /** Set when the input is refused; the connection answers with it and closes. */
  errorStatus = 0;
  errorReason = '';
  /** Set when a head asking `Expect: 100-continue` is complete and its body is still to come. */
  continueRequested = false;

  private readonly limits: ParserLimits;
  private state = State.MessageStart;
  private scratch: Buffer | null = null;
  private scratchLength = 0; // > 0 while a head is being gathered across reads
  private scanPosition = 0; // next scratch byte to scan
  // Offsets below are relative to the first byte of the message.
  private methodEnd = 0;
  private targetStart = 0;
  private targetEnd = 0;
  private versionStart = 0;
  private fieldCount = 0;
  // [nameStart, nameEnd, valueStart, valueEnd] per field. While a head is scanned within
  // one read (nearly always), the one shared array serves every parser: a connection per
  // request then allocates none. A section still open when the read ends takes its own
  // copy (see execute), since another connection's head may be scanned before its rest.
  private fields: number[] = SHARED_FIELDS;
  private inTrailers = false;
  private trailerBytes = 0;
  // Body state.
  private request: Request | null = null;
  private remaining = 0; // body bytes (identity) or chunk bytes still to read
  private bodyLength = 0;
  private bodyParts: Buffer[] = [];
  private chunkSizeDigits = 0;
  private chunkExtensionBytes = 0;

  constructor(limits: ParserLimits) {
    this.limits = limits;
  }

  /** True while a message has begun but is not complete (for timeouts and close handling). */
  get inMessage(): boolean {
    return this.state !== State.MessageStart || this.scratchLength > 0;
  }

  take(): Request {
    const request = this.message as Request;
    this.message = null;
    return request;
  }

  /**
   * Parses `buf[start..end)`. Returns the offset of the first byte not consumed: it is
   * `end` unless a message completed (`message` set) or the input was refused
   * (`errorStatus` set).
   */
  execute(buf: Buffer, start: number, end: number): number {
    const stop = this.parse(buf, start, end);
    if (this.fields === SHARED_FIELDS && (this.inTrailers || (this.state > State.MessageStartLf && this.state < State.BodyIdentity))) {
      this.fields = SHARED_FIELDS.slice(0, this.fieldCount * 4 + 4);
    }
    return stop;
  }

  private parse(buf: Buffer, start: number, end: number): number {
    let i = start;
    if (this.state === State.Failed) return i;
    if (this.state <= State.MessageStartLf) {
      i = this.skipEmptyLines(buf, i, end);
      if (i === end || this.errorStatus !== 0) return i;
    }
    if (this.state < State.BodyIdentity && !this.inTrailers) {
      if (this.scratchLength > 0) {
        i = this.continueHead(buf, i, end);
      } else {
        const origin = i;
        i = this.scanHead(buf, i, end, origin);
        if (this.state < State.BodyIdentity && this.message === null) {
          this.stash(buf, origin, end);
          return end;
        }
      }
      if (this.message !== null || this.errorStatus !== 0) return i;
    }
    return this.scanBody(buf, i, end);
  }

  /** RFC 9112 2.2: empty lines before a request line are ignored. */
  private skipEmptyLines(buf: Buffer, i: number, end: number): number {
    while (i < end) {
      const c = buf[i] as number;
      if (this.state === State.MessageStartLf) {
        if (c !== LF) return this.fail(400, 'bare CR');
        this.state = State.MessageStart;
      } else if (c === CR) {
        this.state = State.MessageStartLf;
      } else if (c === LF) {
        return this.fail(400, 'bare LF');
      } else {
        this.state = State.Method;
        return i;
      }
      i++;
    }
    return i;
  }

  private fail(status: number, reason: string): number {
    this.state = State.Failed;
    this.errorStatus = status;
    this.errorReason = reason;
    return 0;
  }

  /** Keeps an unfinished head (message start .. end of read) for the next read. */
  private stash(buf: Buffer, origin: number, end: number): void {
    const length = end - origin;
    if (length === 0) return;
    this.scratch = this.scratchFor(length);
    buf.copy(this.scratch, 0, origin, end);
    this.scratchLength = length;
    this.scanPosition = length;
  }

  /**
   * A gathering buffer for `needed` bytes, grown by doubling up to the head limit, so an
   * idle connection holding a few bytes of a head holds a small buffer, not the limit.
   */
  private scratchFor(needed: number): Buffer {
    const max = this.limits.maxHeaderSize;
    const current = this.scratch;
    if (current !== null && current.length >= Math.min(needed, max)) return current;
    let size = current === null ? SCRATCH_START : current.length * 2;
    while (size < needed && size < max) size *= 2;
    const grown = Buffer.allocUnsafe(Math.min(size, max));
    if (current !== null) current.copy(grown, 0, 0, this.scratchLength);
    return grown;
  }

  /** Appends a read to the gathered head and scans the new bytes. */
  private continueHead(buf: Buffer, start: number, end: number): number {
    const before = this.scratchLength;
    const scratch = this.scratchFor(before + (end - start));
    this.scratch = scratch;
    const copied = buf.copy(scratch, before, start, end);
    this.scratchLength = before + copied;
    const stop = this.scanHead(scratch, this.scanPosition, this.scratchLength, 0);
    this.scanPosition = stop;
    if (this.state === State.Failed) return start;
    if (this.message !== null || this.state >= State.BodyIdentity) {
      // The head is built (its parts are strings now): the buffer goes with it.
      this.scratchLength = 0;
      this.scratch = null;
      return start + (stop - before);
    }
    return start + copied; // head still open; a full scratch is caught by the size limit in scanHead
  }

  /**
   * Runs the head states over `buf[i..end)`; `origin` is where the message starts in
   * `buf`. Returns where it stopped. The states run in the order bytes arrive, so each
   * stage falls through to the next without a dispatch; a stage that runs out of input
   * saves its state, and the next read enters at that stage.
   */
  private scanHead(buf: Buffer, i: number, end: number, origin: number): number {
    const maxEnd = origin + this.limits.maxHeaderSize;
    const limit = Math.min(end, maxEnd);
    let state = this.state;
    if (state === State.Method) {
      while (i < limit && TOKEN[buf[i] as number] === 1) i++;
      if (i === limit) return this.outOfInput(state, i, maxEnd);
      if (buf[i] !== SP || i === origin) return this.fail(400, 'invalid method');
      this.methodEnd = i - origin;
      this.targetStart = ++i - origin;
      state = State.Target;
    }
    if (state === State.Target) {
      while (i < limit && TARGET[buf[i] as number] === 1) i++;
      if (i === limit) return this.outOfInput(state, i, maxEnd);
      if (buf[i] !== SP || i - origin === this.targetStart) return this.fail(400, 'invalid request target');
      this.targetEnd = i - origin;
      this.versionStart = ++i - origin;
      state = State.Version;
    }
    if (state === State.Version) {
      const versionEnd = origin + this.versionStart + 8;
      while (i < limit && i < versionEnd && buf[i] !== CR && buf[i] !== LF) i++;
      if (i === limit) return this.outOfInput(state, i, maxEnd);
      const status = versionStatus(buf, origin + this.versionStart, i);
      if (status !== 0) return this.fail(status, status === 505 ? 'HTTP version not supported' : 'invalid HTTP version');
      if (buf[i] !== CR) return this.fail(400, buf[i] === LF ? 'bare LF' : 'invalid HTTP version');
      i++;
      state = State.RequestLineLf;
    }
    if (state === State.RequestLineLf) {
      if (i === limit) return this.outOfInput(state, i, maxEnd);
      if (buf[i++] !== LF) return this.fail(400, 'bare CR');
      state = State.FieldStart;
    }
    // One header (or trailer) line per turn.
    for (;;) {
      if (state === State.FieldStart) {
        if (i === limit) return this.outOfInput(state, i, maxEnd);
        const c = buf[i] as number;
        if (c === CR) {
          i++;
          state = State.HeadEndLf;
        } else {
          if (TOKEN[c] !== 1) {
            if (c === SP || c === HTAB) return this.fail(400, this.fieldCount === 0 ? 'whitespace before first header' : 'obsolete line folding');
            return this.fail(400, c === LF ? 'bare LF' : 'invalid header name');
          }
          if (this.fieldCount >= this.limits.maxHeaders) return this.fail(431, 'too many headers');
          this.fields[this.fieldCount * 4] = i - origin;
          i++;
          state = State.FieldName;
        }
      }
      if (state === State.FieldName) {
        while (i < limit && TOKEN[buf[i] as number] === 1) i++;
        if (i === limit) return this.outOfInput(state, i, maxEnd);
        const c = buf[i];
        if (c !== COLON) return this.fail(400, c === SP || c === HTAB ? 'whitespace between header name and colon' : 'invalid header name');
        this.fields[this.fieldCount * 4 + 1] = i++ - origin;
        state = State.FieldValueOws;
      }
      if (state === State.FieldValueOws) {
        while (i < limit && (buf[i] === SP || buf[i] === HTAB)) i++;
        if (i === limit) return this.outOfInput(state, i, maxEnd);
        this.fields[this.fieldCount * 4 + 2] = i - origin;
        state = State.FieldValue;
      }
      if (state === State.FieldValue) {
        let c = 0;
        while (i < limit) {
          c = buf[i] as number;
          if (FIELD_VALUE[c] !== 1) break;
          i++;
        }
        if (i === limit) return this.outOfInput(state, i, maxEnd);
        if (c !== CR) return this.fail(400, c === LF ? 'bare LF' : 'invalid character in header value');
        // Trailing OWS is not part of the value; the whole head is in `buf`, so look back.
        const f = this.fieldCount * 4;
        const valueStart = origin + (this.fields[f + 2] as number);
        let e = i;
        while (e > valueStart && (buf[e - 1] === SP || buf[e - 1] === HTAB)) e--;
        this.fields[f + 3] = e - origin;
        i++;
        state = State.FieldValueLf;
      }
      if (state === State.FieldValueLf) {
        if (i === limit) return this.outOfInput(state, i, maxEnd);
        if (buf[i++] !== LF) return this.fail(400, 'bare CR');
        this.fieldCount++;
        state = State.FieldStart;
        continue;
      }
      // HeadEndLf: the blank line that ends the head.
      if (i === limit) return this.outOfInput(state, i, maxEnd);
      if (buf[i++] !== LF) return this.fail(400, 'bare CR');
      if (this.inTrailers) {
        this.finishMessage();
        return i;
      }
      this.state = state;
      return this.headComplete(buf, origin, i);
    }
  }

  /** The read ended inside the head: keep the state, or refuse if the head is too large. */
  private outOfInput(state: State, i: number, maxEnd: number): number {
    this.state = state;
    if (i < maxEnd) return i;
    if (state === State.Method || state === State.Target) return this.fail(414, 'request line too long');
    return this.fail(431, this.inTrailers ? 'trailer section too large' : 'header section too large');
  }

  /** The head is complete in `buf[origin..headEnd)`: build the request and pick the framing. */
  private headComplete(buf: Buffer, origin: number, headEnd: number): number {
    // One string for the whole head; its parts are substrings, cheaper than a decode each.
    const head = buf.latin1Slice(origin, headEnd);
    const method = methodString(buf, origin, origin + this.methodEnd);
    const target = head.slice(this.targetStart, this.targetEnd);
    const minor = (buf[origin + this.versionStart + 7] as number) - 0x30;
    const count = this.fieldCount;
    const headers: string[] = new Array(count * 2);
    let contentLength = -1;
    let chunked = false;
    let transferEncoding = false;
    let hostCount = 0;
    let connectionClose = minor === 0;
    let expectContinue = false;
    for (let n = 0; n < count; n++) {
      const f = n * 4;
      const name = headerName(buf, head, origin, this.fields[f] as number, this.fields[f + 1] as number);
      const value = head.slice(this.fields[f + 2] as number, this.fields[f + 3] as number);
      headers[n * 2] = name;
      headers[n * 2 + 1] = value;
      switch (name) {
        case 'content-length': {
          const length = parseContentLength(value);
          if (length === -1) return this.fail(400, 'invalid Content-Length');
          if (contentLength !== -1 && contentLength !== length) return this.fail(400, 'conflicting Content-Length values');
          contentLength = length;
          break;
        }
        case 'transfer-encoding':
          if (transferEncoding) return this.fail(501, 'unsupported transfer coding');
          transferEncoding = true;
          chunked = value.toLowerCase() === 'chunked';
          if (!chunked) return this.fail(501, 'unsupported transfer coding');
          break;
        case 'host':
          hostCount++;
          break;
        case 'connection':
          connectionClose = connectionOption(value, connectionClose, minor);
          break;
        case 'expect':
          if (value.toLowerCase() !== '100-continue') return this.fail(417, 'unsupported expectation');
          expectContinue = minor === 1;
          break;
      }
    }
    this.fields = SHARED_FIELDS; // read: a copy this head took is let go
    if (transferEncoding && contentLength !== -1) return this.fail(400, 'both Transfer-Encoding and Content-Length');
    if (transferEncoding && minor === 0) return this.fail(400, 'Transfer-Encoding in an HTTP/1.0 request');
    if (hostCount > 1 || (hostCount === 0 && minor === 1)) return this.fail(400, hostCount > 1 ? 'several Host headers' : 'missing Host header');
    if (contentLength > this.limits.maxBodySize) return this.fail(413, 'body too large');

    const request = new Request(method, target, minor, headers, !connectionClose);
    if (!request.valid) return this.fail(request.method === 'CONNECT' ? 501 : 400, 'invalid request target');
    this.continueRequested = expectContinue && (chunked || contentLength > 0);

    if (chunked) {
      this.request = request;
      this.bodyLength = 0;
      this.chunkSizeDigits = 0;
      this.remaining = 0;
      this.state = State.ChunkSize;
      return headEnd;
    }
    if (contentLength > 0) {
      this.request = request;
      this.remaining = contentLength;
      this.bodyLength = 0;
      this.state = State.BodyIdentity;
      return headEnd;
    }
    this.request = request;
    this.finishMessage();
    return headEnd;
  }

  private scanBody(buf: Buffer, i: number, end: number): number {
    let state = this.state;
    while (i < end) {
      switch (state) {
        case State.BodyIdentity:
        case State.ChunkData: {
          const take = Math.min(this.remaining, end - i);
          this.bodyParts.push(buf.subarray(i, i + take));
          this.remaining -= take;
          i += take;
          if (this.remaining > 0) continue;
          if (state === State.BodyIdentity) {
            this.finishMessage();
            return i;
          }
          state = State.ChunkDataCr;
          continue;
        }
        case State.ChunkSize: {
          const c = buf[i] as number;
          const digit = HEX[c] as number;
          if (digit !== 255) {
            if (++this.chunkSizeDigits > MAX_CHUNK_SIZE_DIGITS) return this.fail(413, 'chunk too large');
            this.remaining = this.remaining * 16 + digit;
            i++;
            continue;
          }
          if (this.chunkSizeDigits === 0) return this.fail(400, 'invalid chunk size');
          if (c === CR) state = State.ChunkSizeLf;
          else if (c === SEMICOLON || c === SP || c === HTAB) state = State.ChunkExt;
          else return this.fail(400, 'invalid chunk size');
          i++;
          continue;
        }
        case State.ChunkExt: {
          let c = 0;
          const from = i;
          while (i < end) {
            c = buf[i] as number;
            if (FIELD_VALUE[c] !== 1) break;
            i++;
          }
          this.chunkExtensionBytes += i - from;
          if (this.chunkExtensionBytes > MAX_CHUNK_EXTENSION_BYTES) return this.fail(413, 'chunk extensions too large');
          if (i === end) continue;
          if (c !== CR) return this.fail(400, c === LF ? 'bare LF' : 'invalid chunk extension');
          state = State.ChunkSizeLf;
          i++;
          continue;
        }
        case State.ChunkSizeLf: {
          if (buf[i] !== LF) return this.fail(400, 'bare CR');
          i++;
          this.chunkSizeDigits = 0;
          if (this.remaining === 0) {
            // Last chunk: a trailer section follows; its fields are checked, then dropped.
            this.state = State.FieldStart;
            this.inTrailers = true;
            this.fieldCount = 0;
            return this.scanTrailers(buf, i, end);
          }
          this.bodyLength += this.remaining;
          if (this.bodyLength > this.limits.maxBodySize) return this.fail(413, 'body too large');
          state = State.ChunkData;
          continue;
        }
        case State.ChunkDataCr:
          if (buf[i] !== CR) return this.fail(400, 'missing CRLF after chunk data');
          state = State.ChunkDataLf;
          i++;
          continue;
        case State.ChunkDataLf:
          if (buf[i] !== LF) return this.fail(400, 'bare CR');
          state = State.ChunkSize;
          i++;
          continue;
        case State.FieldStart:
        case State.FieldName:
        case State.FieldValueOws:
        case State.FieldValue:
        case State.FieldValueLf:
        case State.HeadEndLf:
          this.state = state;
          return this.scanTrailers(buf, i, end);
        default:
          throw new Error(`parser state ${state} in body scan`);
      }
    }
    this.state = state;
    return i;
  }

  /**
   * Trailers are checked in place and dropped, never gathered. The origin handed to the
   * head scan only carries the size budget across reads.
   */
  private scanTrailers(buf: Buffer, i: number, end: number): number {
    const origin = i - this.trailerBytes;
    const stop = this.scanHead(buf, i, end, origin);
    // Only while the section is still open: a finished message starts the next budget at 0.
    if (this.inTrailers) this.trailerBytes = stop - origin;
    return stop;
  }

  private finishMessage(): void {
    const request = this.request as Request;
    const parts = this.bodyParts;
    if (parts.length === 1) request.body = parts[0] as Buffer;
    else if (parts.length > 1) request.body = Buffer.concat(parts);
    this.bodyParts = [];
    this.request = null;
    this.message = request;
    this.state = State.MessageStart;
    this.fieldCount = 0;
    this.fields = SHARED_FIELDS;
    this.inTrailers = false;
    this.trailerBytes = 0;
    this.chunkExtensionBytes = 0;
    // Its body is here: an interim 100 Continue would now come after the final answer.
    this.continueRequested = false;
  }
}

/** 0 for HTTP/1.0 and HTTP/1.1, 505 for another well-formed version, 400 otherwise. */
function versionStatus(buf: Buffer, start: number, end: number): number {
  if (end - start !== 8) return 400;
  if (buf[start] !== 0x48 || buf[start + 1] !== 0x54 || buf[start + 2] !== 0x54 || buf[start + 3] !== 0x50 || buf[start + 4] !== 0x2f) return 400;
  const major = (buf[start + 5] as number) - 0x30;
  const minor = (buf[start + 7] as number) - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9 || buf[start + 6] !== 0x2e) return 400;
  return major === 1 && minor <= 1 ? 0 : 505;
}

/** Methods are case-sensitive: only an exact match is interned. */
function methodString(buf: Buffer, start: number, end: number): string {
  for (const known of KNOWN_METHODS) {
    if (known.length !== end - start) continue;
    let n = 0;
    while (n < known.length && buf[start + n] === known.charCodeAt(n)) n++;
    if (n === known.length) return known;
  }
  return buf.latin1Slice(start, end);
}

/** A header name in lower case; names are case-insensitive, and known ones are interned. */
function headerName(buf: Buffer, head: string, origin: number, nameStart: number, nameEnd: number): string {
  const start = origin + nameStart;
  const length = nameEnd - nameStart;
  for (const known of KNOWN_HEADERS) {
    if (known.length !== length) continue;
    let n = 0;
    // Token characters only: OR-ing 0x20 lower-cases letters and leaves '-' and digits alone.
    while (n < length && ((buf[start + n] as number) | 0x20) === known.charCodeAt(n)) n++;
    if (n === length) return known;
  }
  return head.slice(nameStart, nameEnd).toLowerCase();
}

/** A Content-Length value: 1*DIGIT, or a list of identical ones (RFC 9110 8.6); -1 when invalid. */
function parseContentLength(value: string): number {
  let result = -1;
  for (const part of value.split(',')) {
    const digits = part.trim();
    if (digits.length === 0 || digits.length > 15 || !/^[0-9]+$/.test(digits)) return -1;
    const n = Number(digits);
    if (result !== -1 && n !== result) return -1;
    result = n;
  }
  return result;
}

/** Applies one Connection header's options to the close decision. */
function connectionOption(value: string, close: boolean, minor: number): boolean {
  // The usual single option, decided without splitting the value.
  if (value === 'keep-alive' || value === 'Keep-Alive') return minor === 0 ? false : close;
  if (value === 'close' || value === 'Close') return true;
  for (const raw of value.split(',')) {
    const option = raw.trim().toLowerCase();
    if (option === 'close') return true;
    if (option === 'keep-alive' && minor === 0) close = false;
  }
  return close;
}
