#!/usr/bin/env node
// The tables of BENCHMARKS.md's "K-FAC at its defaults": pools the runs of one task from one or
// more `compare` output folders (compare.json), measures every configuration against the best
// AdamW configuration (the tuned baseline, per seed), and prints per configuration the final and
// best dev metric (mean ± standard deviation over seeds, then each seed's final), the steps and the
// wall-clock seconds to the baseline's best at the same seed, the same on the seed-averaged curves
// (the first step at which the configuration's mean curve reached the best of the baseline's mean
// curve, over the seeds they share, against the baseline's own step and time), ms / step and
// divergences.
// With --svg FILE it also draws the seed-averaged eval curves of every configuration, with the
// baseline's averaged best as a dashed line. With --train-window N it also reads the training loss
// the same way: each run's loss averaged over windows of N steps, then over the seeds a
// configuration shares with the baseline; per configuration its lowest window and the first window
// at or below the baseline's lowest (against the baseline's own) — how fast the optimizer fits,
// apart from how the fit carries to the dev set — and each configuration's windows. The
// seed-averaged eval curves are printed too (step:value). With --bootstrap it also gives, per
// configuration, the bootstrap over seeds of the seed-averaged steps ratio (lib/train/seed-bootstrap.ts:
// the seeds drawn again with replacement, the same draw for the configuration and the baseline):
// its median, its 5–95% interval and the probability of a draw at or below 0.6× (the bar of
// BENCHMARKS.md's "K-FAC at its defaults").
// usage: node bench/e2e/defaults-table.mjs [--baseline NAME] [--svg FILE] [--train-window N] [--bootstrap] <compare-out-folder> [more …]
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { averageEvals, averagedCell, averageTrainWindows, compareRuns, curveOf, sharedSeedRuns } from '../../dist/train/compare.js';
import { lineChartSvg } from '../../dist/train/plot.js';
import { bootstrapAveragedSteps, bootstrapQuantile, bootstrapShareAtMost } from '../../dist/train/seed-bootstrap.js';

const args = process.argv.slice(2);
let baseline;
let svg;
let trainWindow;
let bootstrap = false;
for (;;) {
  if (args[0] === '--baseline') [, baseline] = args.splice(0, 2);
  else if (args[0] === '--bootstrap') {
    args.shift();
    bootstrap = true;
  }
  else if (args[0] === '--svg') [, svg] = args.splice(0, 2);
  else if (args[0] === '--train-window') {
    trainWindow = Number(args[1]);
    if (!Number.isInteger(trainWindow) || trainWindow < 1) throw new Error(`--train-window: expected a positive integer, got ${JSON.stringify(args[1])}`);
    args.splice(0, 2);
  } else break;
}
if (args.length === 0) throw new Error('usage: defaults-table.mjs [--baseline NAME] [--svg FILE] [--train-window N] [--bootstrap] <compare-out-folder> [more …]');
// Every finished run under <folder>/runs/*: its summary (run.json), configuration (config.json)
// and curves with wall-clock (metrics.jsonl) — so folders of interrupted comparisons count too.
const runs = args.flatMap((d) =>
  readdirSync(join(d, 'runs'))
    .map((r) => join(d, 'runs', r))
    .filter((r) => existsSync(join(r, 'run.json')) && existsSync(join(r, 'config.json')))
    .map((r) => {
      const summary = JSON.parse(readFileSync(join(r, 'run.json'), 'utf8'));
      const config = JSON.parse(readFileSync(join(r, 'config.json'), 'utf8'));
      const history = readFileSync(join(r, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      return { name: summary.name, optimizer: config.optimizer, seed: config.seed, summary, curve: curveOf(summary.name, history, summary.monitor) };
    })
    .filter((r) => !r.summary.interrupted),
);
if (runs.length === 0) throw new Error(`no finished runs under ${args.join(', ')}`);
const monitor = runs[0].summary.monitor;
const mode = monitor === 'loss' || monitor === 'perplexity' ? 'min' : 'max';
const c = compareRuns(runs, monitor, mode, baseline);

const f = (v, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(d)).toString() : '–');
// the evaluation [step, metric, ms] at which a run first reached the baseline's best at its seed (compareRuns' steps)
const hit = (row, r) => {
  const step = row.stepsToBaseline[row.seeds.indexOf(r.seed)];
  return step === undefined ? undefined : r.curve.evals.find((e) => e[0] === step);
};
console.log(`\n${args.join(' + ')} — ${monitor} (${mode === 'max' ? 'higher' : 'lower'} is better), baseline ${c.baseline} (the best AdamW by mean best ${monitor})\n`);
console.log(`| run | final ${monitor} | best ${monitor} | final, per seed | steps to baseline's best, per seed | seconds to it, per seed | seed-averaged: steps (× baseline's, time ×), seconds | ms / step | diverged |`);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const row of c.rows) {
  const rs = runs.filter((r) => r.name === row.name).sort((a, b) => a.seed - b.seed);
  const finals = rs.map((r) => f(r.summary.final, 3)).join(' / ');
  const steps = rs.map((r) => hit(row, r)?.[0] ?? 'never').join(' / ');
  const secs = rs.map((r) => { const h = hit(row, r); return h ? f(h[2] / 1000, 3) : '–'; }).join(' / ');
  const name = `${row.name}${row.name === c.baseline ? ' (baseline)' : ''}`;
  const avg = `${averagedCell(row.averaged)}${row.averaged.ms === undefined ? '' : `, ${f(row.averaged.ms / 1000, 3)} s`}`;
  console.log(`| ${name} | ${f(row.final.mean)} ± ${f(row.final.std, 2)} | ${f(row.best.mean)} ± ${f(row.best.std, 2)} | ${finals} | ${steps} | ${secs} | ${avg} | ${f(row.msPerStep, 3)} | ${row.diverged}/${rs.length} |`);
}

// the seed-averaged curves themselves, over the seeds each configuration shares with the baseline
console.log('\nSeed-averaged curves (step:value), over the seeds shared with the baseline\n');
for (const row of c.rows) {
  const shared = sharedSeedRuns(runs, row.name, c.baseline);
  console.log(`- ${row.name}: ${averageEvals(shared.own).map(([st, v]) => `${st}:${f(v, 3)}`).join(' ')}`);
}

if (trainWindow !== undefined) {
  console.log(`\nTraining loss in windows of ${trainWindow} steps, averaged over the seeds shared with the baseline\n`);
  console.log("| run | lowest window (its last step) | first window at or below the baseline's lowest (× the baseline's) |");
  console.log('| --- | ---: | ---: |');
  for (const row of c.rows) {
    const shared = sharedSeedRuns(runs, row.name, c.baseline);
    const own = averageTrainWindows(shared.own, trainWindow);
    const base = averageTrainWindows(shared.base, trainWindow);
    const lowest = (ws) => ws.reduce((b, p) => (p[1] < b[1] ? p : b), [NaN, Infinity]);
    const [baseStep, target] = lowest(base);
    const [step, low] = lowest(own);
    const reach = own.find((p) => p[1] <= target)?.[0];
    const cell = reach === undefined ? 'never' : `${reach} (${f(reach / baseStep, 2)}×)`;
    console.log(`| ${row.name}${row.name === c.baseline ? ' (baseline)' : ''} | ${Number.isFinite(low) ? `${f(low, 4)} (${step})` : '–'} | ${shared.own.length && Number.isFinite(target) ? cell : '–'} |`);
  }
  console.log('\nThe windows (last step:loss)\n');
  for (const row of c.rows) {
    const shared = sharedSeedRuns(runs, row.name, c.baseline);
    console.log(`- ${row.name}: ${averageTrainWindows(shared.own, trainWindow).map(([st, v]) => `${st}:${f(v, 4)}`).join(' ')}`);
  }
}

if (bootstrap) {
  const BAR = 0.6;
  const x = (v) => (v === Infinity ? 'never' : Number.isFinite(v) ? `${f(v, 2)}×` : '–');
  console.log(`\nThe seed-averaged steps ratio, bootstrapped over the seeds shared with the baseline\n`);
  console.log(`| run | seeds | draws | observed | median | 5–95% | P(≤ ${BAR}×) |`);
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of c.rows) {
    if (row.name === c.baseline || row.averaged.baselineSteps === undefined) continue;
    const b = bootstrapAveragedSteps(runs, row.name, c.baseline, mode);
    const observed = row.averaged.steps === undefined ? Infinity : row.averaged.steps / row.averaged.baselineSteps;
    const q = (p) => x(bootstrapQuantile(b, p));
    console.log(`| ${row.name} | ${b.seeds} | ${b.exact ? `every one (${b.draws} multisets)` : `${b.draws} random`} | ${x(observed)} | ${q(0.5)} | ${q(0.05)} – ${q(0.95)} | ${f(bootstrapShareAtMost(b, BAR), 2)} |`);
  }
}

if (svg) {
  const series = c.rows.map((row) => ({ name: row.name, points: averageEvals(runs.filter((r) => r.name === row.name)).map(([st, v]) => [st, v]) }));
  const base = series.find((x) => x.name === c.baseline);
  const values = base.points.map((p) => p[1]).filter(Number.isFinite);
  const target = mode === 'max' ? Math.max(...values) : Math.min(...values);
  const steps = series.flatMap((x) => x.points.map((p) => p[0]));
  series.push({ name: `${c.baseline}: its averaged best`, points: [[Math.min(...steps), target], [Math.max(...steps), target]], dashed: true, color: '#888' });
  const seeds = [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b).join(', ');
  writeFileSync(svg, lineChartSvg({ title: `Dev ${monitor}, averaged over seeds ${seeds}`, xLabel: 'step', yLabel: monitor, series }));
  console.log(`\nwrote ${svg}`);
}
