/**
 * bf16 activations through a whole K-FAC + LoRA step of a tiny LLaMA under the CUDA emulation:
 * hidden states, the residual stream, attention's tensors and the logits stored in bf16, the
 * LoRA branches (cast at their input), K-FAC factors, AdamW state and the loss in float32.
 * Three steps must track the float32 run on the CPU within the bound argued below.
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createLlama } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';

type Model = Module & { forward(b: unknown): { loss?: number | null; logits: Tensor }; backward(): void };

function batch(B: number, T: number, V: number, seed: number) {
  let s = seed;
  const ids = Int32Array.from({ length: B * T }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % V;
  });
  const labels = Int32Array.from(ids, (v, i) => (i % 5 === 0 ? -100 : v));
  return { inputIds: ids, shape: [B, T] as const, labels, attentionMask: Float32Array.from({ length: B * T }, (_, i) => (i === B * T - 1 ? 0 : 1)) };
}

// Head dimension 4 (attention on the CUDA-core bodies) and 16 (bf16 attention on tensor cores,
// native/cuda/nn_attention_tc_body.h, which also rounds P·M and dS to bf16 before its products).
// The wider model gets more tokens (3 × 40 against 2 × 12), so its 32×32 input factors are of
// full rank like the narrower model's, and damping 10⁻²: the damped step's gain 1/λ multiplies
// the activations' rounding, and at 10⁻³ the wider model's adapters sit at the 8u bound below
// with either attention body (3.1e-2 CUDA cores, 2.8e-2 tensor cores); at 10⁻² both are at
// 2.3e-2. The narrower model runs at the class default it was argued at (10⁻⁴).
const SHAPES = {
  'head dim 4': { vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 },
  'head dim 16, tensor-core attention': { vocabSize: 32, hiddenSize: 32, intermediateSize: 24, numLayers: 2, numHeads: 2, numKvHeads: 1 },
};
const TOKENS: Record<keyof typeof SHAPES, [number, number]> = { 'head dim 4': [2, 12], 'head dim 16, tensor-core attention': [3, 40] };
const DAMPING: Record<keyof typeof SHAPES, number> = { 'head dim 4': 1e-4, 'head dim 16, tensor-core attention': 1e-2 };
type Shape = keyof typeof SHAPES;

function run(device: 'cpu' | 'cuda', activations: 'float32' | 'bfloat16', steps: number, shape: Shape = 'head dim 4') {
  using m = createLlama(SHAPES[shape], { seed: 5, activations }) as unknown as Model;
  if (device === 'cuda') m.to('cuda');
  applyLora(m, { targetModules: ['v_proj', 'o_proj', 'up_proj', 'down_proj'], r: 4, alpha: 8 });
  const layers = kfacLayersForLora(m).filter((l) => !l.name.includes('v_proj'));
  const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2, damping: DAMPING[shape] });
  const [B, T] = TOKENS[shape];
  const b = batch(B, T, 32, 3);
  const losses: number[] = [];
  let logitsDtype = '';
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    const o = m.forward(b);
    losses.push(o.loss!);
    logitsDtype = o.logits.dtype;
    m.backward();
    opt.step({ batchSize: B });
  }
  opt.dispose();
  const adapters = new Map<string, Float32Array>();
  const dtypes = new Set<string>();
  for (const p of m.parameters()) {
    if (!p.name.includes('lora_')) continue;
    dtypes.add(p.tensor.dtype);
    adapters.set(p.name, device === 'cpu' ? p.tensor.toArray() : p.tensor.to('cpu').toArray());
  }
  return { losses, adapters, logitsDtype, adapterDtypes: [...dtypes] };
}

describe.skipIf(!emulationPossible())('bf16 activations in training (CUDA emulation)', () => {
  beforeAll(() => native()._cudaEmulation());

  // Bound. Every stored activation is rounded once to bf16 (relative error ≤ u = 2^-8), and a
  // forward of this model stores each hidden state through ~12 roundings on its way to the
  // logits (embedding, 2 × (norm, q/k/v, rope, attention, o_proj, residual, norm, gate/up,
  // swiglu, down, residual), final norm, logits). Independent roundings add in quadrature:
  // ≈ √12·u/√3 ≈ 2u relative on a logit, so the loss (a softmax cross-entropy of logits of size
  // O(0.1), whose derivative in the logits is at most 1 per row) moves by ≪ 2u·max|z| ≈ 1e-3;
  // we allow 2u ≈ 7.8e-3 relative on the loss. The adapters move by lr·(preconditioned
  // gradient): the gradients carry the same ~2u relative noise (backward roundings too), and
  // K-FAC's damped preconditioning is Lipschitz in them, so after three steps the adapters may
  // differ by a few u of their own size; we allow 8u ≈ 3.1e-2 (max |Δ| / max |value| per
  // tensor). A kernel that read bf16 as float32, or skipped a cast, is off by O(1). Attention on
  // tensor cores adds two roundings per layer (P·M and dS): 16 in all, ≈ 2.3u on a logit, and
  // the same bounds hold with room (the loss moves far less than 2u·max|z|).
  test.each(Object.keys(SHAPES) as Shape[])('tiny LLaMA (%s), K-FAC + LoRA, three steps: bf16 activations track the float32 CPU run', (shape) => {
    const U = 2 ** -8;
    const c = run('cpu', 'float32', 3, shape), e = run('cuda', 'bfloat16', 3, shape);
    expect(e.logitsDtype).toBe('bfloat16');
    expect(c.logitsDtype).toBe('float32');
    expect(e.adapterDtypes).toEqual(['float32']);
    expect(e.losses.every(Number.isFinite)).toBe(true);
    expect(c.losses[2]).not.toBe(c.losses[0]);
    const rel = e.losses.map((l, i) => Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!));
    console.log(`bf16-activation emulation vs float32 cpu, loss relative difference per step: ${rel.map((r) => r.toExponential(2)).join(', ')}`);
    for (const r of rel) expect(r).toBeLessThan(2 * U);
    let worst = 0;
    for (const [name, a] of c.adapters) worst = Math.max(worst, maxRel(e.adapters.get(name)!, a));
    console.log(`bf16-activation emulation vs float32 cpu, adapters worst relative difference: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(8 * U);
    expect(worst).toBeGreaterThan(0); // the activations really were rounded
    if (shape !== 'head dim 4') {
      // the tensor-core attention ran: with it switched off the bf16 run differs
      const before = native()._attentionTensorCores(false);
      try {
        expect(run('cuda', 'bfloat16', 3, shape).losses).not.toEqual(e.losses);
      } finally {
        native()._attentionTensorCores(before);
      }
    }
  });

  test('on the CPU a model asked for bf16 activations runs in float32 (the float32 model bit for bit), and bf16 again back on the device', () => {
    const cfg = { vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, numKvHeads: 2 };
    using m = createLlama(cfg, { seed: 5, activations: 'bfloat16' }) as unknown as Model & { embed_tokens: { activations: string; storage: string } };
    using f = createLlama(cfg, { seed: 5 }) as unknown as Model;
    const b = batch(2, 5, 32, 1);
    const logits = (x: Model) => {
      const t = x.forward(b).logits;
      return t.device === 'cpu' ? [...t.toArray()] : [...t.to('cpu', { dtype: 'float32' }).toArray()];
    };
    expect(m.embed_tokens).toMatchObject({ activations: 'bfloat16', storage: 'float32' });
    expect(logits(m)).toEqual(logits(f));
    m.to('cuda');
    expect(m.embed_tokens.storage).toBe('bfloat16');
    const onDevice = logits(m);
    expect(onDevice).not.toEqual(logits(f)); // rounded activations
    m.to('cpu');
    expect(logits(m)).toEqual(logits(f)); // moved back: float32 again, nothing lost
    m.to('cuda');
    expect(logits(m)).toEqual(onDevice);
  });
});
