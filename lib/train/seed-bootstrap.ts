/**
 * How firm a seed-averaged reading is: the bootstrap over seeds of "steps to the baseline's best".
 *
 * The seed-averaged reading (compare.ts, `averagedReach`) averages every evaluation over the seeds
 * a configuration shares with the baseline and reads the first step at which the configuration's
 * mean curve reached the best of the baseline's mean curve, against the baseline's own step. With
 * a handful of seeds that ratio moves by a whole evaluation interval when one seed changes. The
 * bootstrap draws the seeds again with replacement — one draw takes the same seeds for both
 * configurations, so the pairing by seed (same data order, same initial adapter) is kept — and
 * reads the ratio on every draw. Its distribution says how often another set of seeds like these
 * would have given a ratio at or below a bar.
 *
 * With few seeds every draw is weighed exactly: a draw is a multiset of the n seeds (C(2n−1, n) of
 * them), with probability n! / (Π c_i! · nⁿ) for counts c_i. Beyond `exactLimit` multisets,
 * `draws` seeded random draws are taken instead.
 */
import { describe, invalidArgument } from '../errors.js';
import { mulberry32 } from '../util/random.js';
import type { CompareRun } from './compare.js';
import { averagedReach, sharedSeedRuns } from './seed-average.js';

export interface StepsBootstrap {
  /** Seeds the configuration shares with the baseline (the n that are drawn again). */
  seeds: number;
  /** true: every multiset of the seeds weighed by its probability; false: `draws` random draws. */
  exact: boolean;
  /** Distinct multisets weighed (exact) or draws taken. */
  draws: number;
  /**
   * Steps over the baseline's own steps on a draw, ascending, with their probabilities (summing
   * to 1 with `undetermined`); Infinity: the configuration's mean curve never reached the
   * baseline's best on that draw.
   */
  ratios: { ratio: number; p: number }[];
  /** Probability of a draw whose baseline curve has no finite best (a reading that does not exist). */
  undetermined: number;
}

export interface StepsBootstrapOptions {
  /** Enumerate every multiset when there are at most this many (default 20,000: up to 8 seeds). */
  exactLimit?: number;
  /** Random draws beyond that (default 4,000). */
  draws?: number;
  /** Seed of the random draws (default 0). */
  seed?: number;
}

/** C(2n−1, n), the number of multisets of size n from n seeds (exact up to 2⁵³, a float beyond: enough to compare with a limit). */
export function multisetCount(n: number): number {
  let c = 1;
  for (let i = 1; i <= n; i++) c = (c * (n - 1 + i)) / i;
  return Math.round(c);
}

/** The bootstrap over seeds of configuration `name`'s seed-averaged steps to `baseline`'s best. */
export function bootstrapAveragedSteps(runs: readonly CompareRun[], name: string, baseline: string, mode: 'min' | 'max', options: StepsBootstrapOptions = {}): StepsBootstrap {
  const exactLimit = options.exactLimit ?? 20_000;
  const draws = options.draws ?? 4_000;
  if (!(Number.isInteger(exactLimit) && exactLimit >= 0)) invalidArgument('exactLimit', 'an integer ≥ 0', describe(exactLimit));
  if (!(Number.isInteger(draws) && draws >= 1)) invalidArgument('draws', 'a positive integer', describe(draws));
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) invalidArgument('seed', 'an integer', describe(seed));
  const { own, base } = sharedSeedRuns(runs, name, baseline);
  const seeds = [...new Set(own.map((r) => r.seed))].sort((a, b) => a - b);
  if (seeds.length === 0) invalidArgument('name', `a configuration that shares a seed with the baseline '${baseline}'`, JSON.stringify(name));
  const pick = (rs: readonly CompareRun[], s: number) => rs.find((r) => r.seed === s)!;
  const pairs = seeds.map((s) => ({ own: pick(own, s), base: pick(base, s) }));
  const n = pairs.length;
  const tally = new Map<number, number>();
  let undetermined = 0;
  const weigh = (counts: readonly number[], p: number) => {
    const o: CompareRun[] = [];
    const b: CompareRun[] = [];
    counts.forEach((c, i) => {
      for (let k = 0; k < c; k++) {
        o.push(pairs[i]!.own);
        b.push(pairs[i]!.base);
      }
    });
    const r = averagedReach(o, b, mode);
    if (r.baselineSteps === undefined || !(r.baselineSteps > 0)) undetermined += p;
    else {
      const ratio = r.steps === undefined ? Infinity : r.steps / r.baselineSteps;
      tally.set(ratio, (tally.get(ratio) ?? 0) + p);
    }
  };
  const multisets = multisetCount(n);
  const exact = multisets <= exactLimit;
  if (exact) {
    // every composition c_0 + … + c_{n−1} = n, weighed n!/(Π c_i!)/nⁿ (in logs: no overflow)
    const logFact = [0];
    for (let i = 1; i <= n; i++) logFact.push(logFact[i - 1]! + Math.log(i));
    const counts = new Array<number>(n).fill(0);
    const walk = (i: number, left: number, logW: number): void => {
      if (i === n - 1) {
        counts[i] = left;
        weigh(counts, Math.exp(logFact[n]! - logW - logFact[left]! - n * Math.log(n)));
        return;
      }
      for (let c = 0; c <= left; c++) {
        counts[i] = c;
        walk(i + 1, left - c, logW + logFact[c]!);
      }
    };
    walk(0, n, 0);
  } else {
    const rnd = mulberry32(seed);
    const counts = new Array<number>(n);
    for (let d = 0; d < draws; d++) {
      counts.fill(0);
      for (let k = 0; k < n; k++) counts[Math.min(n - 1, Math.floor(rnd() * n))]! += 1;
      weigh(counts, 1 / draws);
    }
  }
  const ratios = [...tally].map(([ratio, p]) => ({ ratio, p })).sort((a, b) => a.ratio - b.ratio);
  return { seeds: n, exact, draws: exact ? multisets : draws, ratios, undetermined };
}

/** The q-quantile of the ratios (the smallest ratio whose cumulative probability reaches q; undetermined draws count as above every ratio). */
export function bootstrapQuantile(b: StepsBootstrap, q: number): number {
  if (!(q >= 0 && q <= 1)) invalidArgument('q', 'a number in [0, 1]', describe(q));
  let cum = 0;
  for (const { ratio, p } of b.ratios) {
    cum += p;
    if (cum >= q - 1e-12) return ratio;
  }
  return NaN;
}

/** The probability of a draw whose ratio is at most x. */
export function bootstrapShareAtMost(b: StepsBootstrap, x: number): number {
  return b.ratios.filter((r) => r.ratio <= x + 1e-12).reduce((a, r) => a + r.p, 0);
}
