/**
 * Gradient clipping before preconditioning (`gradClip`, the ablation beside the Newton clip):
 * K-FAC clips the tracked gradients by their global norm as clipGradNorm does (torch's
 * clip_grad_norm_: scale maxNorm/(‖∇W‖ + 10⁻⁶) when below 1), queued where the gradients live and
 * read with the step record. On the CPU that is clipGradNorm's arithmetic bit for bit, so the step
 * equals a step without gradClip on gradients clipGradNorm clipped; a non-finite gradient refuses
 * the step with the clip's error, nothing applied.
 */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, NotFiniteError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { StepRecord } from '../../lib/kfac/step-record.js';
import { native } from '../../lib/native/loader.js';
import { clipGradNorm } from '../../lib/optim/clip.js';
import { DenseLayer } from '../support/dense-layer.js';
import { emulationPossible } from '../support/emulation.js';
import { randomF32 } from '../support/helpers.js';

const [din, dout, R] = [5, 4, 7];

function make(gradClip: number | undefined) {
  const layer = new DenseLayer('fc', randomF32(dout * din, 3), dout, din, randomF32(dout, 4));
  const opt = new KFAC([layer], [], { inverseEvery: 2, ...(gradClip === undefined ? {} : { gradClip }) });
  const feed = (seed: number, clipTo?: number) => {
    layer.setInput(Tensor.from(randomF32(R * din, seed), [R, din]));
    layer.setOutputGrad(Tensor.from(randomF32(R * dout, seed + 1), [R, dout]));
    layer.setGrads(randomF32(dout * din, seed + 2).map((v) => 3 * v), randomF32(dout, seed + 3));
    if (clipTo !== undefined) return clipGradNorm([layer.weight.grad!, layer.bias!.grad!], clipTo);
    return undefined;
  };
  return { layer, opt, feed };
}

describe('K-FAC with gradient clipping before preconditioning', () => {
  for (const maxNorm of [0.5, 1e6])
    it(`maxNorm ${maxNorm}: clipGradNorm's norm and scale, and the step of pre-clipped gradients, bit for bit`, () => {
      const clipped = make(maxNorm);
      const plain = make(undefined);
      for (let s = 0; s < 4; s++) {
        clipped.feed(10 + 4 * s);
        const want = plain.feed(10 + 4 * s, maxNorm)!;
        const tel = clipped.opt.step({ batchSize: R });
        plain.opt.step({ batchSize: R });
        expect(tel.gradNorm, `step ${s}`).toBe(want.norm);
        expect(tel.gradClipScale, `step ${s}`).toBe(want.scale);
        expect(clipped.layer.weight.tensor.toArray()).toEqual(plain.layer.weight.tensor.toArray());
        expect(clipped.layer.bias!.tensor.toArray()).toEqual(plain.layer.bias!.tensor.toArray());
      }
      if (maxNorm === 0.5) expect(clipped.opt.last!.gradClipScale).toBeLessThan(1);
      else expect(clipped.opt.last!.gradClipScale).toBe(1);
      clipped.opt.dispose();
      plain.opt.dispose();
    });

  it('a non-finite gradient refuses the step with the clip\'s error; weights and gradients untouched', () => {
    const { layer, opt, feed } = make(0.5);
    feed(10);
    opt.step({ batchSize: R });
    feed(20);
    const g = layer.weight.grad!.toArray();
    g[3] = NaN;
    layer.weight.grad!.set(g);
    const W = layer.weight.tensor.toArray();
    expect(() => opt.step({ batchSize: R })).toThrow(NotFiniteError);
    expect(() => opt.step({ batchSize: R })).toThrow(/gradients: expected a finite norm, got NaN/);
    expect(layer.weight.tensor.toArray()).toEqual(W);
    expect(Array.from(layer.weight.grad!.toArray()).map(String)).toEqual(Array.from(g).map(String));
    opt.dispose();
  });

  it('eps is only for the fixed global clip: a typed error otherwise', () => {
    const a = Tensor.zeros([4]);
    const rec = new StepRecord();
    rec.begin(a, 8);
    const n = native();
    expect(() => n.trustClip([a.handle], [Tensor.zeros([4]).handle], { k: 1, floor: 0, perTensor: false, eps: 1e-6 }, rec.tensor.handle, 0)).toThrow(InvalidArgumentError);
    expect(() => n.trustClip([a.handle], [Tensor.zeros([4]).handle], { k: 1, floor: 0, perTensor: true, fixed: true, eps: 1e-6 }, rec.tensor.handle, 0)).toThrow(/eps/);
    expect(() => n.trustClip([a.handle], [Tensor.zeros([4]).handle], { k: 1, floor: 0, perTensor: false, fixed: true, eps: -1 }, rec.tensor.handle, 0)).toThrow(/eps/);
    rec.dispose();
  });

  it.skipIf(!emulationPossible())('on the emulated cuda device: the float64 clip, no download until the read', () => {
    native()._cudaEmulation();
    const xs = [randomF32(37, 1), randomF32(40000, 2), randomF32(5, 3)];
    for (const maxNorm of [1, 1e6]) {
      const total = Math.sqrt(xs.reduce((a, x) => a + x.reduce((b, v) => b + v * v, 0), 0));
      const c = maxNorm / (total + 1e-6);
      const scale = c < 1 ? c : 1;
      const G = xs.map((x) => Tensor.from(x, [x.length]).to('cuda'));
      const W = xs.map((x) => Tensor.zeros([x.length]).to('cuda'));
      const rec = new StepRecord();
      rec.begin(G[0]!, 8);
      const before = native()._loopbackTransfers().downloads;
      const { at } = rec.trustClip(G, W, maxNorm, 0, false, true, 1e-6);
      expect(native()._loopbackTransfers().downloads).toBe(before);
      const v = rec.read();
      expect(Math.abs(v[at]! - total) / total).toBeLessThan(1e-12);
      expect(Math.abs(v[at + 1]! - scale) / scale).toBeLessThan(1e-12);
      G.forEach((t, i) => {
        const host = t.to('cpu').toArray();
        host.forEach((x, j) => {
          const want = xs[i]![j]! * scale;
          expect(Math.abs(x - want)).toBeLessThanOrEqual(2 ** -23 * Math.abs(want) + 1e-45);
        });
      });
      rec.dispose();
    }
  });
});
