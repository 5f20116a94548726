/**
 * Adaptive (Levenberg–Marquardt) damping: the quadratic model against its formula, the λ update
 * from ρ with its bounds, step rejection that restores weights and momentum exactly, a
 * non-finite loss after the step undone and reported, the losses left on the device (read with
 * the probe's record: the same ρ, λ and weights as the numbers give), and the Trainer driving it.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, InvalidArgumentError, ops, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { DeviceValue } from '../../lib/tensor/device-value.js';
import { Trainer, type TrainerTask } from '../../lib/train/trainer.js';
import { DenseGradTask, DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

const [dout, din] = [3, 4];

function setup(adaptive: object, lambda = 0.25, lr = 0.1) {
  const W0 = randomF32(dout * din, 1);
  const layer = new DenseLayer('fc', W0, dout, din);
  // identity factors (β = 1): P = ∇W/(1+λ), curvature ⟨δ, I δ I⟩ = ‖δ‖²
  const opt = new KFAC([layer], [], { lr, momentum: 0.5, damping: lambda, factorInit: 'identity', factorDecay: 1, inverseEvery: 1, newtonClip: null, adaptiveDamping: adaptive });
  const feed = (seed: number) => {
    layer.setInput(Tensor.from(randomF32(2 * din, seed), [2, din]));
    layer.setOutputGrad(Tensor.from(randomF32(2 * dout, seed + 1), [2, dout]));
    const g = randomF32(dout * din, seed + 2);
    layer.setGrads(g);
    return g;
  };
  return { layer, opt, feed, W0 };
}

/** A value as a forward leaves it: a float64's 8 bytes in two floats (use exact binary fractions, so no float32 half is a NaN). */
function dv(x: number): DeviceValue {
  const d = new DeviceValue('cpu');
  ops.copy(Tensor.from(new Float32Array(new Float64Array([x]).buffer), [2]), d.tensor);
  return d;
}

describe('adaptive damping', () => {
  it('M(δ) = ⟨δ, ∇W⟩ + ½ δᵀ(A⊗G)δ + ½λ‖δ‖², and λ moves by ω from ρ within its bounds', () => {
    const { opt, feed, layer, W0 } = setup({ every: 1, omega: 0.5, min: 0.1, max: 0.8 });
    const g = feed(10);
    const tel = opt.step({ batchSize: 2 });
    expect(opt.wantsLoss()).toBe(true);
    const W = layer.weight.tensor.toArray();
    let dg = 0;
    let dd = 0;
    for (let i = 0; i < W.length; i++) {
      const d = W[i]! - W0[i]!;
      expect(d).toBeCloseTo((-0.1 * g[i]!) / 1.25, 6); // first step: momentum buffer = P
      dg += d * g[i]!;
      dd += d * d;
    }
    const M = dg + 0.5 * dd + 0.5 * 0.25 * dd;
    expect(tel.quadraticModel).toBeCloseTo(M, 6);
    expect(M).toBeLessThan(0);
    // ρ = 1 (the loss fell as predicted): λ ← ωλ
    const t1 = opt.observeLoss({ before: 1, after: 1 + M }) as typeof tel;
    expect(t1.rho).toBeCloseTo(1, 9);
    expect(opt.damping).toBeCloseTo(0.125 > 0.1 ? 0.125 : 0.1, 12);
    expect(opt.wantsLoss()).toBe(false);
    // next step uses it; ρ < 1/4 (the loss rose): λ ← λ/ω, clamped at max
    feed(20);
    expect(opt.step({ batchSize: 2 }).damping).toBeCloseTo(0.125, 12);
    opt.observeLoss({ before: 1, after: 1.5 });
    expect(opt.damping).toBeCloseTo(0.25, 12);
    for (let k = 0; k < 3; k++) {
      feed(30 + k);
      opt.step({ batchSize: 2 });
      opt.observeLoss({ before: 1, after: 2 });
    }
    expect(opt.damping).toBe(0.8);
    for (let k = 0; k < 5; k++) {
      feed(40 + k);
      const t = opt.step({ batchSize: 2 });
      opt.observeLoss({ before: 1, after: 1 + t.quadraticModel });
    }
    expect(opt.damping).toBe(0.1);
    opt.dispose();
  });

  it('losses left on the device: M(δ) and the loss after the step come back in one read, with the ρ, λ, rejections and weights the numbers give', () => {
    const eager = setup({ every: 1, omega: 0.5, min: 0.01, max: 4, reject: true });
    const lazy = setup({ every: 1, omega: 0.5, min: 0.01, max: 4, reject: true });
    const afters = [0.75, 1.5, 0.5, 1.25, 0.875];
    let rejected = 0;
    afters.forEach((after, k) => {
      eager.feed(50 + 3 * k);
      lazy.feed(50 + 3 * k);
      const te = eager.opt.step({ batchSize: 2 });
      const before = dv(1);
      const tl = lazy.opt.step({ batchSize: 2, losses: [before] });
      expect(before.pending).toBe(false); // read with the step record
      expect(Number.isFinite(te.quadraticModel)).toBe(true);
      expect(tl.quadraticModel).toBeNaN(); // not read yet: it waits for the loss after the step
      expect(lazy.opt.wantsLoss()).toBe(true);
      const a = dv(after);
      const oe = eager.opt.observeLoss({ before: 1, after }) as typeof te;
      const ol = lazy.opt.observeLoss({ before: 1, after: [a] }) as typeof te;
      expect(a.pending).toBe(false);
      expect(a.value()).toBe(after);
      expect(ol.quadraticModel).toBe(oe.quadraticModel);
      expect(ol.rho).toBe(oe.rho);
      expect(ol.rejected).toBe(oe.rejected);
      if (ol.rejected) rejected += 1;
      expect(lazy.opt.damping).toBe(eager.opt.damping);
      expect(lazy.layer.weight.tensor.toArray()).toEqual(eager.layer.weight.tensor.toArray());
    });
    expect(rejected).toBe(2); // the two whose loss rose (1.5, 1.25) were undone on both
    // more losses after the step than the step had: each is read on its own, the mean as before
    eager.feed(90);
    lazy.feed(90);
    eager.opt.step({ batchSize: 2 });
    lazy.opt.step({ batchSize: 2, losses: [dv(1)] });
    const oe = eager.opt.observeLoss({ before: 1, after: (0.5 + 0.75) / 2 }) as { rho: number };
    const ol = lazy.opt.observeLoss({ before: 1, after: [dv(0.5), dv(0.75)] }) as { rho: number };
    expect(ol.rho).toBe(oe.rho);
    for (const o of [eager.opt, lazy.opt]) o.dispose();
  });

  it('reject: a step whose loss rose is undone (weights and momentum restored exactly); a non-finite loss is always undone', () => {
    const { opt, feed, layer } = setup({ every: 1, reject: true });
    feed(10);
    opt.step({ batchSize: 2 });
    opt.observeLoss({ before: 1, after: 0.5 });
    const kept = layer.weight.tensor.toArray();
    const buf = opt.sgd.stateDict().tensors['fc.weight/momentum_buffer']!.toArray();
    feed(20);
    opt.step({ batchSize: 2 });
    expect(layer.weight.tensor.toArray()).not.toEqual(kept);
    const t = opt.observeLoss({ before: 1, after: 1.1 }) as { rejected: boolean; events: string[] };
    expect(t.rejected).toBe(true);
    expect(t.events.join(' ')).toMatch(/raised the loss/);
    const back = layer.weight.tensor.toArray();
    for (let i = 0; i < kept.length; i++) expect(back[i]).toBeCloseTo(kept[i]!, 6);
    expect(opt.sgd.stateDict().tensors['fc.weight/momentum_buffer']!.toArray()).toEqual(buf);

    const noReject = setup({ every: 1 });
    noReject.feed(10);
    noReject.opt.step({ batchSize: 2 });
    const t2 = noReject.opt.observeLoss({ before: 1, after: NaN }) as { rejected: boolean };
    expect(t2.rejected).toBe(true);
    const w = noReject.layer.weight.tensor.toArray();
    for (let i = 0; i < w.length; i++) expect(w[i]).toBeCloseTo(noReject.W0[i]!, 6);
    opt.dispose();
    noReject.opt.dispose();
  });

  it('a step whose quadratic model is not finite is undone and reported', () => {
    const { opt, layer, W0 } = setup({ every: 1 }, 0.25, 10);
    layer.setInput(Tensor.from(randomF32(2 * din, 3), [2, din]));
    layer.setOutputGrad(Tensor.from(randomF32(2 * dout, 4), [2, dout]));
    layer.setGrads(randomF32(dout * din, 5).map((v) => v * 3e38)); // finite, but the step overflows float32
    const t = opt.step({ batchSize: 2 });
    expect(Number.isFinite(t.quadraticModel)).toBe(false);
    expect(t.rejected).toBe(true);
    expect(t.events.join(' ')).toMatch(/quadratic model .* not finite/);
    expect(opt.wantsLoss()).toBe(false);
    expect(layer.weight.tensor.toArray()).toEqual(W0);
    expect(opt.damping).toBeCloseTo(0.25 / 0.95, 12);
    opt.dispose();
    // with its losses on the device the step learns it at the one read after the extra forward: undone then, the same report
    const lazy = setup({ every: 1 }, 0.25, 10);
    lazy.layer.setInput(Tensor.from(randomF32(2 * din, 3), [2, din]));
    lazy.layer.setOutputGrad(Tensor.from(randomF32(2 * dout, 4), [2, dout]));
    lazy.layer.setGrads(randomF32(dout * din, 5).map((v) => v * 3e38));
    lazy.opt.step({ batchSize: 2, losses: [dv(1)] });
    expect(lazy.opt.wantsLoss()).toBe(true);
    const u = lazy.opt.observeLoss({ before: 1, after: [dv(0.5)] }) as typeof t;
    expect(Number.isFinite(u.quadraticModel)).toBe(false);
    expect(u.rejected).toBe(true);
    expect(u.events.join(' ')).toMatch(/quadratic model .* not finite/);
    expect(u.rho).toBeNaN(); // no ρ: the step is undone before it
    expect(lazy.opt.wantsLoss()).toBe(false);
    expect(lazy.layer.weight.tensor.toArray()).toEqual(lazy.W0);
    expect(lazy.opt.damping).toBeCloseTo(0.25 / 0.95, 12);
    lazy.opt.dispose();
  });

  it('bad options are typed errors', () => {
    const l = new DenseLayer('fc', randomF32(6, 1), 2, 3);
    expect(() => new KFAC([l], [], { adaptiveDamping: { every: 0 } })).toThrow(InvalidArgumentError);
    expect(() => new KFAC([l], [], { adaptiveDamping: { min: 1, max: 0.5 } })).toThrow(InvalidArgumentError);
    expect(() => new KFAC([l], [], { adaptiveDamping: { omega: 1 } })).toThrow(ConfigError);
  });
});

class Regression extends DenseGradTask implements TrainerTask<number[]> {
  readonly layer = new DenseLayer('fc', randomF32(3 * 4, 5), 3, 4);
  readonly X = randomF32(48 * 4, 6);
  readonly Wt = randomF32(3 * 4, 7);
  constructor() {
    super(3, 4);
  }
  forwards = 0;
  *batches(): Iterable<number[]> {
    for (let i = 0; i + 8 <= 48; i += 8) yield Array.from({ length: 8 }, (_, k) => i + k);
  }
  #run(idx: number[], backward: boolean) {
    this.forwards += 1;
    const { loss, dy } = this.squaredLoss(idx, this.X, (i, j) => {
      let t = 0;
      for (let k = 0; k < 4; k++) t += this.Wt[j * 4 + k]! * this.X[i * 4 + k]!;
      return t;
    });
    if (backward) this.accumulate(dy);
    else dy.dispose();
    return loss;
  }
  lossAndBackward(idx: number[]) {
    return { loss: this.#run(idx, true), batchSize: idx.length };
  }
  loss(idx: number[]) {
    return this.#run(idx, false);
  }
}

describe('adaptive damping through the Trainer', () => {
  it('every 2 steps: one extra forward, ρ and λ in the telemetry, the loss falls', async () => {
    const task = new Regression();
    const opt = new KFAC([task.layer], [], { lr: 0.5, momentum: 0, damping: 1e-2, newtonClip: null, adaptiveDamping: { every: 2 } });
    const fit = await new Trainer(task, opt, { maxSteps: 6, epochs: 10, handleSigint: false }).fit();
    const steps = fit.history.filter((e) => e.kind === 'step') as { loss: number; optimizer: { rho: number; damping: number; lr: number } }[];
    expect(task.forwards).toBe(6 + 3);
    expect(steps.map((s) => Number.isFinite(s.optimizer.rho))).toEqual([true, false, true, false, true, false]);
    expect(steps.every((s) => s.optimizer.lr === 0.5 && s.optimizer.damping > 0)).toBe(true);
    expect(new Set(steps.map((s) => s.optimizer.damping)).size).toBeGreaterThan(1);
    expect(steps.at(-1)!.loss).toBeLessThan(steps[0]!.loss);
    opt.dispose();
  });
});
