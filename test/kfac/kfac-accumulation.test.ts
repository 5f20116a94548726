/**
 * K-FAC statistics are pushed per backward: n micro-batches of b examples give exactly the
 * factors of one batch of n·b (in the preconditioner and through the Trainer); a layer that
 * captures nothing during accumulation is a ConfigError.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { Trainer, type TrainerTask } from '../../lib/train/trainer.js';
import { DenseGradTask, DenseLayer } from '../support/dense-layer.js';
import { maxRel, randomF32 } from '../support/helpers.js';

const rows = (x: Float32Array, d: number, from: number, to: number) => x.slice(from * d, to * d);

describe('K-FAC accumulation', () => {
  for (const sequence of ['per-row', 'expand'] as const)
    it(`n micro-batches of b give the factors of one batch of n·b (${sequence}, with a bias, T = 3 rows per example)`, () => {
      const [din, dout, T, b, n] = [5, 4, 3, 2, 3];
      const N = n * b;
      const X = randomF32(N * T * din, 1);
      // per-example output gradients (of the loss summed over examples): the mean loss over a batch of N has g = ĝ/N
      const Gex = randomF32(N * T * dout, 2);
      const make = () => new DenseLayer('fc', randomF32(dout * din, 3), dout, din, randomF32(dout, 4));
      const one = make();
      const acc = make();
      const pOne = new KfacPreconditioner([one], { sequence, factorDecay: 0, newtonClip: null });
      const pAcc = new KfacPreconditioner([acc], { sequence, factorDecay: 0, newtonClip: null });
      one.setInput(Tensor.from(X, [N * T, din]));
      one.setOutputGrad(Tensor.from(Gex.map((v) => v / N), [N * T, dout]));
      one.setGrads(new Float32Array(dout * din), new Float32Array(dout));
      acc.setGrads(new Float32Array(dout * din), new Float32Array(dout));
      for (let i = 0; i < n; i++) {
        acc.setInput(Tensor.from(rows(X, din, i * b * T, (i + 1) * b * T), [b * T, din]));
        acc.setOutputGrad(Tensor.from(rows(Gex, dout, i * b * T, (i + 1) * b * T).map((v) => v / b), [b * T, dout]));
        pAcc.capture({ batchSize: b });
      }
      expect(pAcc.pendingCaptures).toBe(n);
      const tAcc = pAcc.step({ batchSize: b });
      pOne.step({ batchSize: N });
      expect(tAcc.microBatches).toBe(n);
      const fo = pOne.factors('fc');
      const fa = pAcc.factors('fc');
      expect(maxRel(fa.A, fo.A)).toBeLessThan(2e-6);
      expect(maxRel(fa.G, fo.G)).toBeLessThan(2e-6);
      // and not merely the last micro-batch's factors
      const last = make();
      const pLast = new KfacPreconditioner([last], { sequence, factorDecay: 0, newtonClip: null });
      last.setInput(Tensor.from(rows(X, din, (n - 1) * b * T, N * T), [b * T, din]));
      last.setOutputGrad(Tensor.from(rows(Gex, dout, (n - 1) * b * T, N * T).map((v) => v / b), [b * T, dout]));
      last.setGrads(new Float32Array(dout * din), new Float32Array(dout));
      pLast.step({ batchSize: b });
      expect(maxRel(pLast.factors('fc').A, fo.A)).toBeGreaterThan(1e-2);
    });

  it('a tracked layer that captures nothing in a micro-batch is a ConfigError naming it', () => {
    const a = new DenseLayer('a', randomF32(6, 1), 2, 3);
    const ghost = new DenseLayer('ghost', randomF32(6, 2), 2, 3);
    const p = new KfacPreconditioner([a, ghost], { newtonClip: null });
    a.setInput(Tensor.from(randomF32(12, 3), [4, 3]));
    a.setOutputGrad(Tensor.from(randomF32(8, 4), [4, 2]));
    let err: unknown;
    try {
      p.capture({ batchSize: 4 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(String((err as Error).message)).toMatch(/ghost captured nothing in micro-batch 1/);
    expect(p.pendingCaptures).toBe(0);
  });
});

/** y = W x over a fixed data set; loss ½‖y − t‖² averaged over the batch; one DenseLayer. */
class Regression extends DenseGradTask implements TrainerTask<number[]> {
  readonly layer: DenseLayer;
  readonly X: Float32Array;
  readonly Y: Float32Array;
  constructor(
    readonly batch: number,
    readonly n = 12,
  ) {
    super(3, 4);
    this.layer = new DenseLayer('fc', randomF32(3 * 4, 5), 3, 4);
    this.X = randomF32(n * 4, 6);
    this.Y = randomF32(n * 3, 7);
    this.layer.weight.grad = this.gw;
  }
  *batches(): Iterable<number[]> {
    for (let i = 0; i + this.batch <= this.n; i += this.batch) yield Array.from({ length: this.batch }, (_, k) => i + k);
  }
  lossAndBackward(idx: number[]) {
    const { loss, dy } = this.squaredLoss(idx, this.X, (i, j) => this.Y[i * 3 + j]!);
    this.accumulate(dy);
    return { loss, batchSize: idx.length };
  }
}

describe('K-FAC accumulation through the Trainer', () => {
  it('gradAccumulation = 3 with micro-batches of 2 gives the factors and the step of one batch of 6', async () => {
    const run = async (batch: number, accum: number) => {
      const task = new Regression(batch);
      const opt = new KFAC([task.layer], [], { lr: 0.1, momentum: 0, damping: 1e-2, factorDecay: 0, newtonClip: null });
      const fit = await new Trainer(task, opt, { maxSteps: 1, gradAccumulation: accum, handleSigint: false }).fit();
      const tel = fit.history.find((e) => e.kind === 'step')!;
      return { f: opt.preconditioner.factors('fc'), W: task.layer.weight.tensor.toArray(), tel: (tel as { optimizer: { microBatches: number } }).optimizer };
    };
    const one = await run(6, 1);
    const acc = await run(2, 3);
    expect(one.tel.microBatches).toBe(1);
    expect(acc.tel.microBatches).toBe(3);
    expect(maxRel(acc.f.A, one.f.A)).toBeLessThan(2e-6);
    expect(maxRel(acc.f.G, one.f.G)).toBeLessThan(2e-6);
    expect(maxRel(acc.W, one.W)).toBeLessThan(1e-5);
  });
});
