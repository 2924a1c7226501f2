// The process logger, in the shape kube2iam's logrus writes, so the log pipelines its
// users run keep parsing: JSON with `level` as a word, `msg` and an RFC 3339 `time`, or
// logrus's text layout `time="…" level=info msg="…" key=value` with the fields sorted.
// pino writes the JSON; text is rewritten from it in-process (no transport thread).
// Lines go out in batches through an asynchronous writer, flushed on exit, so the
// request log (--verbose) does not block the event loop on stderr.

import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger };

export type LogFormat = Config['logFormat'];

/** Where log lines go: stderr through an asynchronous buffered writer, or a test's capture. */
export interface LogSink {
  write(line: string): unknown;
}

/**
 * stderr: the lines of one event-loop turn joined and handed to pino's asynchronous
 * writer (sonic-boom) at once, which writes while the proxy serves; all of it is written
 * synchronously at exit. Per line this is a string append (the request log writes one
 * per request).
 */
export function stderrSink(): LogSink {
  const writer = pino.destination({ dest: 2, sync: false });
  let pending = '';
  const flush = (): void => {
    writer.write(pending);
    pending = '';
  };
  process.on('exit', () => {
    if (pending !== '') flush();
    writer.flushSync();
  });
  return {
    write(line: string): void {
      if (pending === '') setImmediate(flush);
      pending += line;
    },
  };
}

export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, out: LogSink = stderrSink()): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: undefined,
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    formatters: { level: (label) => ({ level: label }) },
    // logrus's WithError: the field `error`, the error's text.
    serializers: { error: errorText },
  };
  if (config.logFormat === 'json') return pino(options, out as pino.DestinationStream);
  return pino(options, { write: (line: string) => out.write(textLine(JSON.parse(line) as Record<string, unknown>)) });
}

/** One record as logrus writes it in `format`; for lines that bypass the logger (the stats line). */
export function formatLine(format: LogFormat, level: string, msg: string, fields: Record<string, unknown>): string {
  const record = { level, msg, time: new Date().toISOString(), ...fields };
  return format === 'json' ? `${JSON.stringify(record)}\n` : textLine(record);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * logrus's TextFormatter: time, level and msg first, then the fields sorted by key; a
 * value is quoted (as Go's %q) when it holds anything but letters, digits and `-._/@^+`.
 * Nested objects become dotted keys (`sts.calls=3`), as kube2iam's own field names are.
 */
export function textLine(record: Record<string, unknown>): string {
  const { time, level, msg, ...fields } = record;
  const flat: Array<[string, unknown]> = [];
  flatten('', fields, flat);
  flat.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let line = `time=${logfmtValue(String(time))} level=${String(level)} msg=${logfmtValue(String(msg ?? ''))}`;
  for (const [key, value] of flat) line += ` ${key}=${logfmtValue(Array.isArray(value) ? JSON.stringify(value) : String(value))}`;
  return `${line}\n`;
}

function flatten(prefix: string, value: Record<string, unknown>, out: Array<[string, unknown]>): void {
  for (const [key, inner] of Object.entries(value)) {
    const name = prefix === '' ? key : `${prefix}.${key}`;
    if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) flatten(name, inner as Record<string, unknown>, out);
    else out.push([name, inner]);
  }
}

const BARE = /^[\w.\-/@^+]*$/;

/** A value as logrus's text layout writes it. */
export function logfmtValue(text: string): string {
  return BARE.test(text) ? text : JSON.stringify(text);
}
