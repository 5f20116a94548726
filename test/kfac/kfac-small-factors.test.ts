/**
 * Small factors (LoRA's r×r side) decomposed at every factor update (`smallFactorDim`,
 * docs/KFAC.md#small-factors): between the `inverseEvery` refreshes, a factor of dimension ≤
 * smallFactorDim has the eigendecomposition of its current EMA, a larger one keeps the basis of
 * the last refresh. On by default for EKFAC (64), off for the eigen method, a ConfigError with
 * the inverse method.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, InvalidArgumentError, Tensor } from '../../lib/index.js';
import type { KFactor } from '../../lib/kfac/kfactor.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { native } from '../../lib/native/loader.js';
import { DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

const [dout, din, R] = [3, 70, 9]; // G is 3×3 (small), A is 71×71 with the bias (large)

/** max |Q diag(d) Qᵀ − F| / max |F|, in float64. */
function reconstructionError(f: KFactor): number {
  const n = f.dim;
  const Q = f.decomp!.Q.toArray();
  const d = f.decomp!.d.toArray();
  const F = f.ema.toArray();
  let err = 0;
  let scale = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let v = 0;
      for (let k = 0; k < n; k++) v += Q[i * n + k]! * d[k]! * Q[j * n + k]!;
      err = Math.max(err, Math.abs(v - F[i * n + j]!));
      scale = Math.max(scale, Math.abs(F[i * n + j]!));
    }
  return err / scale;
}

function run(options: Record<string, unknown>, steps: number) {
  const l = new DenseLayer('fc', randomF32(dout * din, 5), dout, din, randomF32(dout, 6));
  const p = new KfacPreconditioner([l], { damping: 1e-2, factorDecay: 0.5, inverseEvery: 10, warmRefresh: false, lossReduction: 'sum', newtonClip: null, ...options });
  const tels = [];
  for (let s = 0; s < steps; s++) {
    l.setInput(Tensor.from(randomF32(R * din, 100 + s), [R, din]));
    l.setOutputGrad(Tensor.from(randomF32(R * dout, 200 + s), [R, dout]));
    l.setGrads(randomF32(dout * din, 300 + s), randomF32(dout, 400 + s));
    tels.push(p.step({ batchSize: R }));
  }
  const b = p.blocks[0]!;
  return { p, a: b.a, g: b.g, tels };
}

describe('small factors decomposed at every factor update', () => {
  it('EKFAC (default 64): between refreshes the 3×3 factor is exact, the 71×71 one keeps the refresh-time basis', () => {
    const { p, a, g, tels } = run({ method: 'ekfac' }, 4);
    expect(p.smallFactorDim).toBe(64);
    expect(reconstructionError(g)).toBeLessThan(1e-5); // the current EMA
    expect(reconstructionError(a)).toBeGreaterThan(1e-2); // three updates after the step-0 refresh
    // step 0 refreshed both factors (2 cold solves); steps 1–3 re-solve the small one only
    expect(tels.map((t) => t.decompositions.cold + t.decompositions.warm + t.decompositions.fallback)).toEqual([2, 1, 1, 1]);
  });

  it('the eigen method leaves it off by default and follows smallFactorDim when given', () => {
    const off = run({ method: 'eigen' }, 3);
    expect(off.p.smallFactorDim).toBe(0);
    expect(reconstructionError(off.g)).toBeGreaterThan(1e-2);
    const on = run({ method: 'eigen', smallFactorDim: 8 }, 3);
    expect(reconstructionError(on.g)).toBeLessThan(1e-5);
    expect(reconstructionError(on.a)).toBeGreaterThan(1e-2);
    // the step uses the fresh basis: it differs from the stale-basis step of the same data
    expect(on.tels[2]!.preClipNorm).not.toBeCloseTo(off.tels[2]!.preClipNorm, 6);
    const all = run({ method: 'eigen', smallFactorDim: 4096 }, 3);
    expect(reconstructionError(all.a)).toBeLessThan(1e-5);
  });

  it('the small factors of one dimension are solved together: one batched call per dimension, each factor exact', () => {
    const layers = [3, 5, 3].map((o, i) => new DenseLayer(`fc${i}`, randomF32(o * din, 5 + i), o, din, randomF32(o, 6 + i)));
    const p = new KfacPreconditioner(layers, { method: 'ekfac', damping: 1e-2, factorDecay: 0.5, inverseEvery: 10, lossReduction: 'sum', newtonClip: null });
    // in a K-FAC step the batched solve is eighBatchedTo: its flag goes to the step record
    const addon = native() as unknown as { eighBatchedTo: (...a: unknown[]) => unknown };
    const batched = addon.eighBatchedTo;
    let calls = 0;
    addon.eighBatchedTo = (...a: unknown[]) => {
      calls++;
      return batched.apply(addon, a);
    };
    try {
      for (let s = 0; s < 3; s++) {
        layers.forEach((l, i) => {
          l.setInput(Tensor.from(randomF32(R * din, 100 + s), [R, din])); // one input: A is shared
          l.setOutputGrad(Tensor.from(randomF32(R * l.dout, 200 + 10 * s + i), [R, l.dout]));
          l.setGrads(randomF32(l.dout * din, 300 + s), randomF32(l.dout, 400 + s));
        });
        calls = 0;
        const t = p.step({ batchSize: R });
        // step 0: every factor's first solve, alone; then the G factors (3, 5, 3) in two batched calls
        if (s > 0) {
          expect(calls).toBe(2);
          expect(t.decompositions.cold).toBe(3);
        }
      }
    } finally {
      addon.eighBatchedTo = batched;
    }
    for (const b of p.blocks) expect(reconstructionError(b.g)).toBeLessThan(1e-5);
    p.dispose();
  });

  it('a batched solve that fails: the factors keep their eigenpairs that step (reported), the next refresh solves them with waits', () => {
    const layers = [3, 5, 3].map((o, i) => new DenseLayer(`fc${i}`, randomF32(o * din, 5 + i), o, din, randomF32(o, 6 + i)));
    const p = new KfacPreconditioner(layers, { method: 'ekfac', damping: 1e-2, factorDecay: 0.5, inverseEvery: 10, lossReduction: 'sum', newtonClip: null });
    const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown> & { _eighFaultInjection(m: number): void };
    const calls = { eighBatched: 0, eighBatchedTo: 0 };
    const saved = { eighBatched: addon['eighBatched']!, eighBatchedTo: addon['eighBatchedTo']! };
    for (const k of ['eighBatched', 'eighBatchedTo'] as const)
      addon[k] = (...a: unknown[]) => {
        calls[k]++;
        return saved[k].apply(addon, a);
      };
    const feed = (s: number) =>
      layers.forEach((l, i) => {
        l.setInput(Tensor.from(randomF32(R * din, 100 + s), [R, din]));
        l.setOutputGrad(Tensor.from(randomF32(R * l.dout, 200 + 10 * s + i), [R, l.dout]));
        l.setGrads(randomF32(l.dout * din, 300 + s), randomF32(l.dout, 400 + s));
      });
    try {
      for (let s = 0; s < 2; s++) {
        feed(s);
        p.step({ batchSize: R });
      }
      const before = p.blocks.map((b) => [b.g.decomp!.Q.toArray(), b.g.decomp!.d.toArray()]);
      addon._eighFaultInjection(3);
      feed(2);
      const t = p.step({ batchSize: R });
      addon._eighFaultInjection(0);
      expect(t.decompositions.kept).toBe(3);
      expect(t.decompositions.cold).toBe(0);
      expect(t.events.join('\n')).toMatch(/batched decomposition of 2 factors of dimension 3 failed; each kept its previous eigenbasis/);
      expect(t.events.join('\n')).toMatch(/batched decomposition of 1 factors of dimension 5 failed/);
      p.blocks.forEach((b, i) => {
        expect(b.g.decomp!.Q.toArray(), `${b.layer.name} Q`).toEqual(before[i]![0]);
        expect(b.g.decomp!.d.toArray(), `${b.layer.name} d`).toEqual(before[i]![1]);
      });
      // the next refresh: the failed dimensions are solved with waits (eighBatched), and exactly
      calls.eighBatched = calls.eighBatchedTo = 0;
      feed(3);
      const t3 = p.step({ batchSize: R });
      expect(calls).toEqual({ eighBatched: 2, eighBatchedTo: 0 });
      expect(t3.decompositions.cold).toBe(3);
      for (const b of p.blocks) expect(reconstructionError(b.g)).toBeLessThan(1e-5);
      // and then without waits again
      calls.eighBatched = calls.eighBatchedTo = 0;
      feed(4);
      p.step({ batchSize: R });
      expect(calls).toEqual({ eighBatched: 0, eighBatchedTo: 2 });
    } finally {
      addon._eighFaultInjection(0);
      Object.assign(addon, saved);
      p.dispose();
    }
  });

  it('refuses a bad smallFactorDim by name, and any with the inverse method', () => {
    const l = new DenseLayer('fc', randomF32(dout * din, 5), dout, din, randomF32(dout, 6));
    for (const bad of [-1, 1.5, Number.NaN, '8', 5000]) {
      expect(() => new KfacPreconditioner([l], { smallFactorDim: bad as number })).toThrow(InvalidArgumentError);
      expect(() => new KfacPreconditioner([l], { smallFactorDim: bad as number })).toThrow(/smallFactorDim/);
    }
    expect(() => new KfacPreconditioner([l], { method: 'inverse', smallFactorDim: 8 })).toThrow(ConfigError);
    expect(() => new KfacPreconditioner([l], { method: 'inverse', smallFactorDim: 8 })).toThrow(/smallFactorDim/);
    expect(new KfacPreconditioner([l], { method: 'inverse' }).smallFactorDim).toBe(0);
  });
});
