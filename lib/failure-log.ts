// Failures, logged once and then folded: the first failure of a key (a role, a watch, an
// upstream error kind) is written at once; more of the same key within the interval are
// counted and written as one line at its end, with the latest details and the count. A
// throttled node with a thousand failing roles writes at most a thousand lines a minute,
// not one per retry; a key that stays quiet for an interval is forgotten, so its next
// failure is written at once again.

import type { Logger } from './log.js';

export type FailureLevel = 'info' | 'warn' | 'error';

interface Folded {
  level: FailureLevel;
  msg: string;
  fields: () => object;
  /** Failures since the line last written for this key. */
  repeated: number;
}

/** Keys folded at once at most; failures of keys past it are folded into one line. */
const MAX_KEYS = 1_000;
const OVERFLOW_KEY = '\0overflow';

export class FailureLog {
  private readonly open = new Map<string, Folded>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  /** `fields` is called only when a line is written, so a folded failure costs a Map lookup. */
  report(key: string, level: FailureLevel, msg: string, fields: () => object): void {
    if (this.open.size >= MAX_KEYS && !this.open.has(key)) {
      key = OVERFLOW_KEY;
      msg = `${msg} (and failures of other keys: more keys are failing than are folded one by one)`;
    }
    const folded = this.open.get(key);
    if (folded !== undefined) {
      folded.repeated++;
      folded.level = level;
      folded.msg = msg;
      folded.fields = fields;
      return;
    }
    this.open.set(key, { level, msg, fields, repeated: 0 });
    this.log[level](fields(), msg);
  }

  /** Writes each key's count for the interval; forgets the keys that did not fail in it. */
  flush(): void {
    const seconds = Math.round(this.intervalMs / 1000);
    for (const [key, folded] of this.open) {
      if (folded.repeated === 0) {
        this.open.delete(key);
        continue;
      }
      this.log[folded.level]({ ...folded.fields(), repeated: folded.repeated, repeatedInSeconds: seconds }, folded.msg);
      folded.repeated = 0;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
