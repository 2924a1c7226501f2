// The process logger. JSON lines from pino, or one readable line per record for
// `--log-format text`, formatted in-process (no transport thread) to stay cheap.

import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger };

export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, destination: NodeJS.WritableStream = process.stderr): Logger {
  if (config.logFormat === 'json') return pino({ level: config.logLevel, base: undefined }, destination as pino.DestinationStream);
  return pino(
    {
      level: config.logLevel,
      base: undefined,
      timestamp: false,
      formatters: { level: (label) => ({ level: label }) },
    },
    { write: (line: string) => destination.write(textLine(line)) },
  );
}

/** `time="…" level=info msg="…" key=value`, the shape of kube2iam's logrus text output. */
function textLine(json: string): string {
  const record = JSON.parse(json) as Record<string, unknown>;
  const { level, msg, ...fields } = record;
  let line = `time="${new Date().toISOString()}" level=${String(level)} msg=${JSON.stringify(msg ?? '')}`;
  for (const [key, value] of Object.entries(fields)) line += ` ${key}=${typeof value === 'string' && /^[\w./:-]+$/.test(value) ? value : JSON.stringify(value)}`;
  return `${line}\n`;
}
