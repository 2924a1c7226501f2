// The soak in short (60 s); `npm run soak` runs it for 10 minutes. Every answer is
// checked while it runs; afterwards the footprint must not have grown.

import t from 'tap';
import { soak } from './soak.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);

t.test(`${SECONDS} s of mixed load with churn: every answer right, footprint flat`, async (t) => {
  const report = await soak(SECONDS, Number(process.env.SOAK_SEED ?? 4_2026));
  process.stdout.write(`# soak: ${JSON.stringify({ ...report, samples: report.samples.length, examples: undefined })}\n`);
  for (const sample of report.samples) process.stdout.write(`# soak-sample: ${JSON.stringify(sample)}\n`);
  t.equal(report.leaks, 0, 'no answer named another pod’s role', { examples: report.examples });
  t.equal(report.failures, 0, 'the steady pods were served throughout', { examples: report.examples });
  t.equal(report.expired, 0, 'no expired credentials');
  t.equal(report.keepAliveErrors, 0, `the keep-alive pod was served (${report.keepAliveAnswers} answers)`);
  t.equal(report.passThroughErrors, 0, `pass-through answered (${report.passThrough})`);
  t.equal(report.tokenErrors, 0, `tokens issued (${report.tokens})`);
  t.ok(report.churnGenerations > 0, `pods churned (${report.churnGenerations} generations)`);
  t.ok(report.samples.length >= 3, 'footprint sampled');
  // Growth bounds: what a leak of a few hundred bytes per request would exceed over a
  // 10-minute run, above what V8 keeps as heap headroom.
  t.ok(report.last.rssMb - report.first.rssMb < 20, `RSS flat: ${report.first.rssMb.toFixed(1)} → ${report.last.rssMb.toFixed(1)} MB`);
  t.ok(report.last.fds - report.first.fds < 8, `descriptors flat: ${report.first.fds.toFixed(1)} → ${report.last.fds.toFixed(1)}`);
  t.ok(report.last.loopP99Ms < 100, `event loop delay p99 ${report.first.loopP99Ms.toFixed(1)} → ${report.last.loopP99Ms.toFixed(1)} ms`);
});
