// The log's shape, read as kube2iam's users' pipelines read logrus: JSON with `level` as
// a word, `msg` and an RFC 3339 `time`; text as logrus's TextFormatter lays it out. Then
// the folding of repeated failures, and the remedies an operator is given.

import t from 'tap';
import { FailureLog } from '../lib/failure-log.js';
import { credentialsUnready } from '../lib/credentials/store.js';
import { stsRemedy } from '../lib/credentials/sts.js';
import { createLogger, formatLine, textLine } from '../lib/log.js';
import { StatsReporter } from '../lib/stats.js';
import { LogCapture, parseLogfmt, RFC3339, textRecord } from './harness/log-lines.js';

t.test('JSON lines carry logrus’s level word, msg and RFC 3339 time, with the fields beside them', async (t) => {
  const out = new LogCapture();
  const log = createLogger({ logLevel: 'info', logFormat: 'json' }, out);
  log.info({ role: 'arn:aws:iam::1:role/app', pods: 2 }, 'AssumeRole failed');
  log.warn({ error: new Error('connect ECONNREFUSED 127.0.0.1:9') }, 'watch failed');
  log.debug({}, 'not at info');
  const [info, warn, ...rest] = out.records();
  t.same(rest, [], 'debug is below the level');
  t.equal(info?.level, 'info');
  t.equal(info?.msg, 'AssumeRole failed');
  t.match(info?.time, RFC3339);
  t.ok(Math.abs(Date.parse(String(info?.time)) - Date.now()) < 5000, 'the time is now');
  t.equal(info?.role, 'arn:aws:iam::1:role/app');
  t.equal(info?.pods, 2);
  t.equal(warn?.level, 'warn');
  t.equal(warn?.error, 'connect ECONNREFUSED 127.0.0.1:9', 'an error is its text under `error`, as logrus’s WithError');
});

t.test('text lines are logrus’s layout: time, level, msg, then the fields sorted, quoted only when needed', async (t) => {
  const out = new LogCapture();
  const log = createLogger({ logLevel: 'debug', logFormat: 'text' }, out);
  log.info(
    { zeta: 'plain-value_1.2/x@y^z+w', alpha: 'two words', empty: '', count: 3, flag: true, nested: { inner: 1 }, list: ['a', 'b'] },
    'listening on port 8181',
  );
  log.debug({ quote: 'say "hi"\n' }, 'stats');
  const [first, second] = out.lines;
  const pairs = parseLogfmt(first ?? '');
  t.same(
    pairs.slice(0, 3).map(([key]) => key),
    ['time', 'level', 'msg'],
    'fixed keys first',
  );
  const keys = pairs.slice(3).map(([key]) => key);
  t.same(keys, [...keys].sort(), 'then sorted');
  t.match(first, / zeta=plain-value_1\.2\/x@y\^z\+w( |$)/, 'letters, digits and -._/@^+ stay bare');
  t.match(first, / alpha="two words" /, 'a space is quoted');
  t.match(first, / empty= /, 'an empty value is bare, as logrus without QuoteEmptyFields');
  t.match(first, /^time="[^"]+" level=info msg="listening on port 8181" /);
  const record = textRecord(first ?? '');
  t.match(record.time, RFC3339);
  t.equal(record['nested.inner'], '1', 'nested objects become dotted keys');
  t.equal(record.list, '["a","b"]');
  t.equal(record.flag, 'true');
  t.equal(record.count, '3');
  const debug = textRecord(second ?? '');
  t.equal(debug.level, 'debug');
  t.equal(debug.msg, 'stats', 'a one-word message is bare');
  t.equal(debug.quote, 'say "hi"\n', 'quotes and newlines survive the round trip');
});

t.test('the stats line has the log lines’ shape and level in both formats', async (t) => {
  for (const format of ['json', 'text'] as const) {
    const out = new LogCapture();
    const stats = new StatsReporter(60_000, (seconds) => ({ seconds, sts: { calls: 2 } }), out, format);
    stats.report();
    const line = out.lines[0] ?? '';
    const record = format === 'json' ? (JSON.parse(line) as Record<string, unknown>) : textRecord(line);
    t.equal(record.level, 'info', format);
    t.equal(record.msg, 'stats', format);
    t.match(record.time, RFC3339, format);
    t.equal(format === 'json' ? (record.sts as { calls: number }).calls : Number(record['sts.calls']), 2, format);
  }
  t.equal(formatLine('text', 'info', 'stats', { b: 1, a: 2 }).replace(/^time="[^"]+" /, ''), 'level=info msg=stats a=2 b=1\n');
  t.equal(textLine({ time: 'T', level: 'warn', msg: 'x y' }), 'time=T level=warn msg="x y"\n');
});

/** A logger stand-in that keeps what it is given (the folding is under test, not pino). */
function recorder(): { lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }>; log: never } {
  const lines: Array<{ level: string; fields: Record<string, unknown>; msg: string }> = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => lines.push({ level, fields, msg });
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error') } as never };
}

t.test('a failure is written at once; its repeats within the interval become one line with the count', async (t) => {
  const { lines, log } = recorder();
  const failures = new FailureLog(log, 60_000);
  t.teardown(() => failures.stop());
  let calls = 0;
  const fields = (n: number) => () => ({ role: 'r', failuresInARow: n, built: ++calls });
  failures.report('sts r', 'error', 'AssumeRole failed', fields(1));
  for (let n = 2; n <= 50; n++) failures.report('sts r', 'error', 'AssumeRole failed', fields(n));
  t.equal(lines.length, 1, 'one line for 50 failures within the interval');
  t.equal(calls, 1, 'a folded failure builds no fields');
  failures.report('sts other', 'warn', 'AssumeRole failed', fields(1));
  t.equal(lines.length, 2, 'another key is written at once');
  failures.flush();
  t.same(
    lines.slice(2).map((l) => [l.level, l.msg, l.fields.repeated, l.fields.failuresInARow, l.fields.repeatedInSeconds]),
    [['error', 'AssumeRole failed', 49, 50, 60]],
    'the interval’s line: the latest details and the count',
  );
  failures.report('sts r', 'error', 'AssumeRole failed', fields(51));
  t.equal(lines.length, 3, 'a key still failing stays folded into the next interval');
  failures.flush();
  t.equal(lines.length, 4);
  failures.flush();
  failures.flush();
  t.equal(lines.length, 4, 'quiet intervals write nothing');
  failures.report('sts r', 'error', 'AssumeRole failed', fields(1));
  t.equal(lines.length, 5, 'a key quiet for an interval is written at once again');
});

t.test('failures of more keys than are folded one by one share one folded line', async (t) => {
  const { lines, log } = recorder();
  const failures = new FailureLog(log, 60_000);
  t.teardown(() => failures.stop());
  for (let i = 0; i < 5000; i++) failures.report(`key ${i}`, 'warn', 'AssumeRole failed', () => ({ i }));
  t.equal(lines.length, 1001, '1,000 keys at once, then one for the rest');
  t.match(lines[1000]?.msg, /more keys are failing than are folded/);
  failures.flush();
  t.same(
    lines.slice(1001).map((l) => l.fields.repeated),
    [3999],
    'the rest counted on the interval’s line',
  );
});

t.test('readiness: no role needed yet or some role served is ready; every role failing says which codes', async (t) => {
  const cases: Array<[string, Parameters<typeof credentialsUnready>[0], RegExp | null]> = [
    ['no pod needs a role', { inUse: 0, serving: 0, failing: 0, codes: {}, unverified: 0 }, null],
    ['one of three roles served', { inUse: 3, serving: 1, failing: 2, codes: { AccessDenied: 2 }, unverified: 0 }, null],
    ['first fetches under way', { inUse: 2, serving: 0, failing: 0, codes: {}, unverified: 0 }, /^credentials not fetched yet$/],
    ['some failed, some still waiting', { inUse: 3, serving: 0, failing: 2, codes: { Throttling: 2 }, unverified: 0 }, /^credentials not fetched yet$/],
    [
      'credentials handed over served, no AssumeRole answered yet',
      { inUse: 3, serving: 0, failing: 0, codes: {}, unverified: 3 },
      /^no AssumeRole has succeeded yet \(credentials handed over are served meanwhile\)$/,
    ],
    [
      'the first renewal after a handover refused, the rest still handed over',
      { inUse: 3, serving: 0, failing: 1, codes: { AccessDenied: 1 }, unverified: 2 },
      /^no AssumeRole has succeeded yet/,
    ],
    [
      'every role failing',
      { inUse: 3, serving: 0, failing: 3, codes: { AccessDenied: 2, RegionMissing: 1 }, unverified: 0 },
      /^no role could be assumed: STS answered AccessDenied for 2, RegionMissing for 1 of 3 roles in use/,
    ],
  ];
  for (const [name, health, expected] of cases) {
    const reason = credentialsUnready(health);
    if (expected === null) t.equal(reason, null, name);
    else t.match(reason, expected, name);
  }
});

t.test('each STS failure an operator meets comes with what to do about it', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['AccessDenied', /trust policy/],
    ['InvalidClientTokenId', /refuses the proxy's own credentials/],
    ['Throttling', /throttling this account.*--sts-rate-limit/],
    ['RegionMissing', /set AWS_REGION/],
    ['ECONNREFUSED', /cannot be reached/],
    ['TimeoutError', /cannot be reached/],
    ['CredentialsProviderError', /no AWS credentials of its own/],
    ['RegionDisabledException', /not activated in this region/],
    ['SomethingNew', /retries with back-off/],
  ];
  for (const [code, remedy] of cases) t.match(stsRemedy(code), remedy, code);
});
