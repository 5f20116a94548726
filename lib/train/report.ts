/**
 * The comparison report: optimizer runs on the same model, data and seed, as curves (loss and
 * metric against steps and against wall time) and a table (final and best metric, steps to reach
 * the baseline's best, time per step, divergences). One self-contained HTML page with the SVGs
 * inline, plus each SVG as its own file.
 */
import { writeFilesAtomic } from '../util/atomic.js';
import { lineChartSvg, type Series } from './plot.js';

export interface RunCurve {
  name: string;
  /** Training loss per step: [step, loss, elapsed ms]. */
  train: [number, number, number][];
  /** Evaluations: [step, metric value, elapsed ms, eval loss]. */
  evals: [number, number, number, number][];
  msPerStep: number;
  diverged: boolean;
}

export interface RunRow {
  name: string;
  finalMetric: number;
  bestMetric: number;
  /** First step at which the run's metric reached the baseline's best (undefined: never). */
  stepsToBaselineBest: number | undefined;
  msPerStep: number;
  diverged: boolean;
}

/** The table of a comparison; the first run is the baseline. */
export function summarize(runs: readonly RunCurve[], mode: 'max' | 'min'): RunRow[] {
  const better = (a: number, b: number) => (mode === 'max' ? a >= b : a <= b);
  const bestOf = (r: RunCurve) => r.evals.reduce((b, e) => (better(e[1], b) ? e[1] : b), mode === 'max' ? -Infinity : Infinity);
  const baseline = runs[0] ? bestOf(runs[0]) : NaN;
  return runs.map((r) => ({
    name: r.name,
    finalMetric: r.evals.at(-1)?.[1] ?? NaN,
    bestMetric: bestOf(r),
    stepsToBaselineBest: r.evals.find((e) => better(e[1], baseline))?.[0],
    msPerStep: r.msPerStep,
    diverged: r.diverged,
  }));
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const f = (v: number | undefined, d = 4) => (v === undefined || !Number.isFinite(v) ? '–' : Number(v.toPrecision(d)).toString());

export interface ReportInput {
  title: string;
  metricName: string;
  mode: 'max' | 'min';
  runs: RunCurve[];
  /** Lines of context: model, data, seed, commands. */
  details: string[];
  /** A table to show instead of the default one (e.g. a multi-seed comparison): header cells and rows. */
  table?: { head: string[]; rows: string[][] };
}

export function renderReport(input: ReportInput): { html: string; svgs: Record<string, string>; rows: RunRow[] } {
  const rows = summarize(input.runs, input.mode);
  const series = (pick: (r: RunCurve) => [number, number][]): Series[] => input.runs.map((r) => ({ name: r.name, points: pick(r) }));
  // a diverged run can sit orders of magnitude above the rest: then the metric axis is logarithmic
  const values = input.runs.flatMap((r) => r.evals.map((e) => e[1])).filter(Number.isFinite);
  const logMetric = values.length > 0 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 100;
  const svgs: Record<string, string> = {
    'loss-steps.svg': lineChartSvg({ title: 'Training loss', xLabel: 'step', yLabel: 'loss', logY: true, series: series((r) => r.train.map(([s, l]) => [s, l])) }),
    'loss-time.svg': lineChartSvg({ title: 'Training loss against wall time', xLabel: 'seconds', yLabel: 'loss', logY: true, series: series((r) => r.train.map(([, l, t]) => [t / 1000, l])) }),
    'metric-steps.svg': lineChartSvg({ title: `Evaluation ${input.metricName}`, xLabel: 'step', yLabel: input.metricName, logY: logMetric, series: series((r) => r.evals.map(([s, v]) => [s, v])) }),
    'metric-time.svg': lineChartSvg({ title: `Evaluation ${input.metricName} against wall time`, xLabel: 'seconds', yLabel: input.metricName, logY: logMetric, series: series((r) => r.evals.map(([, v, t]) => [t / 1000, v])) }),
  };
  const table = input.table
    ? ['<table>', `<tr>${input.table.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`, ...input.table.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`), '</table>'].join('\n')
    : [
    '<table>',
    `<tr><th>run</th><th>final ${esc(input.metricName)}</th><th>best ${esc(input.metricName)}</th><th>steps to reach ${esc(input.runs[0]?.name ?? 'baseline')}'s best</th><th>ms / step</th><th>diverged</th></tr>`,
    ...rows.map((r) => `<tr><td>${esc(r.name)}</td><td>${f(r.finalMetric)}</td><td>${f(r.bestMetric)}</td><td>${r.stepsToBaselineBest ?? 'never'}</td><td>${f(r.msPerStep, 3)}</td><td>${r.diverged ? 'yes' : 'no'}</td></tr>`),
    '</table>',
  ].join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1320px; }
table { max-width: 100%; overflow-x: auto; display: block; }
h1 { font-size: 22px; } table { border-collapse: collapse; margin: 12px 0 24px; }
th, td { border: 1px solid #ccc; padding: 6px 10px; text-align: right; } th:first-child, td:first-child { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 480px), 1fr)); gap: 16px; } ul { color: #555; }
.grid svg { width: 100%; height: auto; display: block; }
</style></head><body>
<h1>${esc(input.title)}</h1>
<ul>${input.details.map((d) => `<li>${esc(d)}</li>`).join('')}</ul>
${table}
<div class="grid">${Object.values(svgs).join('\n')}</div>
</body></html>
`;
  return { html, svgs, rows };
}

/** Writes report.html and the SVGs into `dir` (each file written to a temporary name, then renamed). */
export function writeReport(dir: string, input: ReportInput): RunRow[] {
  const { html, svgs, rows } = renderReport(input);
  const enc = new TextEncoder();
  writeFilesAtomic(dir, [...Object.entries(svgs).map(([name, svg]) => ({ name, bytes: enc.encode(svg) })), { name: 'report.html', bytes: enc.encode(html) }]);
  return rows;
}
