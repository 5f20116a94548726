/**
 * The adaptive step length: h = cos(∇W_t, P_{t−1}) and m ← clamp(m·exp(rate·(h − target))) against
 * their formulas, the applied (clipped) step scaling with m, the bounds, the state round trip, and
 * a clip it cannot adapt refused by name.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, InvalidArgumentError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

const [dout, din] = [3, 4];

function setup(adaptiveTrust: object | boolean) {
  const W0 = randomF32(dout * din, 1);
  const layer = new DenseLayer('fc', W0, dout, din);
  // momentum 0 and large gradients: the per-tensor trust clip fires on every step, so each step's
  // length is exactly m·κ·‖W‖ (one tensor) and its direction is P's
  const opt = new KFAC([layer], [], { lr: 0.1, momentum: 0, damping: 1e-3, adaptiveTrust });
  const feed = (g: Float32Array, seed: number) => {
    layer.setInput(Tensor.from(randomF32(2 * din, seed), [2, din]));
    layer.setOutputGrad(Tensor.from(randomF32(2 * dout, seed + 1), [2, dout]));
    layer.setGrads(g);
  };
  const step = () => {
    const before = layer.weight.tensor.toArray();
    const tel = opt.step({ batchSize: 2 });
    const W = layer.weight.tensor.toArray();
    const d = Float64Array.from(W, (v, i) => before[i]! - v); // the applied step η·P (descent: θ − ηP)
    const nW = Math.sqrt(before.reduce((a, v) => a + v * v, 0));
    return { tel, d, rel: Math.sqrt(d.reduce((a, v) => a + v * v, 0)) / (0.01 * nW) };
  };
  return { layer, opt, feed, step };
}

const cos = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
};

describe('adaptive step length (adaptiveTrust)', () => {
  it('h is the cosine of the new gradient with the previous step, and m follows exp(rate·(h − target)) within its bounds', () => {
    const o = { rate: 0.5, target: 0.05, min: 0.25, max: 4 };
    const { feed, step, opt } = setup(o);
    let m = 1;
    let prevStep: Float64Array | null = null;
    for (let t = 0; t < 12; t++) {
      // a fixed direction plus noise: the agreement is positive but not 1
      const g = Float32Array.from(randomF32(dout * din, 7), (v, i) => 1e3 * (v + 0.7 * randomF32(dout * din, 100 + t)[i]!));
      feed(g, 10 * t);
      const { tel, d, rel } = step();
      if (prevStep === null) {
        expect(Number.isNaN(tel.stepAgreement)).toBe(true);
      } else {
        // P_{t−1} ∝ the previous applied step (momentum 0), so h = cos(g_t, step_{t−1})
        expect(tel.stepAgreement).toBeCloseTo(cos(g, prevStep), 5);
        m = Math.min(o.max, Math.max(o.min, m * Math.exp(o.rate * (tel.stepAgreement - o.target))));
      }
      expect(tel.trustScale).toBeCloseTo(m, 9);
      expect(tel.clipped).toBe(true);
      expect(rel).toBeCloseTo(m, 4);
      prevStep = d;
    }
    expect(m).toBeGreaterThan(1.5); // consistent directions lengthened the step
    opt.dispose();
  });

  it('alternating gradients (overshoot) shorten the step down to min; a repeated one lengthens it up to max', () => {
    const g = Float32Array.from(randomF32(dout * din, 3), (v) => 1e3 * v);
    const flip = setup({ min: 0.25 });
    for (let t = 0; t < 12; t++) {
      flip.feed(t % 2 ? g : g.map((v) => -v), t);
      flip.step();
    }
    flip.feed(g.map((v) => -v), 12);
    const last = flip.step();
    expect(last.tel.trustScale).toBe(0.25);
    expect(last.rel).toBeCloseTo(0.25, 4);
    flip.opt.dispose();
    const same = setup(true);
    for (let t = 0; t < 12; t++) {
      same.feed(g, t);
      same.step();
    }
    same.feed(g, 12);
    expect(same.step().tel.trustScale).toBe(4);
    same.opt.dispose();
  });

  it('the state (m and P_{t−1}) round-trips, so a resumed run takes the same steps', () => {
    const g = (t: number) => Float32Array.from(randomF32(dout * din, 40 + t), (v) => 1e3 * v);
    const a = setup(true);
    for (let t = 0; t < 3; t++) {
      a.feed(g(t), t);
      a.step();
    }
    const b = setup(true);
    b.layer.weight.tensor.set(a.layer.weight.tensor.toArray());
    const st = a.opt.stateDict();
    b.opt.loadStateDict(st);
    for (const t of Object.values(st.tensors)) t.dispose();
    for (let t = 3; t < 6; t++) {
      a.feed(g(t), t);
      b.feed(g(t), t);
      const [sa, sb] = [a.step(), b.step()];
      expect(sb.tel.trustScale).toBeCloseTo(sa.tel.trustScale, 12);
      expect(sb.tel.stepAgreement).toBeCloseTo(sa.tel.stepAgreement, 6);
    }
    expect(Array.from(b.layer.weight.tensor.toArray())).toEqual(Array.from(a.layer.weight.tensor.toArray()));
    a.opt.dispose();
    b.opt.dispose();
  });

  it('a step that adaptive damping undoes takes its change of m and its P with it', () => {
    const W0 = randomF32(dout * din, 1);
    const layer = new DenseLayer('fc', W0, dout, din);
    const opt = new KFAC([layer], [], { lr: 0.1, momentum: 0, damping: 1e-3, adaptiveTrust: true, adaptiveDamping: { every: 1, reject: true } });
    const g = Float32Array.from(randomF32(dout * din, 3), (v) => 1e3 * v);
    const feed = (seed: number) => {
      layer.setInput(Tensor.from(randomF32(2 * din, seed), [2, din]));
      layer.setOutputGrad(Tensor.from(randomF32(2 * dout, seed + 1), [2, dout]));
      layer.setGrads(g);
    };
    feed(1);
    opt.step({ batchSize: 2 });
    opt.observeLoss({ before: 1, after: 0.9 }); // kept
    feed(2);
    const t2 = opt.step({ batchSize: 2 }); // the same gradient: h > 0, m grows
    expect(t2.stepAgreement).toBeGreaterThan(0.5);
    expect(t2.trustScale).toBeGreaterThan(1);
    const after2 = layer.weight.tensor.toArray();
    expect(opt.observeLoss({ before: 1, after: 1.2 })?.rejected).toBe(true); // the loss rose: undone
    expect(Array.from(layer.weight.tensor.toArray())).not.toEqual(Array.from(after2));
    feed(3);
    const t3 = opt.step({ batchSize: 2 });
    // m is back to its value before the undone step, and no agreement is measured against its P
    expect(t3.trustScale).toBe(1);
    expect(Number.isNaN(t3.stepAgreement)).toBe(true);
    opt.dispose();
  });

  it('needs the trust-ratio clip, and checks its options by name', () => {
    const layer = new DenseLayer('fc', randomF32(dout * din, 1), dout, din);
    expect(() => new KFAC([layer], [], { newtonClip: null, adaptiveTrust: true })).toThrow(ConfigError);
    expect(() => new KFAC([layer], [], { newtonClip: { maxNorm: 1 }, adaptiveTrust: true })).toThrow(/trustRatio/);
    expect(() => new KFAC([layer], [], { adaptiveTrust: { rate: -1 } })).toThrow(InvalidArgumentError);
    expect(() => new KFAC([layer], [], { adaptiveTrust: { min: 2 } })).toThrow(/adaptiveTrust\.min/);
    expect(() => new KFAC([layer], [], { adaptiveTrust: { speed: 1 } as object })).toThrow(/adaptiveTrust\.speed/);
  });
});
