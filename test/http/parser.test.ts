// The parser gives the same result however the bytes are split across reads.

import t from 'tap';
import { MAX_CHUNK_EXTENSION_BYTES, RequestParser } from '../../lib/http/parser.js';
import { DEFAULT_HTTP_OPTIONS } from '../../lib/http/options.js';
import { cases, H } from './cases.js';
import { describe } from './wire.js';
import { generateInput } from './generate.js';
import { Random } from '../harness/random.js';

type Outcome = ReturnType<typeof describe> | { error: number } | { incomplete: true };

/** Feeds the chunks in order; returns every message, then the error or an incomplete tail. */
export function parseChunks(chunks: Buffer[]): Outcome[] {
  const parser = new RequestParser(DEFAULT_HTTP_OPTIONS);
  const out: Outcome[] = [];
  for (const chunk of chunks) {
    let offset = 0;
    while (offset < chunk.length) {
      const next = parser.execute(chunk, offset, chunk.length);
      if (parser.message !== null) {
        out.push(describe(parser.take()));
      } else if (parser.errorStatus !== 0) {
        out.push({ error: parser.errorStatus });
        return out;
      } else if (next !== chunk.length) {
        throw new Error(`parser stopped at ${next} of ${chunk.length} without a message or an error`);
      }
      offset = next;
    }
  }
  if (parser.inMessage) out.push({ incomplete: true });
  return out;
}

function splitAt(bytes: Buffer, points: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(last, p));
    last = p;
  }
  chunks.push(bytes.subarray(last));
  return chunks;
}

const bytesOf = (raw: string): Buffer => Buffer.from(raw, 'latin1');

t.test('every table request parses identically in one read, byte by byte, and split at every offset', async (t) => {
  for (const c of cases) {
    // Two copies back to back also pin that a split between pipelined requests is harmless.
    const raw = c.open && c.status === 200 ? c.raw + c.raw : c.raw;
    const bytes = bytesOf(raw);
    const whole = parseChunks([bytes]);
    const first = whole[0];
    t.ok(first !== undefined && ('error' in first ? first.error === c.status : c.status === 200), `${c.name}: ${JSON.stringify(first).slice(0, 80)}`);
    t.same(parseChunks(Array.from(bytes, (b) => Buffer.from([b]))), whole, `${c.name}: byte by byte`);
    let same = true;
    for (let p = 1; p < bytes.length && same; p++) {
      const split = parseChunks(splitAt(bytes, [p]));
      if (JSON.stringify(split) !== JSON.stringify(whole)) {
        same = false;
        t.same(split, whole, `${c.name}: split at ${p}`);
      }
    }
    t.ok(same, `${c.name}: split at every offset`);
  }
});

t.test('a head left open at the end of a read keeps its fields while other connections’ heads are parsed in between', async (t) => {
  // Heads scanned within one read share one array of field offsets; an open head must not.
  const other = bytesOf(`GET /other/path HTTP/1.1\r\nHost: other\r\nX-Long-Header-Name: ${'v'.repeat(40)}\r\nAccept: */*\r\n\r\n`);
  const otherWhole = parseChunks([other]);
  for (const c of cases) {
    const bytes = bytesOf(c.raw);
    const whole = parseChunks([bytes]);
    let same = true;
    for (let p = 1; p < bytes.length && same; p++) {
      const parser = new RequestParser(DEFAULT_HTTP_OPTIONS);
      const out: Outcome[] = [];
      const feed = (chunk: Buffer): void => {
        let offset = 0;
        while (offset < chunk.length && parser.errorStatus === 0) {
          offset = parser.execute(chunk, offset, chunk.length);
          if (parser.message !== null) out.push(describe(parser.take()));
        }
        if (parser.errorStatus !== 0 && !out.some((o) => 'error' in o)) out.push({ error: parser.errorStatus });
      };
      feed(bytes.subarray(0, p));
      if (parser.errorStatus === 0) {
        const between = parseChunks([other]); // another connection's head, in one read
        if (JSON.stringify(between) !== JSON.stringify(otherWhole)) throw new Error('the other connection parsed differently');
        feed(bytes.subarray(p));
      }
      if (parser.inMessage && parser.errorStatus === 0) out.push({ incomplete: true });
      if (JSON.stringify(out) !== JSON.stringify(whole)) {
        same = false;
        t.same(out, whole, `${c.name}: split at ${p} with another head in between`);
      }
    }
    t.ok(same, `${c.name}: every split, another head parsed in between`);
  }
});

t.test('random and mutated inputs parse the same in one read and in random pieces', async (t) => {
  const random = new Random(20261127);
  let compared = 0;
  for (let n = 0; n < 20_000; n++) {
    const bytes = generateInput(random);
    const whole = parseChunks([bytes]);
    const points: number[] = [];
    for (let p = 1; p < bytes.length; p++) if (random.int(8) === 0) points.push(p);
    const split = parseChunks(splitAt(bytes, points));
    if (JSON.stringify(split) !== JSON.stringify(whole)) {
      t.same(split, whole, `input ${n}: ${JSON.stringify(bytes.toString('latin1')).slice(0, 200)}`);
      return;
    }
    compared++;
  }
  t.equal(compared, 20_000);
});

t.test('a head is gathered across reads only up to the header limit', async (t) => {
  const parser = new RequestParser(DEFAULT_HTTP_OPTIONS);
  const line = Buffer.from(`GET / HTTP/1.1\r\n${H}X-Long: `, 'latin1');
  parser.execute(line, 0, line.length);
  const filler = Buffer.alloc(1000, 0x61);
  let status = 0;
  for (let n = 0; n < 20 && status === 0; n++) {
    parser.execute(filler, 0, filler.length);
    status = parser.errorStatus;
  }
  t.equal(status, 431);
});

const CHUNKED = 'POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';

t.test('the trailer budget is per message: 5,000 chunked requests on one connection all parse (the 4,097th used to get 431)', async (t) => {
  const one = bytesOf(`${CHUNKED}3\r\nabc\r\n0\r\n\r\n`);
  const parsed = parseChunks(Array.from({ length: 5000 }, () => one));
  t.equal(parsed.length, 5000);
  t.notOk(
    parsed.some((o) => 'error' in o),
    'no refusal',
  );
  const withTrailers = bytesOf(`${CHUNKED}3\r\nabc\r\n0\r\nX-T: ${'v'.repeat(4000)}\r\n\r\n`);
  t.notOk(
    parseChunks(Array.from({ length: 50 }, () => withTrailers)).some((o) => 'error' in o),
    'large trailers on every message, each within its own budget',
  );
});

t.test('chunk extensions are capped per message: past the cap, 413', async (t) => {
  const ext = (bytes: number): Buffer => bytesOf(`${CHUNKED}3;${'e'.repeat(bytes)}\r\nabc\r\n0\r\n\r\n`);
  t.notOk(
    parseChunks([ext(MAX_CHUNK_EXTENSION_BYTES)]).some((o) => 'error' in o),
    'at the cap',
  );
  t.same(parseChunks([ext(MAX_CHUNK_EXTENSION_BYTES + 1)]).at(-1), { error: 413 }, 'one byte over');
  const many = bytesOf(`${CHUNKED}${`1;${'e'.repeat(99)}\r\na\r\n`.repeat(11)}0\r\n\r\n`);
  t.same(parseChunks([many]).at(-1), { error: 413 }, 'summed over the chunks of one message');
  t.same(parseChunks([ext(MAX_CHUNK_EXTENSION_BYTES), ext(MAX_CHUNK_EXTENSION_BYTES)]).length, 2, 'and started over for the next message');
  const endless = [bytesOf(`${CHUNKED}3;`), ...Array.from({ length: 100 }, () => bytesOf('e'.repeat(100)))];
  t.same(parseChunks(endless).at(-1), { error: 413 }, 'an extension that never ends is cut off, not read forever');
});

t.test('a message whose body came with its head asks for no 100 Continue', async (t) => {
  const parser = new RequestParser(DEFAULT_HTTP_OPTIONS);
  const whole = bytesOf('POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc');
  parser.execute(whole, 0, whole.length);
  t.ok(parser.message !== null, 'complete');
  t.equal(parser.continueRequested, false, 'its final answer comes next, never after a 100');
  const head = bytesOf('POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n');
  const waiting = new RequestParser(DEFAULT_HTTP_OPTIONS);
  waiting.execute(head, 0, head.length);
  t.equal(waiting.continueRequested, true, 'a head alone still asks for it');
});
