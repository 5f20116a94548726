/**
 * bf16 activations in GPT-2 under the CUDA emulation: the fused c_attn output split into q, k, v
 * by time slices of its bf16 rows (and the gradients written back by kv_cache_write), learned
 * positions, LayerNorm, GELU (tanh), the tied LM head's bf16 logits, the last token's rows widened
 * to float32 for a classification head, and greedy generation through a bf16 KV cache.
 *
 * Bounds as test/cuda/cuda-emulation-bf16-train.test.ts argues (each stored activation rounded
 * once, u = 2⁻⁸): three K-FAC + LoRA steps within 2u of the float32 CPU run's loss and 8u of its
 * adapters (max |Δ| / max |value| per tensor), and further from it than the float32 emulation
 * is (it agrees to 2e-5), so the rounding happened; the cached decoder reads the same bf16 keys
 * and values as a full forward, so its greedy ids equal those of full forwards. A split that
 * mixed up q, k and v, or a path that read bf16 as float32, is off by O(1).
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createGpt2, type TransformerModel } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { emulationPossible, greedyBothWays, readF32 } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';

type Model = Module & TransformerModel & { forward(b: unknown): { loss?: number | null; logits: Tensor }; backward(): void };
const U = 2 ** -8;
// head dimension 16: attention on tensor cores in bf16
const cfg = { vocabSize: 32, hiddenSize: 32, numLayers: 2, numHeads: 2, maxPositions: 24 };

const host = readF32;

function run(device: 'cpu' | 'cuda', activations: 'float32' | 'bfloat16', task: 'causal-lm' | 'sequence-classification') {
  using m = createGpt2(cfg, { seed: 6, activations, task, ...(task === 'causal-lm' ? {} : { numLabels: 3 }) }) as unknown as Model;
  if (device === 'cuda') m.to('cuda');
  applyLora(m, { targetModules: ['c_attn', 'c_proj', 'c_fc'], r: 4, alpha: 8, ...(task === 'causal-lm' ? {} : { modulesToSave: ['score'] }) });
  const layers = kfacLayersForLora(m, { heads: true });
  const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2, damping: 1e-3 });
  // Classification: 40 sequences, so the head's 32×32 input factor has full rank. With 3 pooled
  // rows its eigenbasis is arbitrary in a 29-dimensional null space, and EKFAC's moments in that
  // basis make even the float32 emulation differ from the CPU by 3.6e-2 on score.weight (at 40:
  // 1.6e-6, and bf16 1.7e-3).
  const B = task === 'causal-lm' ? 3 : 40, T = 12;
  const inputIds = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % cfg.vocabSize);
  const attentionMask = Float32Array.from({ length: B * T }, (_, i) => (i === B * T - 1 ? 0 : 1));
  const labels = task === 'causal-lm' ? Int32Array.from(inputIds, (v, i) => (i % 5 === 0 ? -100 : v)) : Int32Array.from({ length: B }, (_, i) => i % 3);
  const losses: number[] = [];
  let logits = '';
  for (let i = 0; i < 3; i++) {
    m.zeroGrad();
    const o = m.forward({ inputIds, shape: [B, T], attentionMask, labels });
    losses.push(o.loss!);
    logits = o.logits.dtype;
    m.backward();
    opt.step({ batchSize: B });
  }
  opt.dispose();
  const params = new Map<string, Float32Array>();
  for (const p of m.parameters()) if (p.trainable) params.set(p.name, host(p.tensor));
  return { losses, logits, params };
}

describe.skipIf(!emulationPossible())('GPT-2 with bf16 activations (CUDA emulation)', () => {
  beforeAll(() => native()._cudaEmulation());

  test.each([
    ['causal-lm', 'bfloat16'],
    ['sequence-classification', 'float32'],
  ] as const)('%s: three K-FAC + LoRA steps track the float32 CPU run (logits %s)', (task, logitsDtype) => {
    const c = run('cpu', 'float32', task), e = run('cuda', 'bfloat16', task);
    expect(e.logits).toBe(logitsDtype);
    expect(c.losses[2]).not.toBe(c.losses[0]);
    e.losses.forEach((l, i) => expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(2 * U));
    let worst = 0;
    for (const [n, a] of c.params) worst = Math.max(worst, maxRel(e.params.get(n)!, a));
    console.log(`GPT-2 ${task}, bf16 vs float32: loss ${e.losses.map((l, i) => (Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!)).toExponential(2)).join(', ')}; parameters ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(8 * U);
    expect(worst).toBeGreaterThan(1e-4);
  });

  test('the split of c_attn into q, k, v is exact: float32 on the emulated device gives the CPU loss to float32 rounding', () => {
    const c = run('cpu', 'float32', 'causal-lm'), e = run('cuda', 'float32', 'causal-lm');
    e.losses.forEach((l, i) => expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(1e-6));
  });

  test('greedy generation through a bf16 KV cache: the ids of full forwards, the cache in bf16', () => {
    using m = createGpt2(cfg, { seed: 9, activations: 'bfloat16', initStd: 0.2 }) as unknown as Model;
    m.to('cuda');
    m.eval();
    using cache = m.createCache(1, 8);
    expect(cache.layers[0]!.k.dtype).toBe('bfloat16');
    const { cached, full } = greedyBothWays(m, cfg.vocabSize, [3, 17, 5], 4);
    expect(cached).toEqual(full);
  });
});
