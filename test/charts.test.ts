// The benchmark's charts: pure functions from figures to SVG.

import t from 'tap';
import { barChart, lineChart } from '../benchmarks/charts.js';

t.test('a latency chart has one line per server, points in order of the percentiles, names escaped', async (t) => {
  const svg = lineChart('latency', 'ms', [
    {
      name: 'this proxy',
      points: [
        ['p50', 0.4],
        ['p99', 3],
      ],
    },
    {
      name: 'peer <go>',
      points: [
        ['p50', 1.2],
        ['p99', 4],
      ],
    },
  ]);
  t.equal(svg.match(/<polyline /g)?.length, 2);
  t.match(svg, /peer &lt;go&gt;/);
  const first =
    /<polyline [^>]*points="([^"]+)"/
      .exec(svg)?.[1]
      ?.split(' ')
      .map((p) => p.split(',').map(Number)) ?? [];
  const [p50, p99] = [first[0] ?? [], first[1] ?? []];
  t.ok(Number(p50[0]) < Number(p99[0]), 'p50 left of p99');
  t.ok(Number(p50[1]) > Number(p99[1]), 'the higher latency drawn higher');
});

t.test('a bar chart draws bars in proportion to their values', async (t) => {
  const svg = barChart('memory', 'MB', [
    ['a', 10],
    ['b', 40],
  ]);
  const widths = [...svg.matchAll(/<rect x="330" [^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
  t.equal(widths.length, 2);
  t.equal(Math.round((Number(widths[1]) / Number(widths[0])) * 10) / 10, 4);
});
