/**
 * The comparison table's arithmetic: the baseline is the best AdamW configuration by mean best
 * metric, steps-to-baseline are counted per seed against the same seed's baseline, lower-is-better
 * metrics flip every comparison, and divergence covers blow-ups that stay finite.
 */
import { describe, expect, test } from 'vitest';

import { averagedCell, averageEvals, averageTrainWindows, blewUp, type CompareRun, compareRuns, comparisonTable } from '../../lib/train/compare.js';

function run(name: string, optimizer: string, seed: number, evals: [number, number][], losses: number[] = [1, 1]): CompareRun {
  return {
    name,
    optimizer,
    seed,
    summary: { name, steps: evals.at(-1)?.[0] ?? 0, monitor: 'accuracy', final: evals.at(-1)?.[1], best: null, msPerStep: 10, diverged: false, interrupted: false, stoppedEarly: false, clipRate: optimizer === 'kfac' ? 0.5 : undefined },
    curve: { name, train: losses.map((l, i) => [i + 1, l, i * 10]), evals: evals.map(([s, v]) => [s, v, s * 10, 0.5]), msPerStep: 10, diverged: blewUp(losses) },
  };
}

describe('compareRuns', () => {
  const runs = [
    run('adamw lr=1e-3', 'adamw', 1, [[10, 0.6], [20, 0.7]]),
    run('adamw lr=1e-3', 'adamw', 2, [[10, 0.5], [20, 0.65]]),
    run('adamw lr=1e-2', 'adamw', 1, [[10, 0.7], [20, 0.8]]),
    run('adamw lr=1e-2', 'adamw', 2, [[10, 0.6], [20, 0.75]]),
    run('kfac', 'kfac', 1, [[10, 0.8], [20, 0.79]]),
    run('kfac', 'kfac', 2, [[10, 0.7], [20, 0.74]]),
  ];

  test('the best AdamW learning rate is the baseline; steps to its best are per seed', () => {
    const c = compareRuns(runs, 'accuracy', 'max');
    expect(c.baseline).toBe('adamw lr=1e-2');
    const row = (n: string) => c.rows.find((r) => r.name === n)!;
    expect(row('kfac').stepsToBaseline).toEqual([10, undefined]); // seed 1: 0.8 ≥ 0.8 at step 10; seed 2: never reaches 0.75
    expect(row('adamw lr=1e-2').stepsToBaseline).toEqual([20, 20]);
    expect(row('adamw lr=1e-3').stepsToBaseline).toEqual([undefined, undefined]);
    expect(row('kfac').best.mean).toBeCloseTo(0.77, 12);
    expect(row('kfac').best.std).toBeCloseTo(Math.sqrt(((0.8 - 0.77) ** 2 + (0.74 - 0.77) ** 2) / 1), 12);
    expect(row('kfac').final.mean).toBeCloseTo(0.765, 12);
    expect(row('kfac').clipRate).toBe(0.5);
    const t = comparisonTable(c);
    // seeds 0.8 and 0.75: mean 0.775, sample std √(2·0.025²) = 0.0354
    expect(t.rows.find((r) => r[0] === 'adamw lr=1e-2 (baseline)')).toEqual(['adamw lr=1e-2 (baseline)', '0.775 ± 0.035', '0.775 ± 0.035', '20 / 20', '20 (1×, time 1×)', '10', '0/2', '–']);
    expect(t.rows.find((r) => r[0] === 'kfac')).toEqual(['kfac', '0.765 ± 0.035', '0.77 ± 0.042', '10 / never', 'never', '10', '0/2', '50%']);
    // seed-averaged: the baseline's mean curve 0.65, 0.775; K-FAC's 0.75, 0.765 never reaches 0.775
    expect(t.head[4]).toBe("steps to its best, seed-averaged curves (against adamw lr=1e-2)");
  });

  test('a named baseline and a lower-is-better metric', () => {
    const ppl = [run('a', 'adamw', 1, [[10, 30], [20, 20]]), run('b', 'kfac', 1, [[10, 19], [20, 25]])];
    const c = compareRuns(ppl, 'perplexity', 'min', 'a');
    expect(c.baseline).toBe('a');
    expect(c.rows[1]!.stepsToBaseline).toEqual([10]);
    expect(c.rows[1]!.best.mean).toBe(19);
  });
});

describe('the seed-averaged reading', () => {
  // [step, metric, elapsed ms] per eval; the eval noise of one seed averages out on the mean curves
  const timed = (name: string, optimizer: string, seed: number, evals: [number, number, number][]): CompareRun => {
    const r = run(name, optimizer, seed, evals.map(([s, v]) => [s, v]));
    r.curve.evals = evals.map(([s, v, ms]) => [s, v, ms, 0.5]);
    return r;
  };
  const runs = [
    timed('a', 'adamw', 0, [[10, 0.5, 100], [20, 0.6, 200], [30, 0.7, 300]]),
    timed('a', 'adamw', 1, [[10, 0.6, 110], [20, 0.7, 210], [30, 0.6, 310]]),
    timed('a', 'adamw', 2, [[10, 0.4, 120], [20, 0.65, 220], [30, 0.62, 320]]),
    timed('k', 'kfac', 0, [[10, 0.66, 150], [20, 0.6, 300], [30, 0.6, 450]]),
    timed('k', 'kfac', 1, [[10, 0.6, 160], [20, 0.65, 310], [30, 0.7, 460]]),
    timed('k', 'kfac', 2, [[10, 0.7, 170], [20, 0.6, 320], [30, 0.6, 470]]),
    timed('k', 'kfac', 3, [[10, 0.1, 180], [20, 0.1, 330], [30, 0.1, 480]]), // no baseline run at seed 3: left out
    timed('s', 'sgd', 0, [[10, 0.9, 100], [20, 0.9, 200]]),
    timed('s', 'sgd', 1, [[10, 0.2, 100]]), // stopped after one eval: the mean curve has step 10 only
  ];

  test('mean curves over the seeds shared with the baseline: steps and time against its own', () => {
    const c = compareRuns(runs, 'accuracy', 'max');
    const row = (n: string) => c.rows.find((r) => r.name === n)!;
    // baseline mean 0.5, 0.65, 0.64: its best 0.65 first at step 20, mean elapsed 210 ms
    expect(row('a').averaged).toEqual({ steps: 20, ms: 210, baselineSteps: 20, baselineMs: 210 });
    // K-FAC over seeds 0–2: 0.6533 at step 10 (mean 160 ms), though per seed it reaches 0.7 / 0.7 / 0.65 at never / 30 / 10
    expect(row('k').stepsToBaseline).toEqual([undefined, 30, 10, undefined]);
    const k = row('k').averaged;
    expect(k.steps).toBe(10);
    expect(k.ms).toBeCloseTo(160, 12);
    expect(k.baselineSteps).toBe(20);
    expect(k.baselineMs).toBeCloseTo(210, 12);
    // SGD against the baseline over seeds 0 and 1 (best 0.65 first at step 20): its curve stops at step 10 (0.55)
    expect(row('s').averaged).toEqual({ steps: undefined, ms: undefined, baselineSteps: 20, baselineMs: 205 });
    // K-FAC shares three seeds with the baseline: the bootstrap over them (seed-bootstrap.ts). The
    // draws {0,0,0} and {0,0,1} (4/27) never reach the baseline's best (0.7 and 0.667 at step 30);
    // {0,2,2} (3/27) reaches 0.647 at step 10 against the baseline's 30: 1/3, the smallest ratio there is
    expect(k.bootstrap).toEqual({ seeds: 3, lo: 1 / 3, median: expect.any(Number), hi: Infinity });
    expect(row('a').averaged.bootstrap).toBeUndefined(); // the baseline's own row
    expect(row('s').averaged.bootstrap).toBeUndefined(); // two seeds
    const t = comparisonTable(c);
    expect(t.rows.map((r) => r[4])).toEqual(['20 (1×, time 1×)', '10 (0.5×, time 0.76×; bootstrap 5–95%: 0.33×–never)', 'never']);
  });

  test('a cell that never reached the baseline\'s best, with the bootstrap beside it', () => {
    const never = { steps: undefined, ms: undefined, baselineSteps: 20, baselineMs: 1 };
    expect(averagedCell(never)).toBe('never');
    expect(averagedCell({ ...never, bootstrap: { seeds: 3, lo: 0.8, median: Infinity, hi: Infinity } })).toBe('never (bootstrap 5–95%: 0.8×–never)');
    expect(averagedCell({ ...never, baselineSteps: undefined })).toBe('–');
    // a quantile past the draws that have a reading (the baseline had no finite best on the rest)
    expect(averagedCell({ ...never, steps: 10, ms: 1, bootstrap: { seeds: 3, lo: 0.5, median: 0.5, hi: NaN } })).toBe('10 (0.5×, time 1×; bootstrap 5–95%: 0.5×–n/a)');
  });

  test('a lower-is-better metric; one seed each: no seed-averaged column', () => {
    const ppl = [
      timed('a', 'adamw', 0, [[10, 30, 10], [20, 20, 20]]),
      timed('a', 'adamw', 1, [[10, 28, 10], [20, 22, 20]]),
      timed('b', 'kfac', 0, [[10, 19, 15], [20, 25, 30]]),
      timed('b', 'kfac', 1, [[10, 22, 15], [20, 18, 30]]),
    ];
    // baseline mean 29, 21 (best 21 at step 20); K-FAC's 20.5 at step 10 is lower: reached
    expect(compareRuns(ppl, 'perplexity', 'min').rows[1]!.averaged).toEqual({ steps: 10, ms: 15, baselineSteps: 20, baselineMs: 20 });
    const one = compareRuns([ppl[0]!, ppl[2]!], 'perplexity', 'min');
    expect(comparisonTable(one).head).toHaveLength(7);
    expect(one.rows[1]!.averaged.steps).toBe(10);
  });

  test('nothing to measure against: no shared seed, or a baseline without a finite metric', () => {
    const lone = compareRuns([runs[0]!, timed('x', 'kfac', 7, [[10, 0.9, 100]])], 'accuracy', 'max', 'a');
    expect(lone.rows[1]!.averaged).toEqual({ steps: undefined, ms: undefined, baselineSteps: undefined, baselineMs: undefined });
    expect(comparisonTable(lone).head).toHaveLength(7); // one seed each
    const nan = compareRuns([timed('a', 'adamw', 0, [[10, NaN, 10]]), timed('a', 'adamw', 1, [[10, NaN, 10]]), timed('k', 'kfac', 0, [[10, 0.5, 10]]), timed('k', 'kfac', 1, [[10, 0.6, 10]])], 'accuracy', 'max');
    expect(comparisonTable(nan).rows.map((r) => r[4])).toEqual(['–', '–']);
  });

  test('averageEvals keeps the steps that every run has', () => {
    expect(averageEvals([runs[7]!, runs[8]!])).toEqual([[10, 0.55, 100]]);
    expect(averageEvals([])).toEqual([]);
  });
});

describe('averageTrainWindows', () => {
  test('each run\'s loss over windows of w steps, then the mean over runs; only windows every run completed', () => {
    const a = run('a', 'adamw', 0, [[5, 0.5]], [1, 3, 2, 4, 6]); // windows of 2: (1+3)/2, (2+4)/2; step 5 alone
    const b = run('a', 'adamw', 1, [[5, 0.5]], [3, 5, 0, 2]);
    expect(averageTrainWindows([a], 2)).toEqual([[2, 2], [4, 3]]);
    expect(averageTrainWindows([a, b], 2)).toEqual([[2, 3], [4, 2]]);
    // a run that stopped before the second window shortens the mean
    expect(averageTrainWindows([a, run('c', 'kfac', 0, [[5, 0.5]], [1, 1, 1])], 2)).toEqual([[2, 1.5]]);
    expect(averageTrainWindows([a], 1).map((p) => p[1])).toEqual([1, 3, 2, 4, 6]);
    expect(averageTrainWindows([], 3)).toEqual([]);
    // a non-finite loss stays visible in its window
    expect(averageTrainWindows([run('d', 'kfac', 0, [[2, 0.5]], [1, NaN])], 2)[0]![1]).toBeNaN();
  });

  test('the window is a positive integer', () => {
    for (const w of [0, 1.5, -2, NaN]) expect(() => averageTrainWindows([], w)).toThrow(/\bw\b/);
  });
});

describe('blewUp', () => {
  test('non-finite losses, and finite blow-ups above 2× the first step\'s loss', () => {
    const flat = Array.from({ length: 40 }, () => 0.7);
    expect(blewUp(flat)).toBe(false);
    expect(blewUp([...flat.slice(0, 30), NaN])).toBe(true);
    expect(blewUp([...flat, ...Array.from({ length: 10 }, () => 100)])).toBe(true);
    // a single spike (7× the loss) averages out over the window
    expect(blewUp([...flat, 5, ...flat])).toBe(false);
    expect(blewUp([0.7, 50])).toBe(false); // too short to judge a finite rise
    // a blow-up in the first updates (3.76 → 26 by step 3, as a K-FAC run without the Newton clip):
    // a start averaged over the first steps would hide it
    expect(blewUp([3.76, 9.7, 26.4, 30, 28, 27, 29, 31, 30, 29, 28, 30])).toBe(true);
  });
});
