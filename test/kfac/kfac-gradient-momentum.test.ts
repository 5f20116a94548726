/**
 * `momentumOf: 'gradient'`: the Newton step of the gradients' momentum, against the formula
 * (m ← μm + ∇; d = ∇ + μm with Nesterov, else m; θ ← θ − η·(clip(P(d)) + wd·θ)), with the
 * clip and without; a refused step, an undone step and a checkpoint leave m as they must.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, InvalidArgumentError, NotFiniteError, Tensor } from '../../lib/index.js';
import { KFAC, type KfacOptions } from '../../lib/kfac/kfac-optimizer.js';
import type { NewtonClip } from '../../lib/kfac/options.js';
import type { Param } from '../../lib/optim/types.js';
import { DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

const [dout, din, R] = [3, 5, 4];

/** θ after SGD without momentum on d = the gradients' momentum, preconditioned by `pre` (float64). */
function reference(theta0: Float32Array, grads: Float32Array[], o: { lr: number; mu: number; wd: number; nesterov: boolean; pre: (d: Float64Array, th: Float64Array) => Float64Array }): Float64Array {
  const th = Float64Array.from(theta0);
  let m = new Float64Array(th.length);
  for (const g of grads) {
    m = m.map((v, i) => o.mu * v + g[i]!);
    const d = o.nesterov ? m.map((v, i) => g[i]! + o.mu * v) : m;
    const P = o.pre(d, th);
    for (let i = 0; i < th.length; i++) th[i]! -= o.lr * (P[i]! + o.wd * th[i]!);
  }
  return th;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** A dense layer (no bias) under K-FAC with identity factors (β = 1: P = ∇W/(1+λ)), and a seeded feed. */
function identityRun(options: KfacOptions, extra: Param[] = []) {
  const W0 = randomF32(dout * din, 1);
  const layer = new DenseLayer('fc', W0, dout, din);
  const opt = new KFAC([layer], extra, { damping: 0.25, factorInit: 'identity', factorDecay: 1, inverseEvery: 1, method: 'eigen', ...options });
  const feed = (seed: number) => {
    layer.setInput(Tensor.from(randomF32(R * din, seed), [R, din]));
    layer.setOutputGrad(Tensor.from(randomF32(R * dout, seed + 1), [R, dout]));
    const g = randomF32(dout * din, seed + 2);
    layer.setGrads(g);
    return g;
  };
  return { layer, opt, feed, W0 };
}

describe("K-FAC with momentumOf 'gradient'", () => {
  for (const nesterov of [false, true])
    it(`the update against the formula${nesterov ? ' (Nesterov)' : ''}, weight decay outside the momentum, and SGD's own momentum on an untracked parameter`, () => {
      const [lr, mu, wd, lambda] = [0.1, 0.7, 0.05, 0.25];
      const extra: Param = { name: 'extra', tensor: Tensor.from(randomF32(6, 2)), grad: null };
      const e0 = extra.tensor.toArray();
      const { layer, opt, feed, W0 } = identityRun({ lr, momentum: mu, weightDecay: wd, nesterov, newtonClip: null, untracked: 'sgd', momentumOf: 'gradient' }, [extra]);
      expect(opt.momentumOf).toBe('gradient');
      const gw: Float32Array[] = [];
      const ge: Float32Array[] = [];
      for (let t = 0; t < 4; t++) {
        gw.push(feed(10 + 5 * t));
        ge.push(randomF32(6, 40 + t).map((v) => 10 * v));
        extra.grad = Tensor.from(ge[t]!);
        expect(opt.step({ batchSize: R }).preconditioned).toBe(true);
      }
      const wantW = reference(W0, gw, { lr, mu, wd, nesterov, pre: (d) => d.map((v) => v / (1 + lambda)) });
      const wantE = reference(e0, ge, { lr, mu, wd, nesterov, pre: (d) => d });
      expect(maxAbs(layer.weight.tensor.toArray(), wantW)).toBeLessThan(1e-5);
      expect(maxAbs(extra.tensor.toArray(), wantE)).toBeLessThan(1e-4);
      opt.dispose();
    });

  it('with the Newton clip, each step is clip(P(d)): its length is the radius whatever the momentum holds', () => {
    const [lr, mu, tau] = [0.5, 0.9, 0.01];
    const { layer, opt, feed, W0 } = identityRun({ lr, momentum: mu, nesterov: true, newtonClip: { mode: 'global', maxNorm: tau }, momentumOf: 'gradient' });
    const gw: Float32Array[] = [];
    let prev = layer.weight.tensor.toArray();
    for (let t = 0; t < 5; t++) {
      gw.push(feed(20 + 5 * t));
      const tel = opt.step({ batchSize: R });
      expect(tel.clipped).toBe(true);
      const now = layer.weight.tensor.toArray();
      // with the clip binding, the applied step is η·τ exactly (no momentum after the clip)
      expect(Math.hypot(...now.map((v, i) => v - prev[i]!))).toBeCloseTo(lr * tau, 6);
      prev = now;
    }
    const clip = (d: Float64Array) => {
      const P = d.map((v) => v / 1.25);
      const n = Math.hypot(...P);
      return n > tau ? P.map((v) => (v * tau) / n) : P;
    };
    expect(maxAbs(layer.weight.tensor.toArray(), reference(W0, gw, { lr, mu, wd: 0, nesterov: true, pre: clip }))).toBeLessThan(1e-6);
    opt.dispose();
  });

  it("without a clip or weight decay the two orders agree (P is linear); with the clip they do not", () => {
    const run = (momentumOf: 'step' | 'gradient', newtonClip: NewtonClip | null) => {
      const r = identityRun({ lr: 0.2, momentum: 0.8, nesterov: true, newtonClip, momentumOf });
      for (let t = 0; t < 4; t++) {
        r.feed(60 + 5 * t);
        r.opt.step({ batchSize: R });
      }
      const w = r.layer.weight.tensor.toArray();
      r.opt.dispose();
      return w;
    };
    expect(maxAbs(run('step', null), run('gradient', null))).toBeLessThan(1e-6);
    expect(maxAbs(run('step', { mode: 'global', maxNorm: 0.01 }), run('gradient', { mode: 'global', maxNorm: 0.01 }))).toBeGreaterThan(1e-3);
  });

  it('a refused step (non-finite gradient) leaves the gradients, the weights and m as they were: the run goes on as if it never came', () => {
    const make = () => identityRun({ lr: 0.1, momentum: 0.9, nesterov: true, momentumOf: 'gradient' });
    const hit = make();
    const clean = make();
    for (const r of [hit, clean])
      for (let t = 0; t < 2; t++) {
        r.feed(80 + 5 * t);
        r.opt.step({ batchSize: R });
      }
    hit.feed(200);
    const g = hit.layer.weight.grad!.toArray();
    g[4] = NaN;
    hit.layer.setGrads(g);
    const W = hit.layer.weight.tensor.toArray();
    expect(() => hit.opt.step({ batchSize: R })).toThrow(NotFiniteError);
    expect(hit.layer.weight.tensor.toArray()).toEqual(W);
    expect(Array.from(hit.layer.weight.grad!.toArray()).map(String)).toEqual(Array.from(g).map(String));
    for (let t = 0; t < 3; t++)
      for (const r of [hit, clean]) {
        r.feed(300 + 5 * t);
        r.opt.step({ batchSize: R });
      }
    expect(hit.layer.weight.tensor.toArray()).toEqual(clean.layer.weight.tensor.toArray());
    hit.opt.dispose();
    clean.opt.dispose();
  });

  it('a step undone by adaptive damping (reject) takes m back with the weights', () => {
    const r = identityRun({ lr: 0.1, momentum: 0.9, nesterov: true, newtonClip: null, momentumOf: 'gradient', adaptiveDamping: { every: 1, reject: true } });
    const momentum = () => {
      const t = r.opt.stateDict().tensors;
      const m = t['momentum/0']!.toArray();
      for (const x of Object.values(t)) x.dispose();
      return m;
    };
    r.feed(400);
    r.opt.step({ batchSize: R });
    r.opt.observeLoss({ before: 1, after: 0.5 });
    const m1 = momentum();
    const w1 = r.layer.weight.tensor.toArray();
    r.feed(410);
    r.opt.step({ batchSize: R });
    expect(momentum()).not.toEqual(m1);
    const t = r.opt.observeLoss({ before: 1, after: 1.5 }) as { rejected: boolean };
    expect(t.rejected).toBe(true);
    expect(momentum()).toEqual(m1);
    expect(r.layer.weight.tensor.toArray()).toEqual(w1);
    r.opt.dispose();
  });

  it('a checkpoint carries m: save, load into a new optimizer, and both go on alike; another momentumOf is refused', () => {
    const a = identityRun({ lr: 0.1, momentum: 0.9, nesterov: true, momentumOf: 'gradient' });
    for (let t = 0; t < 3; t++) {
      a.feed(500 + 5 * t);
      a.opt.step({ batchSize: R });
    }
    const st = a.opt.stateDict();
    expect(st.meta['momentumOf']).toBe('gradient');
    expect(st.tensors['momentum/0']).toBeDefined();
    const b = identityRun({ lr: 0.1, momentum: 0.9, nesterov: true, momentumOf: 'gradient' });
    b.layer.weight.tensor.set(a.layer.weight.tensor.toArray());
    b.opt.loadStateDict(st);
    for (let t = 0; t < 3; t++)
      for (const r of [a, b]) {
        r.feed(600 + 5 * t);
        r.opt.step({ batchSize: R });
      }
    expect(b.layer.weight.tensor.toArray()).toEqual(a.layer.weight.tensor.toArray());
    const stepRun = identityRun({ lr: 0.1, momentum: 0.9, nesterov: true });
    const before = stepRun.layer.weight.tensor.toArray();
    expect(() => stepRun.opt.loadStateDict(st)).toThrow(ConfigError);
    expect(() => stepRun.opt.loadStateDict(st)).toThrow(/momentumOf: 'gradient'/);
    expect(() => b.opt.loadStateDict(stepRun.opt.stateDict())).toThrow(/momentumOf: 'step'/);
    expect(stepRun.layer.weight.tensor.toArray()).toEqual(before);
    for (const t of Object.values(st.tensors)) t.dispose();
    for (const r of [a, b, stepRun]) r.opt.dispose();
  });

  it('bad options: an unknown momentumOf, and Nesterov without momentum', () => {
    const layer = new DenseLayer('fc', randomF32(dout * din, 1), dout, din);
    expect(() => new KFAC([layer], [], { momentumOf: 'weights' as never })).toThrow(InvalidArgumentError);
    expect(() => new KFAC([layer], [], { momentumOf: 'weights' as never })).toThrow(/momentumOf/);
    expect(() => new KFAC([layer], [], { momentumOf: 'gradient', momentum: 0, nesterov: true })).toThrow(/nesterov/);
  });
});
