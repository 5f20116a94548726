/**
 * Side-by-side optimizer comparisons: several run configurations × seeds on the same model and
 * data. Per seed, every run is measured against the baseline's best metric at that seed (steps
 * to reach it); per configuration, the seeds are summarised (mean ± standard deviation), and the
 * seed-averaged curves are measured the same way (the eval noise of one seed averages out).
 * The baseline is, unless named, the AdamW configuration with the best mean best-metric — so an
 * AdamW learning-rate grid competes as its tuned best.
 */
import { describe, invalidArgument } from '../errors.js';
import type { RunCurve } from './report.js';
import type { RunResult, RunSummary } from './run.js';
import { runSummary } from './run.js';
import type { TrainerEvent } from './trainer.js';

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

/** The best metric of eval points [step, metric, …]; NaN when none is finite. */
function bestOf(evals: readonly (readonly [number, number, ...number[]])[], mode: 'min' | 'max'): number {
  let b = mode === 'max' ? -Infinity : Infinity;
  for (const e of evals) if (Number.isFinite(e[1]) && (mode === 'max' ? e[1] > b : e[1] < b)) b = e[1];
  return Number.isFinite(b) ? b : NaN;
}

/** At the keys every map has, in the first map's order: [key, the mean over the maps of each field]. */
function meanAtSharedKeys(maps: readonly ReadonlyMap<number, readonly number[]>[]): number[][] {
  if (maps.length === 0) return [];
  return [...maps[0]!.keys()]
    .filter((k) => maps.every((m) => m.has(k)))
    .map((k) => [k, ...maps[0]!.get(k)!.map((_, i) => maps.reduce((a, m) => a + m.get(k)![i]!, 0) / maps.length)]);
}

/**
 * The mean eval curve of runs, [step, metric, elapsed ms]: at the evaluated steps that every run
 * has (a run that stopped early shortens it), each value the mean over the runs.
 */
export function averageEvals(runs: readonly CompareRun[]): [number, number, number][] {
  return meanAtSharedKeys(runs.map((r) => new Map(r.curve.evals.map((e) => [e[0], [e[1], e[2]]] as const)))) as [number, number, number][];
}

/**
 * The mean training loss of runs in windows of `w` steps, [the window's last step, loss]: each
 * run's loss averaged over steps (k−1)·w+1 … k·w, then over the runs, for the windows that every
 * run completed. Training losses are noisy batch by batch; a window shows the trend, and on data
 * seen for the first time it is a held-out reading.
 */
export function averageTrainWindows(runs: readonly CompareRun[], w: number): [number, number][] {
  if (!Number.isInteger(w) || w < 1) invalidArgument('w', 'a positive integer', describe(w));
  const windows = runs.map((r) => {
    const sums = new Map<number, { sum: number; n: number }>();
    for (const [step, loss] of r.curve.train) {
      const end = Math.ceil(step / w) * w;
      const e = sums.get(end) ?? { sum: 0, n: 0 };
      e.sum += loss;
      e.n += 1;
      sums.set(end, e);
    }
    return new Map([...sums].filter(([, e]) => e.n === w).map(([end, e]) => [end, [e.sum / w]] as const));
  });
  return meanAtSharedKeys(windows) as [number, number][];
}

/**
 * The runs of configuration `name` at the seeds the baseline also ran, and the baseline's runs at
 * those seeds: what a seed-averaged reading against the baseline averages over.
 */
export function sharedSeedRuns(runs: readonly CompareRun[], name: string, baseline: string): { own: CompareRun[]; base: CompareRun[] } {
  const baseRuns = runs.filter((r) => r.name === baseline);
  const own = runs.filter((r) => r.name === name && baseRuns.some((b) => b.seed === r.seed));
  return { own, base: baseRuns.filter((b) => own.some((r) => r.seed === b.seed)) };
}

/**
 * The seed-averaged reading of runs against baseline runs (the same seeds, a seed may repeat):
 * the first evaluated step at which the mean curve of `own` reached the best of the baseline's
 * mean curve, and the baseline's own first step there, with the mean elapsed ms at both.
 */
export function averagedReach(own: readonly CompareRun[], base: readonly CompareRun[], mode: 'min' | 'max'): AveragedReach {
  const none = { steps: undefined, ms: undefined, baselineSteps: undefined, baselineMs: undefined };
  if (own.length === 0) return none;
  const b = averageEvals(base);
  const target = bestOf(b, mode);
  if (!Number.isFinite(target)) return none;
  const reached = (c: [number, number, number][]) => c.find((e) => (mode === 'max' ? e[1] >= target : e[1] <= target));
  const mine = reached(averageEvals(own));
  const theirs = reached(b);
  return { steps: mine?.[0], ms: mine?.[2], baselineSteps: theirs?.[0], baselineMs: theirs?.[2] };
}

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
    return averagedReach(shared.own, shared.base, mode);
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
 * the baseline's mean best, and the steps and time against the baseline's own ("150 (0.6×, time 0.78×)").
 */
export function averagedCell(a: AveragedReach): string {
  if (a.baselineSteps === undefined) return '–'; // no seed shared with the baseline, or no finite baseline metric
  if (a.steps === undefined) return 'never';
  const ratio = (x: number | undefined, y: number | undefined) => (x !== undefined && y !== undefined && y > 0 ? f(x / y, 2) : '–');
  return `${a.steps} (${ratio(a.steps, a.baselineSteps)}×, time ${ratio(a.ms, a.baselineMs)}×)`;
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
