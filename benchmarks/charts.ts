// Charts of a benchmark run, drawn from its own data as SVG files beside RESULTS.md: no
// service outside the machine, no dependency. Pure functions from figures to SVG text.

export interface Series {
  name: string;
  /** [label on the x axis, value] in order. */
  points: Array<[string, number]>;
}

const WIDTH = 640;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const escapeXml = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3));

/** Lines over shared x labels on a logarithmic y axis (latency percentiles, say). */
export function lineChart(title: string, yLabel: string, series: Series[]): string {
  const height = 320;
  const left = 60;
  const right = 180;
  const top = 40;
  const bottom = 40;
  const labels = series[0]?.points.map(([label]) => label) ?? [];
  const values = series.flatMap((s) => s.points.map(([, v]) => v)).filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.log10(Math.min(...values)) - 0.1;
  const hi = Math.log10(Math.max(...values)) + 0.1;
  const x = (i: number): number => left + ((WIDTH - left - right) * i) / Math.max(1, labels.length - 1);
  const y = (v: number): number => top + ((height - top - bottom) * (hi - Math.log10(v))) / (hi - lo);
  const parts = [
    header(WIDTH, height, title),
    `<text x="14" y="${height / 2}" transform="rotate(-90 14 ${height / 2})" text-anchor="middle">${escapeXml(yLabel)}</text>`,
  ];
  for (let d = Math.ceil(lo); d <= Math.floor(hi); d++) {
    parts.push(
      `<line x1="${left}" x2="${WIDTH - right}" y1="${y(10 ** d)}" y2="${y(10 ** d)}" stroke="#ddd"/><text x="${left - 6}" y="${y(10 ** d) + 4}" text-anchor="end">${fmt(10 ** d)}</text>`,
    );
  }
  labels.forEach((label, i) => {
    parts.push(`<text x="${x(i)}" y="${height - bottom + 18}" text-anchor="middle">${escapeXml(label)}</text>`);
  });
  series.forEach((s, n) => {
    const color = COLORS[n % COLORS.length];
    const points = s.points.map(([, v], i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`);
    s.points.forEach(([, v], i) => {
      parts.push(`<circle cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${color}"><title>${escapeXml(s.name)}: ${fmt(v)}</title></circle>`);
    });
    parts.push(
      `<rect x="${WIDTH - right + 12}" y="${top + n * 20 - 9}" width="10" height="10" fill="${color}"/><text x="${WIDTH - right + 28}" y="${top + n * 20}">${escapeXml(s.name)}</text>`,
    );
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

/** Horizontal bars, one per named value. */
export function barChart(title: string, unit: string, bars: Array<[string, number]>): string {
  const left = 330;
  const row = 24;
  const top = 40;
  const height = top + bars.length * row + 20;
  const max = Math.max(...bars.map(([, v]) => v));
  const w = (v: number): number => ((WIDTH - left - 70) * v) / max;
  const parts = [header(WIDTH, height, title)];
  bars.forEach(([name, value], i) => {
    const yy = top + i * row;
    parts.push(`<text x="${left - 8}" y="${yy + 14}" text-anchor="end">${escapeXml(name)}</text>`);
    parts.push(`<rect x="${left}" y="${yy + 2}" width="${w(value).toFixed(1)}" height="${row - 8}" fill="${COLORS[0]}"/>`);
    parts.push(`<text x="${left + w(value) + 6}" y="${yy + 14}">${fmt(value)} ${escapeXml(unit)}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}

function header(width: number, height: number, title: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ].join('\n');
}
