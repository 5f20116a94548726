/**
 * The bootstrap over seeds of the seed-averaged steps reading: a hand-worked two-seed case, the
 * exact multiset weights against every ordered draw enumerated, the random draws against the exact
 * distribution, and bad input.
 */
import { describe, expect, test } from 'vitest';

import { InvalidArgumentError } from '../../lib/errors.js';
import { averagedReach, type CompareRun } from '../../lib/train/compare.js';
import { bootstrapAveragedSteps, bootstrapQuantile, bootstrapShareAtMost, multisetCount } from '../../lib/train/seed-bootstrap.js';
import { mulberry32 } from '../../lib/util/random.js';

function run(name: string, seed: number, evals: [number, number][]): CompareRun {
  return {
    name,
    optimizer: name === 'base' ? 'adamw' : 'kfac',
    seed,
    summary: { name, steps: evals.at(-1)?.[0] ?? 0, monitor: 'accuracy', final: evals.at(-1)?.[1], best: null, msPerStep: 10, diverged: false, interrupted: false, stoppedEarly: false, clipRate: undefined },
    curve: { name, train: [], evals: evals.map(([s, v]) => [s, v, s * 10, 0.5]), msPerStep: 10, diverged: false },
  };
}

/** Random curves at steps 10, 20, …, 10·E for `n` seeds of 'base' and 'k'. */
function randomRuns(n: number, E: number, seed: number): CompareRun[] {
  const rnd = mulberry32(seed);
  const curve = (lift: number): [number, number][] => {
    let v = 0.3;
    return Array.from({ length: E }, (_, i) => [10 * (i + 1), (v += 0.05 * rnd() + lift * rnd() * 0.02)]);
  };
  return Array.from({ length: n }, (_, s) => [run('base', s, curve(0)), run('k', s, curve(1))]).flat();
}

describe('bootstrapAveragedSteps', () => {
  test('two seeds by hand: {1,1} reaches at 0.5×, {1,2} and {2,2} never', () => {
    const runs = [
      run('base', 1, [[10, 0.5], [20, 0.8]]),
      run('base', 2, [[10, 0.5], [20, 0.6]]),
      run('k', 1, [[10, 0.8], [20, 0.8]]),
      run('k', 2, [[10, 0.4], [20, 0.5]]),
    ];
    // {1,1}: base best 0.8 at 20, k 0.8 at 10 → 0.5; {2,2}: best 0.6, k ≤ 0.5 → never;
    // {1,2}: base mean 0.5, 0.7 → best 0.7 at 20; k mean 0.6, 0.65 → never. P = 1/4, 1/2, 1/4.
    const b = bootstrapAveragedSteps(runs, 'k', 'base', 'max');
    expect(b.exact).toBe(true);
    expect(b.seeds).toBe(2);
    expect(b.draws).toBe(3);
    expect(b.undetermined).toBe(0);
    expect(b.ratios.map((r) => r.ratio)).toEqual([0.5, Infinity]);
    expect(b.ratios[0]!.p).toBeCloseTo(0.25, 14);
    expect(b.ratios[1]!.p).toBeCloseTo(0.75, 14);
    expect(bootstrapQuantile(b, 0.25)).toBe(0.5);
    expect(bootstrapQuantile(b, 0.5)).toBe(Infinity);
    expect(bootstrapShareAtMost(b, 0.6)).toBeCloseTo(0.25, 14);
    expect(bootstrapShareAtMost(b, 0.4)).toBe(0);
  });

  test('the exact weights equal every ordered draw enumerated (four seeds, 256 draws)', () => {
    for (const seed of [1, 2, 3]) {
      const runs = randomRuns(4, 9, seed);
      const b = bootstrapAveragedSteps(runs, 'k', 'base', 'max');
      expect(b.exact).toBe(true);
      expect(b.draws).toBe(35);
      const ref = new Map<number, number>();
      for (let t = 0; t < 256; t++) {
        const idx = [0, 1, 2, 3].map((k) => Math.floor(t / 4 ** k) % 4);
        const r = averagedReach(
          idx.map((i) => runs[2 * i + 1]!),
          idx.map((i) => runs[2 * i]!),
          'max',
        );
        const ratio = r.steps === undefined ? Infinity : r.steps / r.baselineSteps!;
        ref.set(ratio, (ref.get(ratio) ?? 0) + 1 / 256);
      }
      expect(b.ratios.map((r) => r.ratio)).toEqual([...ref.keys()].sort((x, y) => x - y));
      for (const { ratio, p } of b.ratios) expect(p).toBeCloseTo(ref.get(ratio)!, 12);
      expect(b.ratios.reduce((a, r) => a + r.p, 0)).toBeCloseTo(1, 12);
    }
  });

  test('random draws approach the exact distribution and repeat with their seed', () => {
    const runs = randomRuns(5, 12, 7);
    const exact = bootstrapAveragedSteps(runs, 'k', 'base', 'max');
    const drawn = bootstrapAveragedSteps(runs, 'k', 'base', 'max', { exactLimit: 0, draws: 20_000, seed: 3 });
    expect(drawn.exact).toBe(false);
    expect(drawn.draws).toBe(20_000);
    for (const x of [0.4, 0.5, 0.6, 0.75, 1]) expect(Math.abs(bootstrapShareAtMost(drawn, x) - bootstrapShareAtMost(exact, x))).toBeLessThan(0.015);
    expect(bootstrapAveragedSteps(runs, 'k', 'base', 'max', { exactLimit: 0, draws: 500, seed: 3 })).toEqual(
      bootstrapAveragedSteps(runs, 'k', 'base', 'max', { exactLimit: 0, draws: 500, seed: 3 }),
    );
  });

  test('a lower-is-better metric, and a baseline with no finite best', () => {
    const ppl = [run('base', 0, [[10, 30], [20, 20]]), run('k', 0, [[10, 19], [20, 25]])];
    const b = bootstrapAveragedSteps(ppl, 'k', 'base', 'min');
    expect(b.ratios).toEqual([{ ratio: 0.5, p: 1 }]);
    const nan = [run('base', 0, [[10, NaN]]), run('k', 0, [[10, 0.5]])];
    const u = bootstrapAveragedSteps(nan, 'k', 'base', 'max');
    expect(u.undetermined).toBe(1);
    expect(u.ratios).toEqual([]);
    expect(bootstrapQuantile(u, 0.5)).toBeNaN();
  });

  test('multiset counts, and bad input', () => {
    expect([1, 2, 3, 8, 12].map(multisetCount)).toEqual([1, 3, 10, 6435, 1352078]);
    const runs = randomRuns(2, 3, 1);
    expect(() => bootstrapAveragedSteps(runs, 'nobody', 'base', 'max')).toThrow(InvalidArgumentError);
    expect(() => bootstrapAveragedSteps(runs, 'k', 'base', 'max', { draws: 0 })).toThrow(/draws/);
    expect(() => bootstrapAveragedSteps(runs, 'k', 'base', 'max', { exactLimit: -1 })).toThrow(/exactLimit/);
    expect(() => bootstrapAveragedSteps(runs, 'k', 'base', 'max', { seed: 0.5 })).toThrow(/seed/);
    const b = bootstrapAveragedSteps(runs, 'k', 'base', 'max');
    expect(() => bootstrapQuantile(b, 1.5)).toThrow(/q/);
  });
});
