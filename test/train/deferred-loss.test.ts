/**
 * The loss left on the device (docs/KFAC.md#one-read-per-step): a cross-entropy head writes its
 * loss into a DeviceValue instead of downloading it, `out.loss` reads it on demand, and K-FAC's
 * step copies the micro-batches' losses into its step record, so the Trainer's K-FAC step waits
 * for the device once. The CPU takes the same path: here it must log the same losses and leave
 * the same weights, bit for bit, as the Trainer reading every loss itself, and a loss that turns
 * NaN is a divergence with nothing applied.
 */
import { describe, expect, it } from 'vitest';

import { NotFiniteError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createLlama, type Batch, type TransformerModel } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { DeviceValue } from '../../lib/tensor/device-value.js';
import { gradsOf, lossAndBackwardOf, lossOf } from '../../lib/train/tasks.js';
import { type StepOptimizer, Trainer, type TrainerEvent, type TrainerTask } from '../../lib/train/trainer.js';
import { emulationPossible } from '../support/emulation.js';

const V = 32;
const tiny = (): TransformerModel => createLlama({ vocabSize: V, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5 });

function batches(n: number): Batch[] {
  let s = 7;
  return Array.from({ length: n }, () => {
    const ids = Int32Array.from({ length: 2 * 10 }, () => {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      return s % V;
    });
    return { inputIds: ids, shape: [2, 10] as const, labels: ids };
  });
}

class LmTask implements TrainerTask<Batch> {
  constructor(
    readonly model: TransformerModel,
    readonly data: Batch[],
  ) {}
  batches(): Iterable<Batch> {
    return this.data;
  }
  lossAndBackward(b: Batch) {
    return lossAndBackwardOf(this.model, b, 2);
  }
  loss(b: Batch): number {
    return lossOf(this.model, b);
  }
  zeroGrad(): void {
    this.model.zeroGrad();
  }
  grads(): Tensor[] {
    return gradsOf(this.model as never);
  }
  evaluate() {
    return { loss: lossOf(this.model, this.data[0]!), metrics: {} };
  }
}

/** A K-FAC + LoRA run of `steps` through the Trainer; `reads`: whether the step reads the losses (K-FAC's own) or the Trainer does. */
async function run(reads: boolean, steps: number, accum: number, poisonAfter?: number) {
  using model = tiny();
  applyLora(model, { targetModules: ['q_proj', 'v_proj'], r: 2, alpha: 4 });
  const layers = kfacLayersForLora(model);
  const kfac = new KFAC(layers, untrackedParameters(model, layers), { lr: 0.05, inverseEvery: 2 });
  const opt: StepOptimizer = reads
    ? kfac
    : { step: (c) => kfac.step({ batchSize: c.batchSize }), capture: (c) => kfac.capture(c), wantsLoss: () => kfac.wantsLoss(), observeLoss: (o) => kfac.observeLoss(o) };
  const lora = () => model.parameters().filter((p) => p.name.includes('lora_'));
  let before: Float32Array[] = [];
  const fit = await new Trainer(new LmTask(model, batches(steps * accum)), opt, {
    maxSteps: steps,
    gradAccumulation: accum,
    handleSigint: false,
    onEvent: (e: TrainerEvent) => {
      if (e.kind !== 'step' || e.step !== poisonAfter) return;
      before = lora().map((p) => p.tensor.toArray());
      // the next forward's logits turn NaN: an embedding row every batch uses
      const emb = model.parameters().find((p) => p.name.endsWith('embed_tokens.weight'))!.tensor;
      const w = emb.toArray();
      w.fill(NaN, 0, w.length);
      emb.set(w);
    },
  }).fit();
  const out = { fit, weights: lora().map((p) => p.tensor.toArray()), before };
  kfac.dispose();
  return out;
}

describe('the loss left on the device', () => {
  it('DeviceValue: read once (one download on a device), or resolved by whoever read it; then its tensor is freed', () => {
    const v = new DeviceValue('cpu');
    v.tensor.set(new Float32Array(new Float64Array([Math.PI]).buffer));
    expect(v.pending).toBe(true);
    expect(v.value()).toBe(Math.PI);
    expect(v.pending).toBe(false);
    expect(() => v.tensor).toThrow(/already read/);
    const w = new DeviceValue('cpu');
    w.resolve(2.25);
    expect(w.value()).toBe(2.25);
    expect(() => w.tensor).toThrow(/already read/);
  });

  it.skipIf(!emulationPossible())('on the emulated cuda device a forward does not wait for its loss; out.loss downloads it once', () => {
    native()._cudaEmulation();
    using m = tiny();
    m.to('cuda');
    const b = batches(1)[0]!;
    const down = () => native()._loopbackTransfers().downloads;
    const d0 = down();
    const out = m.forward(b);
    expect(down()).toBe(d0);
    expect(out.lossValue!.pending).toBe(true);
    const loss = out.loss!;
    expect(down()).toBe(d0 + 1);
    expect(out.loss).toBe(loss);
    expect(down()).toBe(d0 + 1);
    using c = tiny();
    expect(Math.abs(c.forward(b).loss! - loss)).toBeLessThan(1e-5 * loss);
  });

  it('a forward whose logits are not finite returns; its loss throws NotFiniteError when read, and a training micro-batch reports NaN', () => {
    using m = tiny();
    const emb = m.parameters().find((p) => p.name.endsWith('embed_tokens.weight'))!.tensor;
    emb.set(new Float32Array(emb.size).fill(NaN));
    const b = batches(1)[0]!;
    const out = m.forward(b);
    expect(() => out.loss).toThrow(NotFiniteError);
    expect(() => out.loss).toThrow(/logits: expected finite values, got a row whose loss is NaN/);
    expect(Number.isNaN(lossAndBackwardOf(m, b, 2).loss)).toBe(true);
    expect(Number.isNaN(lossOf(m, b))).toBe(true);
  });

  for (const accum of [1, 2])
    it(`K-FAC reading the losses in its step record: the Trainer's losses and weights bit for bit (gradAccumulation ${accum})`, async () => {
      const own = await run(true, 5, accum);
      const host = await run(false, 5, accum);
      const losses = (r: typeof own) => r.fit.history.filter((e) => e.kind === 'step').map((e) => e.loss);
      expect(losses(own)).toEqual(losses(host));
      expect(losses(own).every(Number.isFinite)).toBe(true);
      expect(own.weights).toEqual(host.weights);
    });

  it('a loss that turns NaN is a divergence: the step is refused with nothing applied, the NaN logged', async () => {
    for (const reads of [true, false]) {
      const r = await run(reads, 5, 1, 2);
      expect(r.fit.diverged, `reads ${reads}`).toBe(true);
      const last = r.fit.history.at(-1)!;
      expect(last.kind).toBe('step');
      expect(Number.isNaN(last.loss)).toBe(true);
      // read by the step: refused by its record (the statistics' flag covers the loss); read by the Trainer: never stepped
      const why = (last as { optimizer: { error?: string } }).optimizer.error;
      if (reads) expect(why).toMatch(/hold NaN or Inf|the loss is NaN/);
      else expect(why).toBeUndefined();
      expect(r.fit.state.step).toBe(2);
      expect(r.weights).toEqual(r.before);
    }
  });
});
