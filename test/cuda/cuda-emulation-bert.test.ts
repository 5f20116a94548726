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

function run(kind: Kind, device: 'cpu' | 'cuda', steps: number): { losses: number[]; adapters: Map<string, Float32Array> } {
  const regression = kind === 'roberta';
  using m = createBert(
    { modelType: kind, vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, maxPositions: 24 },
    { seed: 7, initStd: 0.2, ...(regression ? { task: 'regression' as const } : {}) },
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
});
