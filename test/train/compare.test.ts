/**
 * The comparison table's arithmetic: the baseline is the best AdamW configuration by mean best
 * metric, steps-to-baseline are counted per seed against the same seed's baseline, lower-is-better
 * metrics flip every comparison, and divergence covers blow-ups that stay finite.
 */
import { describe, expect, test } from 'vitest';

import { blewUp, type CompareRun, compareRuns, comparisonTable } from '../../lib/train/compare.js';

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
    expect(t.rows.find((r) => r[0] === 'adamw lr=1e-2 (baseline)')).toEqual(['adamw lr=1e-2 (baseline)', '0.775 ± 0.035', '0.775 ± 0.035', '20 / 20', '10', '0/2', '–']);
    expect(t.rows.find((r) => r[0] === 'kfac')).toEqual(['kfac', '0.765 ± 0.035', '0.77 ± 0.042', '10 / never', '10', '0/2', '50%']);
  });

  test('a named baseline and a lower-is-better metric', () => {
    const ppl = [run('a', 'adamw', 1, [[10, 30], [20, 20]]), run('b', 'kfac', 1, [[10, 19], [20, 25]])];
    const c = compareRuns(ppl, 'perplexity', 'min', 'a');
    expect(c.baseline).toBe('a');
    expect(c.rows[1]!.stepsToBaseline).toEqual([10]);
    expect(c.rows[1]!.best.mean).toBe(19);
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
