/**
 * Side-by-side optimizer comparisons: several run configurations × seeds on the same model and
 * data. Per seed, every run is measured against the baseline's best metric at that seed (steps
 * to reach it); per configuration, the seeds are summarised (mean ± standard deviation), and the
 * seed-averaged curves are measured the same way (the eval noise of one seed averages out).
 * The baseline is, unless named, the AdamW configuration with the best mean best-metric — so an
 * AdamW learning-rate grid competes as its tuned best.
 */
import type { RunCurve } from './report.js';
import type { RunResult, RunSummary } from './run.js';
import { runSummary } from './run.js';
import { averagedReach, bestOf, sharedSeedRuns } from './seed-average.js';
import { bootstrapAveragedSteps, bootstrapQuantile } from './seed-bootstrap.js';
import type { TrainerEvent } from './trainer.js';

export { averagedReach, averageEvals, averageTrainWindows, sharedSeedRuns } from './seed-average.js';

export interface CompareRun {
  /** Name of the configuration (shared by its seeds). */
  name: string;
  optimizer: string;
  seed: number;
  summary: RunSummary;
  curve: RunCurve;
}

export interface ConfigRow {
  name: string;
  optimizer: string;
  seeds: number[];
  final: { mean: number; std: number };
  best: { mean: number; std: number };
  /** Per seed: first evaluated step at which the run reached the baseline's best at that seed. */
  stepsToBaseline: (number | undefined)[];
  /**
   * On the seed-averaged eval curves, over the seeds this configuration shares with the baseline:
   * the first evaluated step at which this configuration's mean curve reached the best of the
   * baseline's mean curve, and the mean elapsed ms there (undefined: never); `baseline*` are the
   * baseline's own first step at its best and its ms there, over the same seeds.
   */
  averaged: AveragedReach;
  msPerStep: number;
  diverged: number;
  clipRate: number | undefined;
}

export interface AveragedReach {
  steps: number | undefined;
  ms: number | undefined;
  baselineSteps: number | undefined;
  baselineMs: number | undefined;
  /**
   * With at least 3 seeds shared with the baseline (not on the baseline's own row): the bootstrap
   * over seeds of steps / baselineSteps (seed-bootstrap.ts) — its 5%, 50% and 95% quantiles
   * (Infinity, null in JSON: never reached on those draws).
   */
  bootstrap?: { seeds: number; lo: number; median: number; hi: number };
}

export interface Comparison {
  baseline: string;
  monitor: string;
  mode: 'min' | 'max';
  rows: ConfigRow[];
  runs: CompareRun[];
}

type StepEvent = Extract<TrainerEvent, { kind: 'step' }>;
type EvalEvent = Extract<TrainerEvent, { kind: 'eval' }>;

/**
 * Whether a run diverged: a non-finite loss, or a training loss (mean over 10 steps) that rose
 * above 2× its starting value — a blow-up that finite numbers hide (for a log-loss, doubling from
 * a pretrained model's start is far past any noise: 3.8 → 7.6 nats is perplexity 45 → 2000). The start is the first
 * step's loss (at the initial weights, before any update): a mean over the first steps would
 * already hold a blow-up of the first few updates and hide it.
 */
export function blewUp(losses: readonly number[], window = 10, factor = 2): boolean {
  if (losses.some((l) => !Number.isFinite(l))) return true;
  if (losses.length < window) return false;
  const start = losses[0]!;
  let sum = 0;
  for (let i = 0; i < losses.length; i++) {
    sum += losses[i]! - (i >= window ? losses[i - window]! : 0);
    if (i >= window - 1 && sum / window > factor * start) return true;
  }
  return false;
}

/** The curves of a run from its events. */
export function curveOf(name: string, history: readonly TrainerEvent[], monitor: string): RunCurve {
  const steps = history.filter((e): e is StepEvent => e.kind === 'step');
  const evals = history.filter((e): e is EvalEvent => e.kind === 'eval');
  const timed = steps.filter((s) => s.ms > 0);
  return {
    name,
    train: steps.map((s) => [s.step, s.loss, s.elapsedMs]),
    evals: evals.map((e) => [e.step, monitor === 'loss' ? e.loss : e.metrics[monitor]!, e.elapsedMs, e.loss]),
    msPerStep: timed.length ? timed.reduce((a, s) => a + s.ms, 0) / timed.length : NaN,
    diverged: blewUp(steps.map((s) => s.loss)),
  };
}

export function compareRun(r: RunResult, seed: number): CompareRun {
  return { name: r.name, optimizer: r.config.optimizer, seed, summary: runSummary(r), curve: curveOf(r.name, r.fit.history, r.monitor) };
}

const meanStd = (xs: readonly number[]) => {
  const v = xs.filter(Number.isFinite);
  if (v.length === 0) return { mean: NaN, std: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
};

/** The fewest seeds shared with the baseline for which a row carries the bootstrap over seeds. */
export const BOOTSTRAP_MIN_SEEDS = 3;

/** Summarises runs by configuration, against a baseline configuration. */
export function compareRuns(runs: readonly CompareRun[], monitor: string, mode: 'min' | 'max', baseline?: string): Comparison {
  const names = [...new Set(runs.map((r) => r.name))];
  const byName = (n: string) => runs.filter((r) => r.name === n);
  const meanBest = (n: string) => meanStd(byName(n).map((r) => bestOf(r.curve.evals, mode))).mean;
  const better = (a: number, b: number) => (mode === 'max' ? a > b : a < b);
  let base = baseline;
  if (base === undefined) {
    const adam = names.filter((n) => byName(n)[0]!.optimizer === 'adamw');
    const pool = adam.length ? adam : names.slice(0, 1);
    base = pool.reduce((b, n) => (better(meanBest(n), meanBest(b)) || !Number.isFinite(meanBest(b)) ? n : b), pool[0]!);
  }
  const reach = (r: CompareRun): number | undefined => {
    const b = byName(base!).find((x) => x.seed === r.seed);
    if (!b) return undefined;
    const target = bestOf(b.curve.evals, mode);
    if (!Number.isFinite(target)) return undefined;
    return r.curve.evals.find((e) => (mode === 'max' ? e[1] >= target : e[1] <= target))?.[0];
  };
  const averaged = (n: string): AveragedReach => {
    const shared = sharedSeedRuns(runs, n, base!);
    const a = averagedReach(shared.own, shared.base, mode);
    if (n === base || a.baselineSteps === undefined || new Set(shared.own.map((r) => r.seed)).size < BOOTSTRAP_MIN_SEEDS) return a;
    const b = bootstrapAveragedSteps(runs, n, base!, mode);
    return { ...a, bootstrap: { seeds: b.seeds, lo: bootstrapQuantile(b, 0.05), median: bootstrapQuantile(b, 0.5), hi: bootstrapQuantile(b, 0.95) } };
  };
  const rows = names.map((n): ConfigRow => {
    const rs = byName(n);
    const clip = rs.map((r) => r.summary.clipRate).filter((c): c is number => c !== undefined);
    return {
      name: n,
      optimizer: rs[0]!.optimizer,
      seeds: rs.map((r) => r.seed),
      final: meanStd(rs.map((r) => r.summary.final ?? NaN)),
      best: meanStd(rs.map((r) => bestOf(r.curve.evals, mode))),
      stepsToBaseline: rs.map(reach),
      averaged: averaged(n),
      msPerStep: meanStd(rs.map((r) => r.curve.msPerStep)).mean,
      diverged: rs.filter((r) => r.summary.diverged || r.curve.diverged).length,
      clipRate: clip.length ? meanStd(clip).mean : undefined,
    };
  });
  return { baseline: base, monitor, mode, rows, runs: [...runs] };
}

const f = (v: number, d = 4) => (Number.isFinite(v) ? Number(v.toPrecision(d)).toString() : '–');
const pm = (m: { mean: number; std: number }, seeds: number) => (seeds > 1 ? `${f(m.mean)} ± ${f(m.std, 2)}` : f(m.mean));

/**
 * One cell of the seed-averaged reading: the step at which a configuration's mean curve reached
 * the baseline's mean best, and the steps and time against the baseline's own ("150 (0.6×, time 0.78×)");
 * with the bootstrap over seeds, its 5–95% range of the steps ratio after them ("150 (0.6×, time
 * 0.78×; bootstrap 5–95%: 0.42×–0.78×)", "never (bootstrap 5–95%: 0.8×–never)").
 */
export function averagedCell(a: AveragedReach): string {
  if (a.baselineSteps === undefined) return '–'; // no seed shared with the baseline, or no finite baseline metric
  const ratio = (x: number | undefined, y: number | undefined) => (x !== undefined && y !== undefined && y > 0 ? f(x / y, 2) : '–');
  const x = (v: number) => (v === Infinity ? 'never' : Number.isFinite(v) ? `${f(v, 2)}×` : 'n/a'); // NaN: past the draws with a reading
  const spread = a.bootstrap ? `bootstrap 5–95%: ${x(a.bootstrap.lo)}–${x(a.bootstrap.hi)}` : '';
  if (a.steps === undefined) return spread ? `never (${spread})` : 'never';
  return `${a.steps} (${ratio(a.steps, a.baselineSteps)}×, time ${ratio(a.ms, a.baselineMs)}×${spread ? `; ${spread}` : ''})`;
}

/**
 * The comparison as table cells (header + rows), for the terminal, Markdown and the report. With
 * several seeds, a column gives the seed-averaged reading (`averagedCell`).
 */
export function comparisonTable(c: Comparison): { head: string[]; rows: string[][] } {
  const seeded = c.rows.some((r) => r.seeds.length > 1);
  return {
    head: [
      'run',
      `final ${c.monitor}`,
      `best ${c.monitor}`,
      `steps to ${c.baseline}'s best (per seed)`,
      ...(seeded ? [`steps to its best, seed-averaged curves (against ${c.baseline})`] : []),
      'ms / step',
      'diverged',
      'Newton-clip rate',
    ],
    rows: c.rows.map((r) => [
      r.name + (r.name === c.baseline ? ' (baseline)' : ''),
      pm(r.final, r.seeds.length),
      pm(r.best, r.seeds.length),
      r.stepsToBaseline.map((s) => (s === undefined ? 'never' : String(s))).join(' / '),
      ...(seeded ? [averagedCell(r.averaged)] : []),
      f(r.msPerStep, 3),
      `${r.diverged}/${r.seeds.length}`,
      r.clipRate === undefined ? '–' : `${(100 * r.clipRate).toFixed(0)}%`,
    ]),
  };
}

/** Seed-averaged curves per configuration (train loss smoothed over `window` steps), for the plots. */
export function meanCurves(c: Comparison, window = 10): RunCurve[] {
  return c.rows.map((row) => {
    const rs = c.runs.filter((r) => r.name === row.name);
    const avg = <T extends number[]>(pick: (r: CompareRun) => T[]): T[] => {
      const first = pick(rs[0]!);
      return first.map((p, i) => p.map((_, k) => (k === 0 ? p[0]! : rs.reduce((a, r) => a + (pick(r)[i]?.[k] ?? NaN), 0) / rs.length)) as T);
    };
    const train = avg((r) => r.curve.train);
    const smooth = train.map(([s, , t], i) => {
      const lo = Math.max(0, i - window + 1);
      const part = train.slice(lo, i + 1);
      return [s, part.reduce((a, p) => a + p[1], 0) / part.length, t] as [number, number, number];
    });
    return { name: row.name, train: smooth, evals: avg((r) => r.curve.evals), msPerStep: row.msPerStep, diverged: row.diverged > 0 };
  });
}
