// The README's rule for --prefetch-window is the one the fleet simulation sizes its
// window by: every row of the README's sizing table is computed here.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { peakMean, windowFor } from '../benchmarks/fleet.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

t.test('the README’s window sizing table follows the rule the simulation uses', async (t) => {
  const rows = [...README.matchAll(/^ {3}\| ([\d,]+) nodes \| (\d+) \| (\d+)\/s \| (\d+) (min|h) \| (\d+) (s|min)\b/gm)];
  t.equal(rows.length, 4, 'four rows');
  for (const [line, nodes, keys, limit, ttl, ttlUnit, window, windowUnit] of rows) {
    const seconds = windowFor({
      nodes: Number(nodes?.replace(',', '')),
      keysPerNode: Number(keys),
      limitPerSecond: Number(limit),
      renewalSeconds: Number(ttl) * (ttlUnit === 'h' ? 3600 : 60),
    });
    const stated = windowUnit === 'min' ? Math.round(seconds / 60) : seconds;
    t.equal(stated, Number(window), line.trim());
  }
});

t.test('a fleet whose renewals alone fill the limit has no window that fits', async (t) => {
  t.equal(windowFor({ nodes: 5000, keysPerNode: 20, limitPerSecond: 100, renewalSeconds: 900 }), Infinity);
});

t.test('the simulation’s storm rate is the busiest run of seconds, not the busiest second', async (t) => {
  // values, width, the peak mean
  const cases: Array<[number[], number, number]> = [
    [[0, 30, 0, 0, 0, 0, 10], 5, 6],
    [[12, 12, 12, 12, 12, 13], 5, 12.2],
    [[4, 8], 5, 6],
    [[], 5, 0],
  ];
  for (const [values, width, mean] of cases) t.ok(Math.abs(peakMean(values, width) - mean) < 1e-9, `${values.join(' ')}: ${mean}`);
});
