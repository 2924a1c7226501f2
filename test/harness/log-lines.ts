// Reads the program's log lines as a log pipeline would: JSON lines with JSON.parse, text
// lines with a logfmt parser (Go-quoted values, as logrus writes them), never by regexp.

import { Writable } from 'node:stream';

export type LogRecord = Record<string, unknown>;

/** One logrus text line as key/value pairs, in their order; throws on anything else. */
export function parseLogfmt(line: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    const eq = line.indexOf('=', i);
    if (eq === -1) throw new Error(`no "=" after ${JSON.stringify(line.slice(i, i + 40))}`);
    const key = line.slice(i, eq);
    if (!/^[\w.]+$/.test(key)) throw new Error(`bad key ${JSON.stringify(key)}`);
    i = eq + 1;
    let value: string;
    if (line[i] === '"') {
      let end = i + 1;
      while (end < line.length && line[end] !== '"') end += line[end] === '\\' ? 2 : 1;
      if (end >= line.length) throw new Error(`unterminated quote in ${JSON.stringify(line)}`);
      value = JSON.parse(line.slice(i, end + 1)) as string;
      i = end + 1;
    } else {
      const end = line.indexOf(' ', i);
      value = line.slice(i, end === -1 ? line.length : end);
      i = end === -1 ? line.length : end;
    }
    pairs.push([key, value]);
  }
  return pairs;
}

/** A text line as a record (values stay strings, as a pipeline without a schema reads them). */
export function textRecord(line: string): LogRecord {
  return Object.fromEntries(parseLogfmt(line));
}

/** A writable that keeps every line written to it, whole lines only. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  private partial = '';

  constructor() {
    super({
      write: (chunk: Buffer, _encoding, done) => {
        const text = this.partial + chunk.toString();
        const parts = text.split('\n');
        this.partial = parts.pop() ?? '';
        this.lines.push(...parts);
        done();
      },
    });
  }

  /** Every JSON line, parsed. */
  records(): LogRecord[] {
    return this.lines.map((line) => JSON.parse(line) as LogRecord);
  }

  /** The records whose message starts with `msg`. */
  find(msg: string): LogRecord[] {
    return this.records().filter((r) => typeof r.msg === 'string' && r.msg.startsWith(msg));
  }
}

/** RFC 3339 with a UTC offset or Z, as log pipelines parse logrus's `time`. */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * A failed start's stderr (logrus's text layout): exactly one fatal line, the last, whose
 * message is returned; anything else throws, naming what it found.
 */
export function fatalMessage(stderr: string): string {
  const lines = stderr.trim().split('\n');
  const fatal = lines.filter((line) => line.includes(' level=fatal '));
  const last = lines.at(-1) ?? '';
  if (fatal.length !== 1 || fatal[0] !== last) throw new Error(`not one fatal line, last: ${stderr}`);
  return textRecord(last).msg as string;
}
