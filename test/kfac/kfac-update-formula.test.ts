/**
 * The KFAC optimizer's update against the formula: with identity factors (β = 1) the Newton
 * step is P = ∇W/(1+λ), and SGD (torch's algorithm) applies momentum μ, weight decay wd and
 * Nesterov to it: d = P + wd·θ; b₁ = d, b = μb + d; θ ← θ − η·(nesterov ? d + μb : b).
 * Parameters K-FAC does not track get the same SGD on their raw gradients, never the Newton clip.
 */
import { describe, expect, it } from 'vitest';

import { optim, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import type { Param } from '../../lib/optim/types.js';
import { DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

function sgdReference(theta0: Float32Array, grads: Float32Array[], o: { lr: number; mu: number; wd: number; nesterov: boolean; pre: (g: Float64Array) => Float64Array }): Float64Array {
  const th = Float64Array.from(theta0);
  let buf: Float64Array | null = null;
  for (const g of grads) {
    const d = o.pre(Float64Array.from(g)).map((v, i) => v + o.wd * th[i]!);
    buf = buf === null ? Float64Array.from(d) : buf.map((b, i) => o.mu * b + d[i]!);
    const b = buf;
    const step = o.nesterov ? d.map((v, i) => v + o.mu * b[i]!) : b;
    for (let i = 0; i < th.length; i++) th[i]! -= o.lr * step[i]!;
  }
  return th;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('KFAC update formula', () => {
  for (const nesterov of [false, true])
    it(`momentum, weight decay${nesterov ? ' and Nesterov' : ''} on the Newton step, and SGD on an untracked parameter`, () => {
      const [dout, din, lambda, lr, mu, wd] = [3, 4, 0.25, 0.1, 0.7, 0.05];
      const W0 = randomF32(dout * din, 1);
      const layer = new DenseLayer('fc', W0, dout, din);
      const extra: Param = { name: 'extra', tensor: Tensor.from(randomF32(5, 2)), grad: null };
      const theta0 = extra.tensor.toArray();
      const opt = new KFAC([layer], [extra], { lr, momentum: mu, weightDecay: wd, nesterov, damping: lambda, factorInit: 'identity', factorDecay: 1, inverseEvery: 1, newtonClip: null, untracked: 'sgd', method: 'eigen' });
      const gw: Float32Array[] = [];
      const ge: Float32Array[] = [];
      for (let t = 0; t < 3; t++) {
        layer.setInput(Tensor.from(randomF32(2 * din, 10 + t), [2, din]));
        layer.setOutputGrad(Tensor.from(randomF32(2 * dout, 20 + t), [2, dout]));
        gw.push(randomF32(dout * din, 30 + t));
        ge.push(randomF32(5, 40 + t).map((v) => 100 * v)); // large: a Newton clip would show
        layer.setGrads(gw[t]!);
        extra.grad = Tensor.from(ge[t]!);
        const tel = opt.step({ batchSize: 2 });
        expect(tel.preconditioned).toBe(true);
      }
      const wantW = sgdReference(W0, gw, { lr, mu, wd, nesterov, pre: (g) => g.map((v) => v / (1 + lambda)) });
      const wantE = sgdReference(theta0, ge, { lr, mu, wd, nesterov, pre: (g) => g });
      expect(maxAbs(layer.weight.tensor.toArray(), wantW)).toBeLessThan(1e-5);
      expect(maxAbs(extra.tensor.toArray(), wantE)).toBeLessThan(1e-4);
      opt.dispose();
    });

  it('policy: untracked parameters get AdamW (as optim.AdamW does), bounded by the trust-ratio rule when their update is large', () => {
    const [dout, din] = [3, 4];
    for (const untrackedLr of [1e-3, 1]) {
      const layer = new DenseLayer('fc', randomF32(dout * din, 1), dout, din);
      const extra: Param = { name: 'extra', tensor: Tensor.from(randomF32(5, 2)), grad: null };
      const twin: Param = { name: 'extra', tensor: extra.tensor.clone(), grad: null };
      const ref = new optim.AdamW([twin], { lr: untrackedLr, weightDecay: 0 });
      const opt = new KFAC([layer], [extra], { lr: 0.1, damping: 1e-3, untrackedLr });
      expect(opt.adamw).not.toBeNull();
      const e0 = extra.tensor.toArray();
      layer.setInput(Tensor.from(randomF32(2 * din, 3), [2, din]));
      layer.setOutputGrad(Tensor.from(randomF32(2 * dout, 4), [2, dout]));
      layer.setGrads(randomF32(dout * din, 5));
      const ge = randomF32(5, 6);
      extra.grad = Tensor.from(ge);
      twin.grad = Tensor.from(ge);
      const tel = opt.step({ batchSize: 2 });
      ref.step();
      const got = extra.tensor.toArray();
      const want = twin.tensor.toArray();
      const dn = Math.sqrt(got.reduce((s, v, i) => s + (v - e0[i]!) ** 2, 0));
      const W = layer.weight.tensor.toArray();
      const rms = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
      const tau = 0.01 * Math.sqrt(5) * Math.max(rms(e0), rms(W));
      if (untrackedLr === 1e-3) {
        expect(tel.untrackedClipped).toBe(0);
        expect(maxAbs(got, want)).toBeLessThan(1e-7);
      } else {
        expect(tel.untrackedClipped).toBe(1);
        expect(dn).toBeCloseTo(tau, 4);
        // the same direction as AdamW's update
        const dw = want.map((v, i) => v - e0[i]!);
        const nw = Math.sqrt(dw.reduce((s, v) => s + v * v, 0));
        expect(maxAbs(got.map((v, i) => (v - e0[i]!) / dn), dw.map((v) => v / nw))).toBeLessThan(1e-4);
      }
      opt.dispose();
    }
  });

  it('the default Newton clip bounds the tracked step; policy sgd leaves untracked parameters to raw SGD', () => {
    const [dout, din] = [3, 4];
    const W0 = randomF32(dout * din, 1);
    const layer = new DenseLayer('fc', W0, dout, din);
    const extra: Param = { name: 'extra', tensor: Tensor.from(randomF32(5, 2)), grad: null };
    const e0 = extra.tensor.toArray();
    const lr = 0.1;
    const opt = new KFAC([layer], [extra], { lr, momentum: 0, damping: 1e-3, untracked: 'sgd' });
    layer.setInput(Tensor.from(randomF32(2 * din, 3), [2, din]));
    layer.setOutputGrad(Tensor.from(randomF32(2 * dout, 4), [2, dout]));
    layer.setGrads(randomF32(dout * din, 5).map((v) => 1e3 * v));
    const ge = randomF32(5, 6).map((v) => 1e3 * v);
    extra.grad = Tensor.from(ge);
    const tel = opt.step({ batchSize: 2 });
    expect(tel.clipped).toBe(true);
    // per-tensor trust ratio κ = 0.01: ‖ΔW‖ = η‖P‖ ≤ κ·√n·max(rms W, rms θ) = 0.01·‖W‖ here (one tensor)
    const W = layer.weight.tensor.toArray();
    const dW = Math.sqrt(W.reduce((s, v, i) => s + (v - W0[i]!) ** 2, 0));
    const nW = Math.sqrt(W0.reduce((s, v) => s + v * v, 0));
    expect(dW).toBeLessThanOrEqual(0.01 * nW * (1 + 1e-5));
    expect(dW).toBeGreaterThan(0.0099 * nW);
    expect(tel.clipThreshold).toBeCloseTo((0.01 * nW) / lr, 4);
    expect(maxAbs(extra.tensor.toArray(), e0.map((v, i) => v - lr * ge[i]!))).toBeLessThan(1e-3);
    opt.dispose();
  });

  it('while the default clip fires on every step, the applied steps (momentum included) do not depend on the learning rate', () => {
    // τ = κ√n·rms/η, so η·(P·τ/‖P‖) = κ√n·rms·P/‖P‖ and the momentum buffer's applied sum is η-free:
    // this is why K-FAC's lr barely matters at its defaults (BENCHMARKS.md, "K-FAC at its defaults").
    const [dout, din] = [3, 5];
    const W0 = randomF32(dout * din, 7);
    const run = (lr: number) => {
      const layer = new DenseLayer('fc', W0, dout, din);
      const opt = new KFAC([layer], [], { lr, damping: 1e-3 });
      for (let t = 0; t < 4; t++) {
        layer.setInput(Tensor.from(randomF32(4 * din, 50 + t), [4, din]));
        layer.setOutputGrad(Tensor.from(randomF32(4 * dout, 60 + t), [4, dout]));
        layer.setGrads(randomF32(dout * din, 70 + t).map((v) => 10 * v));
        expect(opt.step({ batchSize: 4 }).clipped, `lr ${lr} step ${t}`).toBe(true);
      }
      const W = layer.weight.tensor.toArray();
      opt.dispose();
      return W;
    };
    const [a, b, c] = [run(0.03), run(0.1), run(0.3)];
    const moved = maxAbs(b, W0);
    expect(moved).toBeGreaterThan(1e-3);
    expect(maxAbs(a, b)).toBeLessThan(1e-5 * (1 + moved));
    expect(maxAbs(c, b)).toBeLessThan(1e-5 * (1 + moved));
    // without the clip the step scales with η
    const free = (lr: number) => {
      const layer = new DenseLayer('fc', W0, dout, din);
      const opt = new KFAC([layer], [], { lr, damping: 1e-3, newtonClip: null });
      layer.setInput(Tensor.from(randomF32(4 * din, 50), [4, din]));
      layer.setOutputGrad(Tensor.from(randomF32(4 * dout, 60), [4, dout]));
      layer.setGrads(randomF32(dout * din, 70));
      opt.step({ batchSize: 4 });
      const W = layer.weight.tensor.toArray();
      opt.dispose();
      return maxAbs(W, W0);
    };
    expect(free(0.3) / free(0.1)).toBeCloseTo(3, 3);
  });

  it('with a schedule the clipped step follows the lr relative to trustLr (η̄), and the largest lr so far without it', () => {
    // τ = κ√n·rms/η̄: the applied step η_t·P·τ/‖P‖ = (η_t/η̄)·κ√n·rms (momentum 0, one tensor)
    const [dout, din] = [3, 5];
    const W0 = randomF32(dout * din, 8);
    const moves = (lr: (s: number) => number, trustLr?: number) => {
      const layer = new DenseLayer('fc', W0, dout, din);
      const opt = new KFAC([layer], [], { lr, momentum: 0, damping: 1e-3, ...(trustLr === undefined ? {} : { trustLr }) });
      const out: number[] = [];
      for (let t = 0; t < 4; t++) {
        const before = layer.weight.tensor.toArray();
        layer.setInput(Tensor.from(randomF32(4 * din, 80 + t), [4, din]));
        layer.setOutputGrad(Tensor.from(randomF32(4 * dout, 90 + t), [4, dout]));
        layer.setGrads(randomF32(dout * din, 100 + t).map((v) => 1e3 * v));
        expect(opt.step({ batchSize: 4 }).clipped).toBe(true);
        const W = layer.weight.tensor.toArray();
        const n = Math.sqrt(before.reduce((a, v) => a + v * v, 0));
        out.push(Math.sqrt(W.reduce((a, v, i) => a + (v - before[i]!) ** 2, 0)) / (0.01 * n));
      }
      opt.dispose();
      return out;
    };
    const lrs = [0.05, 0.1, 0.05, 0.025];
    // the step's size relative to κ‖W‖ is η_t/η̄
    const withPeak = moves((s) => lrs[s]!, 0.1);
    lrs.forEach((lr, t) => expect(withPeak[t]!, `step ${t}`).toBeCloseTo(lr / 0.1, 4));
    // without trustLr: η̄ is the largest lr so far, so the warm-up step is not shrunk (ratio 1 at step 0)
    const running = moves((s) => lrs[s]!);
    [1, 1, 0.5, 0.25].forEach((r, t) => expect(running[t]!, `step ${t}`).toBeCloseTo(r, 4));
    // a constant schedule keeps the old rule: every step moves by exactly κ·‖W‖, whatever η is
    for (const r of moves(() => 0.3)) expect(r).toBeCloseTo(1, 4);
    // a trustLr above the schedule's lr shortens every step by their ratio
    for (const r of moves(() => 0.3, 0.6)) expect(r).toBeCloseTo(0.5, 4);
    expect(() => new KFAC([new DenseLayer('fc', W0, dout, din)], [], { lr: 0.1, trustLr: 0 })).toThrow(/trustLr/);
  });
});
