/** Self-contained SVG line charts (no dependencies): axes with round ticks, grid, legend. */

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  width?: number;
  height?: number;
  logY?: boolean;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Round tick values covering [lo, hi] (about `count` of them). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Ticks for a log axis spanning 10^lo … 10^hi: 1-2-5 steps when it covers few decades. */
export function logTicks(lo: number, hi: number): number[] {
  const mult = hi - lo <= 3 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++)
    for (const m of mult) {
      const v = m * 10 ** k;
      const l = Math.log10(v);
      if (l >= lo - 1e-9 && l <= hi + 1e-9) out.push(Number(v.toPrecision(6)));
    }
  return out;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

export function lineChartSvg(o: ChartOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 380;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pts = o.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)));
  const tx = (y: number) => (o.logY ? Math.log10(y) : y);
  let [x0, x1] = pts.length ? [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))] : [0, 1];
  let [y0, y1] = pts.length ? [Math.min(...pts.map((p) => tx(p[1]))), Math.max(...pts.map((p) => tx(p[1])))] : [0, 1];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((tx(y) - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`);
  for (const v of niceTicks(x0, x1, 6)) {
    const X = sx(v);
    parts.push(`<line x1="${X}" y1="${m.t}" x2="${X}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${X}" y="${H - m.b + 16}" text-anchor="middle" fill="#333">${fmt(v)}</text>`);
  }
  for (const val of o.logY ? logTicks(y0, y1) : niceTicks(y0, y1, 5)) {
    const Y = sy(val);
    if (Y < m.t - 1 || Y > H - m.b + 1) continue;
    parts.push(`<line x1="${m.l}" y1="${Y}" x2="${W - m.r}" y2="${Y}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${Y + 4}" text-anchor="end" fill="#333">${fmt(val)}</text>`);
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}${o.logY ? ' (log)' : ''}</text>`);
  const color = (s: Series, i: number) => s.color ?? PALETTE[i % PALETTE.length]!;
  o.series.forEach((s, i) => {
    const d = s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0))
      .map(([x, y], k) => `${k ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
      .join(' ');
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${color(s, i)}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
  });
  // The legend last, so that no line crosses it, in the corner that hides the fewest points.
  const legendW = 24 + 7 * Math.max(0, ...o.series.map((s) => s.name.length)) + 12;
  const legendH = o.series.length * 16 + 6;
  const screen = pts.map(([x, y]) => [sx(x), sy(y)] as const);
  const corners = [
    [W - m.r - legendW - 6, m.t + 2],
    [W - m.r - legendW - 6, H - m.b - legendH - 2],
    [m.l + 6, m.t + 2],
    [m.l + 6, H - m.b - legendH - 2],
  ] as const;
  const hidden = (c: readonly [number, number]) => screen.filter(([X, Y]) => X >= c[0] && X <= c[0] + legendW && Y >= c[1] && Y <= c[1] + legendH).length;
  const [lx, ly0] = corners.reduce((best, c) => (hidden(c) < hidden(best) ? c : best), corners[0]);
  if (o.series.length) parts.push(`<rect x="${lx}" y="${ly0}" width="${legendW}" height="${legendH}" fill="#fff" fill-opacity="0.9" stroke="#ccc"/>`);
  o.series.forEach((s, i) => {
    const ly = ly0 + 12 + i * 16;
    parts.push(`<line x1="${lx + 6}" y1="${ly - 4}" x2="${lx + 26}" y2="${ly - 4}" stroke="${color(s, i)}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    parts.push(`<text x="${lx + 32}" y="${ly}" fill="#222">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
