/**
 * The counted work of a K-FAC step (lib/kfac/cost.ts, lib/bench/train-flops.ts;
 * docs/KFAC.md#cost): the counts of a hand-built layer list against the formulas written out
 * term by term; the factors it counts against the blocks a real preconditioner builds; the
 * one-layer count of a shape against the count over the whole model; the intervals it suggests
 * against the budget they claim.
 */
import { describe, expect, test } from 'vitest';

import { countTrainStep, intervalsWithin, stepFlops } from '../../lib/bench/train-flops.js';
import { shapeConfig, stepRunConfig } from '../../lib/bench/train-step.js';
import { kfacFlops, type KfacCostOptions } from '../../lib/kfac/cost.js';
import type { KfacLayer } from '../../lib/kfac/layer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { resolveKfacOptions } from '../../lib/kfac/options.js';
import { configFromHf, createModel } from '../../lib/models/index.js';
import { applyLora } from '../../lib/peft/index.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { kfacBlocksOfRun } from '../../lib/train/run-optimizer.js';

function layer(name: string, dout: number, din: number, o: { inputKey?: string; bias?: boolean } = {}): KfacLayer {
  const none = (): Tensor => {
    throw new Error('not captured');
  };
  return {
    name,
    weight: { name: `${name}.weight`, tensor: Tensor.zeros([dout, din]), grad: null },
    ...(o.bias ? { bias: { name: `${name}.bias`, tensor: Tensor.zeros([dout]), grad: null } } : {}),
    input: none,
    outputGrad: none,
    ...(o.inputKey ? { inputKey: o.inputKey } : {}),
  } as KfacLayer;
}

// q and k read one input (one A factor of 16), B reads q's low-rank output, a pooled head with a bias
const LAYERS = [layer('q', 8, 16, { inputKey: 'x' }), layer('k', 4, 16, { inputKey: 'x' }), layer('B', 16, 8), layer('head', 2, 16, { bias: true })];
const ROWS: Record<string, number> = { q: 30, k: 30, B: 30, head: 3 };
const EKFAC: KfacCostOptions = { method: 'ekfac', smallFactorDim: 8, warmRefresh: true, factorEvery: 1, inverseEvery: 10 };

describe('kfacFlops', () => {
  test('EKFAC: shared A counted once in the updates, projected by every block in the moments', () => {
    const f = kfacFlops(LAYERS, EKFAC, (n) => ROWS[n]!);
    // factors: A:x 16 (30 rows), G:q 8, G:k 4, A:B 8, G:B 16, A:head+1 17 (3 rows), G:head 2
    expect(f.factors).toEqual({ large: 3, small: 4, largestDim: 17 });
    expect(f.factorUpdates).toBe(16 * 16 * 30 + 8 * 8 * 30 + 4 * 4 * 30 + 8 * 8 * 30 + 16 * 16 * 30 + 17 * 17 * 3 + 2 * 2 * 3);
    // per block 2R·din·Da + 2R·dout² + 2R·dout·Da
    const m = (R: number, dout: number, din: number, Da: number) => 2 * R * din * Da + 2 * R * dout * dout + 2 * R * dout * Da;
    expect(f.moments).toBe(m(30, 8, 16, 16) + m(30, 4, 16, 16) + m(30, 16, 8, 8) + m(3, 2, 16, 17));
    // four GEMMs per block: 4·dout·Da·(dout + Da)
    expect(f.precondition).toBe(4 * 8 * 16 * 24 + 4 * 4 * 16 * 20 + 4 * 16 * 8 * 24 + 4 * 2 * 17 * 19);
    expect(f.refreshGemm).toBe(6 * (16 ** 3 + 16 ** 3 + 17 ** 3));
    expect(f.refreshN3).toBe(16 ** 3 + 16 ** 3 + 17 ** 3);
    expect(f.smallN3).toBe(8 ** 3 + 4 ** 3 + 8 ** 3 + 2 ** 3);
    expect(f.perStep).toBe(f.factorUpdates + f.moments + f.precondition + f.refreshGemm / 10);
  });

  test('the intervals divide what they amortize; the eigen method has no moments, the inverse method no warm refresh and no small factors', () => {
    const e = kfacFlops(LAYERS, EKFAC, (n) => ROWS[n]!);
    const spaced = kfacFlops(LAYERS, { ...EKFAC, factorEvery: 4, inverseEvery: (s) => (s < 100 ? 5 : 25) }, (n) => ROWS[n]!);
    expect(spaced).toMatchObject({ factorEvery: 4, inverseEvery: 25 });
    expect(spaced.perStep).toBeCloseTo((e.factorUpdates + e.moments) / 4 + e.precondition + e.refreshGemm / 25, 6);
    const eigen = kfacFlops(LAYERS, { ...EKFAC, method: 'eigen', smallFactorDim: 0 }, (n) => ROWS[n]!);
    expect(eigen).toMatchObject({ moments: 0, smallN3: 0, factors: { large: 7, small: 0 } });
    expect(eigen.factorUpdates).toBe(e.factorUpdates);
    const inv = kfacFlops(LAYERS, { ...EKFAC, method: 'inverse' }, (n) => ROWS[n]!);
    expect(inv).toMatchObject({ moments: 0, refreshGemm: 0, smallN3: 0, factors: { large: 7, small: 0 } });
    expect(inv.precondition).toBe(e.precondition / 2);
    const cold = kfacFlops(LAYERS, { ...EKFAC, warmRefresh: false }, (n) => ROWS[n]!);
    expect(cold.refreshGemm).toBe(0);
  });

  test('counts the factors a real preconditioner builds for a LoRA model (shared inputs, a head with a bias)', () => {
    const model = createModel(configFromHf(shapeConfig({ shape: 'llama-125m', layers: 2, hidden: 64, vocab: 50 })), { task: 'sequence-classification', seed: 0 });
    try {
      applyLora(model, { targetModules: 'all-linear', r: 4, alpha: 8, dropout: 0 });
      const { layers } = kfacBlocksOfRun(model, undefined);
      const pre = new KfacPreconditioner(layers, { method: 'ekfac' });
      const o = resolveKfacOptions({ method: 'ekfac' });
      const f = kfacFlops(layers, o, () => 10);
      const distinct = new Set(pre.blocks.flatMap((b) => [b.a, b.g]));
      expect(f.factors.large + f.factors.small).toBe(distinct.size);
      // per block, lora_A: q, k, v share one A factor and gate, up another (4 inputs); lora_B: 7; and the head
      expect(new Set(pre.blocks.map((b) => b.a)).size).toBe(2 * (4 + 7) + 1);
      pre.dispose();
    } finally {
      model.dispose();
    }
  });
});

describe('countTrainStep', () => {
  const full = (cfg: Record<string, unknown>, B: number, T: number) => {
    const causal = cfg['model_type'] !== 'bert';
    const model = createModel(configFromHf(cfg), { task: causal ? 'causal-lm' : 'sequence-classification', seed: 0 });
    try {
      applyLora(model, { targetModules: 'all-linear', r: 16, alpha: 32, dropout: 0 });
      const { layers } = kfacBlocksOfRun(model, undefined);
      const run = stepRunConfig('kfac');
      const o = resolveKfacOptions({ method: run.kfacMethod, inverseEvery: run.inverseEvery });
      // a classifier reads the pooled rows (one per example), the rest every token
      const pooled = (n: string) => /(^|\.)(classifier|score|pooler)\b/.test(n);
      return { kfac: kfacFlops(layers, o, (n) => (pooled(n) ? B : B * T)), model: stepFlops(model, B, T, 16) };
    } finally {
      model.dispose();
    }
  };

  test.each([
    ['llama-1b', { layers: 3, hidden: 128, vocab: 100 }],
    ['bert-base', { layers: 2, hidden: 64, vocab: 100 }],
  ] as const)('%s: one block counted and multiplied is the whole model counted', (shape, small) => {
    const cfg = shapeConfig({ shape, ...small });
    const c = countTrainStep(cfg, 3, 40, stepRunConfig('kfac'));
    const f = full(cfg, 3, 40);
    expect(c.layers).toBe(small.layers);
    expect(c.model).toEqual(f.model);
    for (const k of ['factorUpdates', 'moments', 'precondition', 'refreshGemm', 'refreshN3', 'smallN3', 'perStep'] as const) expect(c.kfac[k], k).toBeCloseTo(f.kfac[k], 3);
    expect(c.kfac.factors).toEqual(f.kfac.factors);
    expect(c.kfacOverModel).toBeCloseTo(f.kfac.perStep / (f.model.linear + f.model.attention), 12);
  });

  test('the suggested intervals meet the budget, and one less of either does not', () => {
    const c = countTrainStep(shapeConfig({ shape: 'llama-1b', layers: 2, hidden: 256, vocab: 100 }), 8, 256, stepRunConfig('kfac'));
    const model = c.model.linear + c.model.attention;
    const w = c.within!;
    expect(w.budget).toBe(0.15);
    const half = (0.15 * model) / 2;
    const stats = (k: number) => (c.kfac.factorUpdates + c.kfac.moments) / k + c.kfac.precondition;
    expect(stats(w.factorEvery)).toBeLessThanOrEqual(half);
    if (w.factorEvery > 1) expect(stats(w.factorEvery - 1)).toBeGreaterThan(half);
    expect(c.kfac.refreshGemm / w.inverseEvery).toBeLessThanOrEqual(half);
    if (w.inverseEvery > 1) expect(c.kfac.refreshGemm / (w.inverseEvery - 1)).toBeGreaterThan(half);
    // at those intervals K-FAC's GEMMs are within the budget
    const at = countTrainStep(shapeConfig({ shape: 'llama-1b', layers: 2, hidden: 256, vocab: 100 }), 8, 256, stepRunConfig('kfac', w));
    expect(at.kfacOverModel).toBeLessThanOrEqual(0.15);
    // a preconditioning over half the budget leaves no interval that fits
    expect(intervalsWithin({ ...c.kfac, precondition: half * 1.01 }, model, 0.15)).toBeNull();
  });
});
