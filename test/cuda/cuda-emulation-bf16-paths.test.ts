/**
 * bf16 activations on the paths beyond a plain training step, under the CUDA emulation: the
 * byte-moving ops they need (copy, kv_cache_write, time_slice) in bfloat16, gradient
 * checkpointing (the saved block inputs and gradients keep the activations' storage), greedy
 * generation through a bf16 KV cache, prefix tuning and prompt tuning (their float32 parameters
 * meet the bf16 stream through one rounding forward and an exact widening backward).
 *
 * Bounds. Copies are exact. Checkpointing recomputes the same operations on the same values, so
 * loss and gradients equal the plain bf16 run bit for bit. The cached decoder reads the same bf16
 * keys and values as a full forward, so its greedy ids equal those of full forwards. Prefix and
 * prompt steps track the float32 CPU run as test/cuda/cuda-emulation-bf16-train.test.ts argues:
 * losses within 2u relative (u = 2^-8), the PEFT parameters within 8u of their size after three
 * steps; a path that read bf16 as float32 or dropped a cast is off by O(1).
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { DTypeError } from '../../lib/errors.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { generate } from '../../lib/models/generate.js';
import { createLlama, type TransformerModel } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import * as F from '../../lib/nn/functional.js';
import type { Module } from '../../lib/nn/module.js';
import { copy } from '../../lib/ops/index.js';
import { untrackedTrainable } from '../../lib/peft/bitfit-kfac.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { applyPrefixTuning } from '../../lib/peft/prefix.js';
import { kfacLayersForPrefix } from '../../lib/peft/prefix-kfac.js';
import { applyPromptTuning } from '../../lib/peft/prompt.js';
import { kfacLayersForPrompt } from '../../lib/peft/prompt-kfac.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { emulationPossible, greedyBothWays, readF32 } from '../support/emulation.js';
import { maxRel, randomF32 } from '../support/helpers.js';

type Model = Module & { forward(b: unknown): { loss?: number | null; logits: Tensor }; backward(): void };
const U = 2 ** -8;
const cfg = { vocabSize: 24, hiddenSize: 16, intermediateSize: 20, numLayers: 2, numHeads: 4, numKvHeads: 2 };

const host = readF32;
const bf16 = (data: Float32Array, shape: number[]): Tensor => {
  using t = Tensor.from(data, shape);
  return t.to('cuda', { dtype: 'bfloat16' });
};

const ids = Int32Array.from({ length: 14 }, (_, i) => (i * 5 + 2) % 24);
const mask = Float32Array.from({ length: 14 }, (_, i) => (i >= 12 ? 0 : 1));
const labels = Int32Array.from(ids, (v, i) => (mask[i] ? v : -100));
const batch = { inputIds: ids, shape: [2, 7] as const, labels, attentionMask: mask };

describe.skipIf(!emulationPossible())('bf16 activations: checkpointing, generation, prefix and prompt tuning (CUDA emulation)', () => {
  beforeAll(() => native()._cudaEmulation());

  test('copy, kv_cache_write and time_slice move bf16 exactly; mixed dtypes and bf16 on the CPU are DTypeErrors', () => {
    const [B, T, Tc, H, D, off] = [2, 3, 7, 3, 5, 2];
    const src = bf16(randomF32(B * T * H * D, 11), [B, T, H, D]);
    const s = host(src);
    using cache = Tensor.zeros([B, Tc, H, D], { device: 'cuda', dtype: 'bfloat16' });
    F.kvCacheWrite(src, cache, off);
    const c = host(cache);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < Tc; t++)
        for (let k = 0; k < H * D; k++) {
          const want = t >= off && t < off + T ? s[(b * T + t - off) * H * D + k]! : 0;
          expect(c[(b * Tc + t) * H * D + k]).toBe(want);
        }
    using back = Tensor.zeros([B, T, H, D], { device: 'cuda', dtype: 'bfloat16' });
    F.timeSlice(cache, back, off);
    expect(host(back)).toEqual(s);
    using dup = Tensor.empty([B, T, H, D], { device: 'cuda', dtype: 'bfloat16' });
    copy(src, dup);
    expect(dup.dtype).toBe('bfloat16');
    expect(host(dup)).toEqual(s);
    using f32cache = Tensor.zeros([B, Tc, H, D], { device: 'cuda' });
    expect(() => F.kvCacheWrite(src, f32cache, 0)).toThrow(DTypeError);
    expect(() => F.kvCacheWrite(src, f32cache, 0)).toThrow(/cache/);
    using f32dst = Tensor.zeros([B, T, H, D], { device: 'cuda' });
    expect(() => F.timeSlice(cache, f32dst, 0)).toThrow(/dst/);
    expect(() => copy(src, f32dst)).toThrow(DTypeError);
    using cpuSrc = src.to('cpu');
    using cpuCache = Tensor.zeros([B, Tc, H, D], { dtype: 'bfloat16' });
    expect(() => F.kvCacheWrite(cpuSrc, cpuCache, 0)).toThrow(DTypeError);
    src.dispose();
  });

  // Sequence classification: the pooled rows are picked from the bf16 hidden state widened to
  // float32 (models/common.ts RowGather), so the score head and the loss stay float32; q_proj and
  // v_proj read one input and share one K-FAC input factor, though each LoRA branch reads its own
  // float32 copy of the bf16 input (lib/peft/kfac.ts). Bound as the file's header argues.
  test('classification with LoRA on q_proj and v_proj (one shared K-FAC factor): three steps track the float32 CPU run', () => {
    const labels = Int32Array.of(1, 0);
    const mask = Float32Array.from({ length: 2 * 9 }, (_, i) => (i === 17 ? 0 : 1));
    const ids = Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 5 + 2) % cfg.vocabSize);
    const run = (device: 'cpu' | 'cuda', activations: 'float32' | 'bfloat16') => {
      using m = createLlama(cfg, { seed: 4, activations, task: 'sequence-classification', numLabels: 2 }) as unknown as Model;
      if (device === 'cuda') m.to('cuda');
      applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 2, alpha: 4, modulesToSave: ['score'] });
      const layers = kfacLayersForLora(m, { heads: true });
      expect(layers.filter((l) => l.inputKey !== undefined).length, 'q/v lora_A share their input factor').toBe(2 * cfg.numLayers);
      const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2, damping: 1e-3 });
      const losses: number[] = [];
      let logits = '';
      for (let i = 0; i < 3; i++) {
        m.zeroGrad();
        const o = m.forward({ inputIds: ids, shape: [2, 9], attentionMask: mask, labels });
        losses.push(o.loss!);
        logits = o.logits.dtype;
        m.backward();
        opt.step({ batchSize: 2 });
      }
      opt.dispose();
      const params = new Map<string, Float32Array>();
      for (const p of m.parameters()) if (p.trainable) params.set(p.name, host(p.tensor));
      return { losses, logits, params };
    };
    const c = run('cpu', 'float32'), e = run('cuda', 'bfloat16');
    expect(e.logits, 'the head reads float32 rows').toBe('float32');
    e.losses.forEach((l, i) => expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(2 * U));
    let worst = 0;
    for (const [n, a] of c.params) worst = Math.max(worst, maxRel(e.params.get(n)!, a));
    expect(worst).toBeLessThan(8 * U);
    expect(worst).toBeGreaterThan(0);
  });

  test('gradient checkpointing: loss and LoRA gradients equal the plain bf16 run bit for bit', () => {
    const run = (checkpointing: boolean) => {
      using m = createLlama(cfg, { seed: 3, activations: 'bfloat16', checkpointing }) as unknown as Model;
      m.to('cuda');
      applyLora(m, { targetModules: ['q_proj', 'v_proj', 'down_proj'], r: 2, alpha: 4 });
      m.zeroGrad();
      const o = m.forward(batch);
      m.backward();
      const grads = new Map<string, Float32Array>();
      for (const p of m.parameters()) if (p.grad) grads.set(p.name, host(p.grad));
      return { loss: o.loss!, logits: o.logits.dtype, grads };
    };
    const plain = run(false), ck = run(true);
    expect(ck.logits).toBe('bfloat16');
    expect(Number.isFinite(ck.loss)).toBe(true);
    expect(ck.loss).toBe(plain.loss);
    expect(plain.grads.size).toBe(12);
    expect([...ck.grads.keys()]).toEqual([...plain.grads.keys()]);
    for (const [n, g] of plain.grads) {
      if (n.includes('lora_B')) expect(g.some((v) => v !== 0), n).toBe(true); // lora_A's is 0 while B = 0
      expect(ck.grads.get(n), n).toEqual(g);
    }
  });

  test('greedy generation through a bf16 KV cache: the ids of full forwards, the cache in bf16', () => {
    using m = createLlama(cfg, { seed: 9, activations: 'bfloat16', initStd: 0.2 }) as unknown as Model & TransformerModel;
    m.to('cuda');
    m.eval();
    using cache = m.createCache(1, 8);
    expect(cache.layers[0]!.k.dtype).toBe('bfloat16');
    const { cached, full } = greedyBothWays(m, cfg.vocabSize, [3, 17, 5], 4);
    expect(cached).toEqual(full);
  });

  const peftRun = (device: 'cpu' | 'cuda', activations: 'float32' | 'bfloat16', method: 'prefix' | 'prompt') => {
    using m = createLlama(cfg, { seed: 3, activations }) as unknown as Model;
    if (device === 'cuda') m.to('cuda');
    let layers;
    if (method === 'prefix') {
      applyPrefixTuning(m, { numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 6, seed: 4 });
      layers = kfacLayersForPrefix(m);
    } else {
      applyPromptTuning(m, { numVirtualTokens: 3, seed: 2 });
      layers = kfacLayersForPrompt(m);
    }
    const opt = new KFAC(layers, method === 'prompt' ? untrackedTrainable(m, layers) : [], { lr: 0.05, momentum: 0.9, inverseEvery: 2 });
    const losses: number[] = [];
    let logits = '';
    for (let i = 0; i < 3; i++) {
      m.zeroGrad();
      const o = m.forward(batch);
      losses.push(o.loss!);
      logits = o.logits.dtype;
      m.backward();
      opt.step({ batchSize: 2 });
    }
    opt.dispose();
    // greedy decoding through the cache (prefix: the cache starts with the prefix keys/values;
    // prompt: its first step runs the virtual tokens) against full forwards of the growing ids
    m.eval();
    const tm = m as unknown as TransformerModel;
    const prompt = [3, 17, 5];
    const gen = Array.from(generate(tm, prompt, { maxNewTokens: 3 })).slice(-3);
    const seq = [...prompt];
    for (let s = 0; s < 3; s++) {
      const out = m.forward({ inputIds: Int32Array.from(seq), shape: [1, seq.length] }).logits;
      const l = host(out);
      const T = out.shape[1]!;
      const row = l.subarray((T - 1) * cfg.vocabSize, T * cfg.vocabSize);
      seq.push(row.indexOf(Math.max(...row)));
    }
    const params = new Map<string, Float32Array>();
    const dtypes = new Set<string>();
    for (const p of m.parameters())
      if (p.name.includes('prompt_encoder')) {
        params.set(p.name, host(p.tensor));
        dtypes.add(p.tensor.dtype);
      }
    return { losses, params, logits, dtypes: [...dtypes], gen, full: seq.slice(-3) };
  };

  test.each(['prefix', 'prompt'] as const)('%s tuning, three K-FAC steps with bf16 activations track the float32 CPU run (loss 2u, parameters 8u); greedy decoding equals full forwards', (method) => {
    const c = peftRun('cpu', 'float32', method), e = peftRun('cuda', 'bfloat16', method);
    expect(c.gen).toEqual(c.full);
    expect(e.gen).toEqual(e.full);
    expect(e.logits).toBe('bfloat16');
    expect(e.dtypes).toEqual(['float32']);
    expect(c.losses[2]).not.toBe(c.losses[0]);
    for (let i = 0; i < 3; i++) expect(Math.abs(e.losses[i]! - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(2 * U);
    expect([...e.params.keys()]).toEqual([...c.params.keys()]);
    expect(c.params.size).toBeGreaterThan(0);
    for (const [n, a] of c.params) expect(maxRel(e.params.get(n)!, a), n).toBeLessThan(8 * U);
  });
});
