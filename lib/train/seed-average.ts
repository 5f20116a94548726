/**
 * Seed-averaged readings of a comparison: mean curves over the runs of several seeds, the runs a
 * configuration shares with the baseline, and the first step at which one mean curve reached the
 * best of another. compare.ts builds its table from them; seed-bootstrap.ts draws the seeds again.
 */
import { describe, invalidArgument } from '../errors.js';
import type { AveragedReach, CompareRun } from './compare.js';

/** The best metric of eval points [step, metric, …]; NaN when none is finite. */
export function bestOf(evals: readonly (readonly [number, number, ...number[]])[], mode: 'min' | 'max'): number {
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
