/**
 * Non-finite rows (docs/KFAC.md#factors): `kfac.updateFactor` refuses them unless asked not to
 * scan (`checkFinite: false`, what K-FAC's capture passes: on cuda the scan is a host wait per
 * call). K-FAC checks what it captured at the step instead, in the reduction the step reads anyway:
 * a non-finite factor statistic is a NotFiniteError naming the factor, nothing is applied and the
 * captured statistics are dropped — for every method, with the default clip and without one, the
 * run then goes on exactly as if that micro-batch had never come.
 */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, NotFiniteError, Tensor } from '../../lib/index.js';
import { updateFactor } from '../../lib/kfac/factor.js';
import { KFAC, type KfacOptions } from '../../lib/kfac/kfac-optimizer.js';
import { DeviceValue } from '../../lib/tensor/device-value.js';
import { DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

describe('kfac.updateFactor and non-finite rows', () => {
  const bad = () => Tensor.from(new Float32Array([1, 2, NaN, 4, 5, 6]), [2, 3]);

  it('refuses them by default, leaving the factor as it was', () => {
    const F = Tensor.from(randomF32(9, 1), [3, 3]);
    const before = F.toArray();
    expect(() => updateFactor(F, bad(), { beta: 0.5 })).toThrow(NotFiniteError);
    expect(F.toArray()).toEqual(before);
  });

  it('with checkFinite: false the rows are not scanned and reach the factor', () => {
    const F = Tensor.zeros([3, 3]);
    updateFactor(F, bad(), { checkFinite: false });
    const f = F.toArray();
    // row and column 2 hold the NaN's products; the others are finite
    expect(Number.isNaN(f[2 * 3 + 2]!)).toBe(true);
    expect(Number.isNaN(f[0 * 3 + 2]!)).toBe(true);
    expect(f[0]).toBeCloseTo((1 + 16) / 2, 5);
  });

  it('checkFinite must be a boolean', () => {
    expect(() => updateFactor(Tensor.zeros([3, 3]), bad(), { checkFinite: 1 as unknown as boolean })).toThrow(InvalidArgumentError);
  });
});

const [din, dout, R] = [4, 3, 6];

/** A dense layer under K-FAC, and a feed of seeded rows and gradients with a NaN in the input rows or the weight gradient when asked. */
function denseRun(options: KfacOptions) {
  const layer = new DenseLayer('fc', randomF32(dout * din, 3), dout, din, randomF32(dout, 4));
  const opt = new KFAC([layer], [], options);
  const feed = (seed: number, poison: 'input' | 'grad' | null = null) => {
    const x = randomF32(R * din, seed);
    if (poison === 'input') x[5] = NaN;
    layer.setInput(Tensor.from(x, [R, din]));
    layer.setOutputGrad(Tensor.from(randomF32(R * dout, seed + 1), [R, dout]));
    const gw = randomF32(dout * din, seed + 2);
    if (poison === 'grad') gw[7] = NaN;
    layer.setGrads(gw, randomF32(dout, seed + 3));
  };
  return { layer, opt, feed };
}

describe('K-FAC with a non-finite row at a capture', () => {
  const methods = ['ekfac', 'eigen', 'inverse'] as const;
  for (const method of methods)
    for (const clip of ['the default clip', 'no clip'] as const)
      it(`${method}, ${clip}: the step is refused naming the factor, and the run goes on as if the batch never came`, () => {
        const make = () => denseRun({ method, inverseEvery: 3, ...(clip === 'no clip' ? { newtonClip: null } : {}) });
        const hit = make();
        const clean = make();
        for (const r of [hit, clean])
          for (let s = 0; s < 2; s++) {
            r.feed(10 + 4 * s);
            r.opt.step({ batchSize: R });
          }
        // a micro-batch with a NaN input row (its gradients finite): captured, then refused at the step
        hit.feed(100, 'input');
        hit.opt.capture({ batchSize: R });
        const W = hit.layer.weight.tensor.toArray();
        const b = hit.layer.bias!.tensor.toArray();
        let err: unknown;
        try {
          hit.opt.step({ batchSize: R });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(NotFiniteError);
        expect((err as NotFiniteError).message).toMatch(/factor fc\.A|factor .*fc.*: the rows captured since the last step hold NaN or Inf/);
        expect(hit.layer.weight.tensor.toArray()).toEqual(W);
        expect(hit.layer.bias!.tensor.toArray()).toEqual(b);
        expect(hit.opt.preconditioner.pendingCaptures).toBe(0);
        // nothing of it was kept: the next clean steps match a run that never saw it, bit for bit
        for (let s = 0; s < 3; s++)
          for (const r of [hit, clean]) {
            r.feed(200 + 4 * s);
            r.opt.step({ batchSize: R });
          }
        expect(hit.layer.weight.tensor.toArray()).toEqual(clean.layer.weight.tensor.toArray());
        expect(hit.layer.bias!.tensor.toArray()).toEqual(clean.layer.bias!.tensor.toArray());
        hit.opt.dispose();
        clean.opt.dispose();
      });
});

// A Newton step with NaN or Inf (here from a non-finite gradient; the captured statistics are
// finite): the clip finds it — the trust ratio in the step record, on the device where the tensors
// live, or the host's norm without a clip — and the step is refused naming the layer before the
// write-back, so the weights, the momentum and the gradients are as they were.
describe('K-FAC with a non-finite Newton step', () => {
  const clips = [
    ['the default clip (per-tensor trust ratio)', {}],
    ['the global trust ratio', { newtonClip: { mode: 'global', trustRatio: 0.01 } }],
    ['no clip', { newtonClip: null }],
  ] as const;
  for (const [what, over] of clips)
    it(`${what}: a NotFiniteError naming the layer's step; weights, momentum and gradients untouched`, () => {
      const { layer, opt, feed } = denseRun({ inverseEvery: 3, ...over });
      for (let s = 0; s < 2; s++) {
        feed(10 + 4 * s);
        opt.step({ batchSize: R });
      }
      feed(100, 'grad');
      const W = layer.weight.tensor.toArray();
      const g = Array.from(layer.weight.grad!.toArray()).map(String);
      const momentum = opt.sgd.stateDict().tensors['fc.weight/momentum_buffer']!.toArray();
      expect(() => opt.step({ batchSize: R })).toThrow(NotFiniteError);
      expect(() => opt.step({ batchSize: R })).toThrow(/the Newton step of fc is not finite/);
      expect(layer.weight.tensor.toArray()).toEqual(W);
      expect(Array.from(layer.weight.grad!.toArray()).map(String)).toEqual(g);
      expect(opt.sgd.stateDict().tensors['fc.weight/momentum_buffer']!.toArray()).toEqual(momentum);
      opt.dispose();
    });
});

// The micro-batches' losses left on the device (a forward's lossValue) ride in the step record:
// the step resolves them with its one read, and a non-finite one refuses the step before the
// statistics are folded in or anything is applied — on a refresh step (read before the
// decompositions) and between refreshes alike.
describe('K-FAC with a non-finite loss left on the device', () => {
  const lossOf = (v: number): DeviceValue => {
    const d = new DeviceValue('cpu');
    d.tensor.set(new Float32Array(new Float64Array([v]).buffer));
    return d;
  };
  for (const method of ['ekfac', 'eigen', 'inverse'] as const)
    for (const badAt of [2, 3])
      it(`${method}, bad loss at step ${badAt}${badAt % 3 === 0 ? ' (a refresh)' : ''}: refused naming the loss, and the run goes on as if the batch never came`, () => {
        const make = () => denseRun({ method, inverseEvery: 3 });
        const hit = make();
        const clean = make();
        for (const r of [hit, clean])
          for (let s = 0; s < badAt; s++) {
            r.feed(10 + 4 * s);
            const l = lossOf(0.6931471805599453 + s);
            r.opt.step({ batchSize: R, losses: [l] });
            expect(l.pending).toBe(false);
            expect(l.value()).toBe(0.6931471805599453 + s); // exact: a float64 through the record
          }
        // two micro-batches, the second's loss Inf (statistics and gradients finite)
        hit.feed(100);
        hit.opt.capture({ batchSize: R });
        hit.feed(100);
        const W = hit.layer.weight.tensor.toArray();
        const momentum = hit.opt.sgd.stateDict().tensors['fc.weight/momentum_buffer']?.toArray();
        const losses = [lossOf(1.5), lossOf(Infinity)];
        let err: unknown;
        try {
          hit.opt.step({ batchSize: R, losses });
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(NotFiniteError);
        expect((err as NotFiniteError).message).toBe('the loss of micro-batch 2 is Infinity: the step was refused and nothing applied');
        expect((err as NotFiniteError).argument).toBe('loss');
        expect(losses.map((l) => l.value())).toEqual([1.5, Infinity]);
        expect(hit.layer.weight.tensor.toArray()).toEqual(W);
        expect(hit.opt.sgd.stateDict().tensors['fc.weight/momentum_buffer']?.toArray()).toEqual(momentum);
        expect(hit.opt.preconditioner.pendingCaptures).toBe(0);
        for (let s = 0; s < 4; s++)
          for (const r of [hit, clean]) {
            r.feed(200 + 4 * s);
            r.opt.step({ batchSize: R, losses: [lossOf(1)] });
          }
        expect(hit.layer.weight.tensor.toArray()).toEqual(clean.layer.weight.tensor.toArray());
        expect(hit.layer.bias!.tensor.toArray()).toEqual(clean.layer.bias!.tensor.toArray());
        hit.opt.dispose();
        clean.opt.dispose();
      });

  it('a loss already read is refused (it cannot ride in the record): InvalidArgumentError naming losses', () => {
    const { opt, feed } = denseRun({});
    feed(1);
    const l = lossOf(2);
    l.value();
    expect(() => opt.step({ batchSize: R, losses: [l] })).toThrow(InvalidArgumentError);
    expect(() => opt.step({ batchSize: R, losses: [l] })).toThrow(/losses: expected an array of device values not yet read/);
    opt.dispose();
  });
});
