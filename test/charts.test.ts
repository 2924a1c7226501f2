// The benchmark's charts: pure functions from figures to SVG.

import t from 'tap';
import { barChart, lineChart } from '../benchmarks/charts.js';

t.test('a latency chart has one line per server, points in order of the percentiles, names escaped', async (t) => {
  const svg = lineChart('latency', 'ms', [
    { name: 'this proxy', points: [['p50', 0.4], ['p99', 3]] },
    { name: 'peer <go>', points: [['p50', 1.2], ['p99', 4]] },
  ]);
  t.equal(svg.match(/<polyline /g)?.length, 2);
  t.match(svg, /peer &lt;go&gt;/);
  const first = /<polyline [^>]*points="([^"]+)"/.exec(svg)?.[1]?.split(' ').map((p) => p.split(',').map(Number)) ?? [];
  t.ok(first[0]![0]! < first[1]![0]!, 'p50 left of p99');
  t.ok(first[0]![1]! > first[1]![1]!, 'the higher latency drawn higher');
});

t.test('a bar chart draws bars in proportion to their values', async (t) => {
  const svg = barChart('memory', 'MB', [['a', 10], ['b', 40]]);
  const widths = [...svg.matchAll(/<rect x="330" [^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
  t.equal(widths.length, 2);
  t.equal(Math.round((widths[1]! / widths[0]!) * 10) / 10, 4);
});
