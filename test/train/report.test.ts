/** The comparison report: its table arithmetic and well-formed, self-contained output files. */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { lineChartSvg, niceTicks } from '../../lib/train/plot.js';
import { renderReport, summarize, writeReport, type RunCurve } from '../../lib/train/report.js';

const runs: RunCurve[] = [
  { name: 'adamw', train: [[1, 1, 10], [2, 0.8, 20], [3, 0.7, 30]], evals: [[1, 0.6, 10, 1], [2, 0.7, 20, 0.9], [3, 0.72, 30, 0.8]], msPerStep: 10, diverged: false },
  { name: 'kfac+clip', train: [[1, 1, 15], [2, 0.5, 30], [3, 0.3, 45]], evals: [[1, 0.65, 15, 0.9], [2, 0.75, 30, 0.7], [3, 0.74, 45, 0.6]], msPerStep: 15, diverged: false },
  { name: 'kfac', train: [[1, 1, 15], [2, NaN, 30]], evals: [[1, 0.5, 15, 2]], msPerStep: 15, diverged: true },
];

describe('report', () => {
  it('summarizes final and best metrics and the steps to reach the baseline best', () => {
    const rows = summarize(runs, 'max');
    expect(rows[0]).toEqual({ name: 'adamw', finalMetric: 0.72, bestMetric: 0.72, stepsToBaselineBest: 3, msPerStep: 10, diverged: false });
    expect(rows[1]!.stepsToBaselineBest).toBe(2);
    expect(rows[1]!.bestMetric).toBe(0.75);
    expect(rows[2]!.stepsToBaselineBest).toBeUndefined();
    expect(rows[2]!.diverged).toBe(true);
    expect(summarize(runs, 'min')[2]!.stepsToBaselineBest).toBe(1); // min mode: 0.5 ≤ 0.6 at step 1
  });

  it('draws one path per series and skips non-finite points', () => {
    const svg = lineChartSvg({ title: 'a < b', xLabel: 'step', yLabel: 'loss', logY: true, series: [{ name: 'x', points: [[0, 1], [1, 0.1], [2, NaN]] }, { name: 'y', points: [[0, 2], [2, 0.5]] }] });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<path /g)!.length).toBe(2);
    expect(svg).toContain('a &lt; b');
    expect(svg).not.toContain('NaN');
    expect(niceTicks(0, 1, 5).map((v) => +v.toFixed(10))).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it('writes a self-contained HTML page and the SVG files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfac-report-'));
    const rows = writeReport(dir, { title: 'SST-2', metricName: 'accuracy', mode: 'max', runs, details: ['model: tiny'] });
    expect(rows.length).toBe(3);
    expect(readdirSync(dir).sort()).toEqual(['loss-steps.svg', 'loss-time.svg', 'metric-steps.svg', 'metric-time.svg', 'report.html']);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)!.length).toBe(4);
    expect(html).not.toMatch(/<script|<link|src=/);
    expect(html).toContain('<td>kfac+clip</td>');
    const { html: again } = renderReport({ title: 'SST-2', metricName: 'accuracy', mode: 'max', runs, details: ['model: tiny'] });
    expect(again).toBe(html);
  });

  it('lays the plots out for the window: no fixed-width columns, charts scale with their column', () => {
    // Checked by eye in headless Chromium at 1280×900 (two columns, no horizontal scroll); here the
    // rules that make it so: the grid's columns are fractions of the width, each SVG fills its column.
    const { html } = renderReport({ title: 'SST-2', metricName: 'accuracy', mode: 'max', runs, details: [] });
    const grid = /\.grid \{[^}]*grid-template-columns: ([^;]+);/.exec(html);
    expect(grid).not.toBeNull();
    expect(grid![1]).not.toMatch(/repeat\(\d+, \d+px\)/);
    expect(grid![1]).toContain('1fr');
    expect(html).toMatch(/\.grid svg \{[^}]*width: 100%;[^}]*height: auto;/);
    for (const svg of html.match(/<svg [^>]*>/g)!) expect(svg).toMatch(/viewBox="0 0 \d+ \d+"/);
  });
});
