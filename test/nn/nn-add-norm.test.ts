/**
 * The residual add fused into LayerNorm/RMSNorm (`F.layerNormForward` / `F.rmsNormForward` with
 * `add: { residual, sum }`, the `addNorm` fusion) against its reference, `add` followed by the
 * norm: the same sum and output bit for bit (the sum is rounded to its storage once either way
 * and the norm reads the stored sum), against float64 too, on the CPU and on the emulated cuda
 * device (float32 and bf16 rows); the models built on it (LLaMA, GPT-2, BERT) give the same loss
 * and gradients with the fusion on and off; bad arguments are typed errors naming them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DTypeError, InvalidArgumentError, nn, ShapeError, Tensor } from '../../lib/index.js';
import { createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { add } from '../../lib/ops/index.js';
import { emulationPossible } from '../support/emulation.js';
import { expectClose, input, refLayerNorm, refRmsNorm } from '../support/nn-helpers.js';

const F = nn.functional;
type Dev = 'cpu' | 'cuda';
type DT = 'float32' | 'bfloat16';

const on = (a: Float32Array, shape: number[], dev: Dev, dtype: DT = 'float32'): Tensor => Tensor.from(a, shape).to(dev, { dtype });
const nanOn = (shape: number[], dev: Dev, dtype: DT = 'float32'): Tensor => on(new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), shape, dev, dtype);
const read = (t: Tensor): Float32Array => t.to('cpu', { dtype: 'float32' }).toArray();

/** Fused and unfused runs of one norm on (N, C) rows: sum, out and the statistics. */
function both(kind: 'layer' | 'rms', N: number, C: number, dev: Dev, dtype: DT) {
  const x = input(N * C, N + C, 2).f32, r = input(N * C, N * 3 + C).f32, w = input(C, C + 1).f32, b = input(C, C + 2).f32;
  const s = [N, C];
  const go = (fused: boolean) => {
    const xt = on(x, s, dev, dtype), rt = on(r, s, dev, dtype), wt = on(w, [C], dev), bt = on(b, [C], dev);
    const sum = nanOn(s, dev, dtype), out = nanOn(s, dev, dtype), mean = nanOn([N], dev), rstd = nanOn([N], dev);
    const src = fused ? xt : add(xt, rt, sum);
    const opt = fused ? { residual: rt, sum } : undefined;
    if (kind === 'layer') F.layerNormForward(src, wt, bt, 1e-5, out, mean, rstd, opt);
    else F.rmsNormForward(src, wt, 1e-5, out, rstd, opt);
    return { sum: read(sum), out: read(out), rstd: read(rstd), mean: kind === 'layer' ? read(mean) : null };
  };
  return { fused: go(true), plain: go(false), w, b };
}

function checkBoth(kind: 'layer' | 'rms', N: number, C: number, dev: Dev, dtype: DT) {
  const { fused, plain, w, b } = both(kind, N, C, dev, dtype);
  expect(Array.from(fused.sum), 'sum, bit for bit').toEqual(Array.from(plain.sum));
  expect(Array.from(fused.out), 'out, bit for bit').toEqual(Array.from(plain.out));
  expect(Array.from(fused.rstd), 'rstd, bit for bit').toEqual(Array.from(plain.rstd));
  if (fused.mean) expect(Array.from(fused.mean), 'mean, bit for bit').toEqual(Array.from(plain.mean!));
  // and against float64 from the stored sum: the norm's own tolerance (u for a bf16 out)
  const ref = kind === 'layer' ? refLayerNorm(fused.sum, w, b, N, C, 1e-5) : refRmsNorm(fused.sum, w, N, C, 1e-5);
  expectClose(fused.out, ref, `${kind}norm of the sum vs float64`, 1e-5, dtype === 'bfloat16' ? 2 ** -8 : 1e-5);
}

describe('residual add fused into the norms', () => {
  it.each([
    ['layer', 1, 1],
    ['layer', 7, 129],
    ['rms', 5, 33],
    ['rms', 33, 1000],
  ] as const)('%snorm [%i, %i] on the CPU: the sum and the norm of add-then-norm, bit for bit', (kind, N, C) => checkBoth(kind, N, C, 'cpu', 'float32'));

  it('bad arguments: typed errors naming them, nothing written', () => {
    const s = [3, 8];
    const x = on(input(24, 1).f32, s, 'cpu'), r = on(input(24, 2).f32, s, 'cpu'), w = Tensor.full([8], 1);
    const out = Tensor.zeros(s), rstd = Tensor.zeros([3]), sum = Tensor.zeros(s);
    const call = (o: object) => () => F.rmsNormForward(x, w, 1e-5, out, rstd, o as never);
    expect(call({ residual: r, sum: null })).toThrow(InvalidArgumentError);
    expect(call({ residual: r, sum: Tensor.zeros([3, 7]) })).toThrow(ShapeError);
    expect(call({ residual: Tensor.zeros([2, 8]), sum })).toThrow(ShapeError);
    expect(call({ residual: r, sum: x })).toThrow(/sum/); // sum aliases x
    expect(call({ residual: r, sum: out })).toThrow(/sum/); // sum aliases out
    expect(call({ residual: r.to('cpu', { dtype: 'bfloat16' }), sum })).toThrow(DTypeError);
    expect(() => F.layerNormForward(x, w, null, 1e-5, out, Tensor.zeros([3]), rstd, 7 as never)).toThrow(InvalidArgumentError);
    expect(Array.from(sum.toArray())).toEqual(new Array(24).fill(0));
  });
});

describe.skipIf(!emulationPossible())('residual add fused into the norms, CUDA kernels emulated', () => {
  beforeAll(() => native()._cudaEmulation());
  it.each([
    ['layer', 7, 129, 'float32'],
    ['rms', 33, 1000, 'float32'],
    ['layer', 5, 300, 'bfloat16'],
    ['rms', 9, 77, 'bfloat16'],
  ] as const)('%snorm [%i, %i] %s on the emulated device: add-then-norm bit for bit', (kind, N, C, dtype) => checkBoth(kind, N, C, 'cuda', dtype));
});

type Model = Module & { forward(b: unknown): { loss?: number | null }; backward(): void };

describe('models with the addNorm fusion on and off', () => {
  afterAll(() => nn.setFusions({ addNorm: true }));
  const batch = { inputIds: Int32Array.from({ length: 2 * 7 }, (_, i) => (i * 5 + 1) % 30), shape: [2, 7] as const, labels: Int32Array.of(1, 0) };
  const lm = { ...batch, labels: Int32Array.from({ length: 14 }, (_, i) => (i * 3) % 30) };
  it.each([
    ['llama', () => createLlama({ vocabSize: 30, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 2 }, { seed: 3, initStd: 0.2 }), lm],
    ['gpt2', () => createGpt2({ vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed: 3, initStd: 0.2 }), lm],
    ['bert', () => createBert({ vocabSize: 30, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed: 3, initStd: 0.2 }), batch],
  ] as const)('%s: loss and every gradient equal, bit for bit', (_, make, b) => {
    const run = (fused: boolean) => {
      nn.setFusions({ addNorm: fused });
      using m = make() as unknown as Model;
      m.zeroGrad();
      const loss = m.forward(b).loss!;
      m.backward();
      const grads = new Map<string, number[]>();
      for (const p of m.parameters()) if (p.grad) grads.set(p.name, Array.from(p.grad.toArray()));
      return { loss, grads };
    };
    const f = run(true), u = run(false);
    expect(f.loss).toBe(u.loss);
    expect(f.grads.size).toBeGreaterThan(10);
    expect([...f.grads.keys()]).toEqual([...u.grads.keys()]);
    for (const [n, g] of u.grads) expect(f.grads.get(n), n).toEqual(g);
  });
});
