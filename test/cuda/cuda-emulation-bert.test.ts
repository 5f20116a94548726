/**
 * BERT-family classifiers on the device: a K-FAC + LoRA step of BERT, RoBERTa (regression: the
 * MSE head) and DistilBERT (ReLU pooler head) under the CUDA emulation follows the CPU. The
 * pooler's tanh / the pre-classifier's ReLU run as the act_out op (no host round trip), the CLS
 * row gather is the embedding kernel, the MSE loss downloads the N predictions once.
 * Tolerances as test/cuda/cuda-emulation-train.test.ts (float32 rounding of the emulated kernels):
 * losses to 1e-6, adapters to 2e-5 relative, with the eigen method: EKFAC (the default) grows the
 * kernels' rounding in its steps beyond what such a bound can hold (cuda-emulation-train.test.ts).
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createBert } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';
import { expectClose, input } from '../support/nn-helpers.js';

type Model = Module & { forward(b: unknown): { loss?: number | null }; backward(): void };
type Kind = 'bert' | 'roberta' | 'distilbert';

/** `wide`: hidden 32 in 2 heads (head dimension 16: bf16 attention on tensor cores) instead of 16 in 4; `initStd` of the weights. */
function run(kind: Kind, device: 'cpu' | 'cuda', steps: number, activations: 'float32' | 'bfloat16' = 'float32', wide = false, initStd = 0.2): { losses: number[]; adapters: Map<string, Float32Array> } {
  const regression = kind === 'roberta';
  using m = createBert(
    { modelType: kind, vocabSize: 40, hiddenSize: wide ? 32 : 16, intermediateSize: 24, numLayers: 2, numHeads: wide ? 2 : 4, maxPositions: 24 },
    { seed: 7, initStd, activations, ...(regression ? { task: 'regression' as const } : {}) },
  ) as unknown as Model;
  if (device === 'cuda') m.to('cuda');
  applyLora(m, { targetModules: kind === 'distilbert' ? ['q_lin', 'v_lin'] : ['query', 'value'], r: 4, alpha: 8 });
  const layers = kfacLayersForLora(m);
  const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2, method: 'eigen' });
  const B = 3, T = 8;
  const inputIds = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % 40);
  const attentionMask = Float32Array.from({ length: B * T }, (_, i) => (i === B * T - 1 ? 0 : 1));
  const labels = regression ? Float32Array.of(1.5, -0.5, 0.25) : Int32Array.of(1, 0, 1);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    losses.push(m.forward({ inputIds, shape: [B, T], attentionMask, labels }).loss!);
    m.backward();
    opt.step({ batchSize: B });
  }
  opt.dispose();
  const adapters = new Map<string, Float32Array>();
  for (const p of m.parameters()) if (p.trainable) adapters.set(p.name, device === 'cpu' ? p.tensor.toArray() : p.tensor.to('cpu').toArray());
  return { losses, adapters };
}

describe.skipIf(!emulationPossible())('BERT-family classifiers under the CUDA emulation', () => {
  beforeAll(() => native()._cudaEmulation());

  test.each(['tanh', 'relu'] as const)('%s forward and backward (from the output) vs float64, in place', (kind) => {
    const n = 1000 + 7;
    const x = input(n, 31, 3), d = input(n, 32);
    const f = (v: number): number => (kind === 'tanh' ? Math.tanh(v) : Math.max(0, v));
    const y64 = Float64Array.from(x.f64, f);
    const yf = Float32Array.from(y64);
    const dx64 = Float64Array.from(yf, (y, i) => d.f64[i]! * (kind === 'tanh' ? 1 - y * y : y > 0 ? 1 : 0));
    for (const dev of ['cpu', 'cuda'] as const) {
      const xt = Tensor.from(x.f32, [19, 53]).to(dev);
      const yt = nn.functional.activationForward(xt, Tensor.from(new Float32Array(n).fill(NaN), [19, 53]).to(dev), kind);
      const yh = yt.to('cpu').toArray();
      expectClose(yh, y64, `${kind} forward on ${dev}`, 1e-7, 1e-7);
      const dt = Tensor.from(d.f32, [19, 53]).to(dev);
      const dxh = nn.functional.activationBackward(yt, dt, dt, kind).to('cpu').toArray(); // in place
      expectClose(dxh, dx64, `${kind} backward on ${dev}`, 1e-7, 1e-7);
      nn.functional.activationForward(xt, xt, kind); // in place
      expect(Array.from(xt.to('cpu').toArray()), `${kind} in place on ${dev}`).toEqual(Array.from(yh));
    }
  });

  test.each(['bert', 'roberta', 'distilbert'] as const)('%s: a K-FAC + LoRA step follows the CPU', (kind) => {
    const c = run(kind, 'cpu', 3), e = run(kind, 'cuda', 3);
    expect(c.losses.every(Number.isFinite)).toBe(true);
    expect(c.losses[2]).not.toBe(c.losses[0]);
    for (const [i, l] of e.losses.entries()) expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(1e-6);
    expect(e.adapters.size).toBe(c.adapters.size);
    for (const [name, a] of c.adapters) expect(maxRel(e.adapters.get(name)!, a), name).toBeLessThan(2e-5);
  });

  // bf16 activations (docs/CUDA.md): the embeddings, the residual stream, LayerNorm, attention,
  // GELU and the layers' outputs stored in bf16; the first token's rows widened to float32 for the
  // head, whose pooler, activation, classifier and loss stay float32. Bound as in
  // cuda-emulation-bf16-train.test.ts (each stored activation rounded once, ≈ 12 roundings on the
  // way to the pooled row): the loss within 2u relative, the adapters within 8u of their size,
  // and further from the float32 run than the float32 emulation is (2e-5 above): the rounding
  // happened. Head dimension 4 runs attention on CUDA cores, 16 on tensor cores. Weights at the
  // default init (std 0.02, as the LLaMA test): the float32 cases' std 0.2 makes scores ten times
  // larger, so one rounding of an activation moves the softmax ten times more than the bound
  // assumes (measured there: adapters 2.3–4.6e-2 over dampings 10⁻⁴…10⁻²; here 1.1–1.5e-2).
  test.each([
    ['bert', false],
    ['roberta', false],
    ['distilbert', false],
    ['bert', true],
  ] as const)('%s (head dimension 16: %s), bf16 activations: three K-FAC + LoRA steps track the float32 CPU run', (kind, wide) => {
    const U = 2 ** -8;
    const c = run(kind, 'cpu', 3, 'float32', wide, 0.02), e = run(kind, 'cuda', 3, 'bfloat16', wide, 0.02);
    expect(e.losses.every(Number.isFinite)).toBe(true);
    for (const [i, l] of e.losses.entries()) expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(2 * U);
    let worst = 0;
    for (const [name, a] of c.adapters) worst = Math.max(worst, maxRel(e.adapters.get(name)!, a));
    console.log(`${kind}${wide ? ' (head dim 16)' : ''} bf16 vs float32: loss ${e.losses.map((l, i) => (Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!)).toExponential(2)).join(', ')}; adapters ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(8 * U);
    expect(worst).toBeGreaterThan(1e-4);
  });

  test('asked for bf16 activations, the classifier runs in float32 on the CPU (the float32 model bit for bit) and in bf16 on the device', () => {
    const cfg = { vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, maxPositions: 24 };
    using m = createBert(cfg, { activations: 'bfloat16' }) as unknown as Model;
    using f = createBert(cfg) as unknown as Model;
    m.eval();
    f.eval();
    const b = { inputIds: Int32Array.of(1, 2, 3, 4, 5, 6), shape: [2, 3], labels: Int32Array.of(1, 0) };
    expect(m.forward(b).loss).toBe(f.forward(b).loss);
    m.to('cuda');
    const onDevice = m.forward(b).loss!;
    expect(onDevice).not.toBe(f.forward(b).loss);
    m.to('cpu');
    expect(m.forward(b).loss).toBe(f.forward(b).loss);
    expect(Math.abs(onDevice - f.forward(b).loss!) / f.forward(b).loss!).toBeLessThan(2 ** -7);
  });
});
