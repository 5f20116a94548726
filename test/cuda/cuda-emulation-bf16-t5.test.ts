/**
 * bf16 activations in T5 under the CUDA emulation: the encoder and the decoder (relative position
 * bias and its gradient in float32, no score scaling, cross-attention, the gated feed-forward,
 * the tied head's d^-0.5 scaling), the encoder output's gradient accumulated by the decoder
 * blocks in bf16 (zeroed by the bf16 fill), prompt tuning's float32 rows and prefix tuning's
 * keys/values rounded once, and
 * decoding through a bf16 self-attention cache and bf16 cross-attention keys/values.
 *
 * Bounds as test/cuda/cuda-emulation-bf16-train.test.ts argues (each stored activation rounded
 * once, u = 2⁻⁸): three K-FAC + LoRA steps within 2u of the float32 CPU run's loss and 8u of its
 * trainable parameters (max |Δ| / max |value| per tensor), and further from it than float32
 * rounding could be (the rounding happened); decoding reads the same bf16 keys and values as a
 * full forward, so greedy ids through the caches equal the argmax of full forwards.
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createT5, type T5Model } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { applyPromptTuning } from '../../lib/peft/prompt.js';
import { kfacLayersForPrompt } from '../../lib/peft/prompt-kfac.js';
import { applyPrefixTuning } from '../../lib/peft/prefix.js';
import { kfacLayersForPrefix } from '../../lib/peft/prefix-kfac.js';
import { untrackedTrainable } from '../../lib/peft/bitfit-kfac.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';

const U = 2 ** -8;
// head dimension 16: attention on tensor cores in bf16. LoRA runs T5 (ReLU feed-forward, the
// tied head scaled by d^-0.5), prompt tuning T5 v1.1 (gated GELU, an untied head).
const cfg = { vocabSize: 32, hiddenSize: 32, intermediateSize: 24, numLayers: 2, numHeads: 2, headDim: 16, numBuckets: 8, maxDistance: 16 };
const v11 = { ...cfg, gated: true };

function run(device: 'cpu' | 'cuda', activations: 'float32' | 'bfloat16', method: 'lora' | 'prompt' | 'prefix') {
  using m = createT5(method === 'lora' ? cfg : v11, { seed: 2, activations }) as T5Model & Disposable;
  if (device === 'cuda') m.to('cuda');
  let layers;
  let extra;
  if (method === 'lora') {
    applyLora(m, { targetModules: ['q', 'v', 'wo'], r: 4, alpha: 8 });
    layers = kfacLayersForLora(m);
    extra = untrackedParameters(m, layers);
  } else if (method === 'prompt') {
    applyPromptTuning(m, { numVirtualTokens: 3, seed: 4 });
    layers = kfacLayersForPrompt(m);
    extra = untrackedTrainable(m, layers);
  } else {
    // the decoder self-attention's prefix (PEFT's cache layout): float32 keys/values rounded once
    applyPrefixTuning(m, { numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 6, seed: 4 });
    layers = kfacLayersForPrefix(m);
    extra = untrackedTrainable(m, layers);
  }
  const opt = new KFAC(layers, extra, { lr: 0.05, momentum: 0.9, inverseEvery: 2, damping: 1e-3 });
  const B = 3, Ts = 9, Tt = 7;
  const inputIds = Int32Array.from({ length: B * Ts }, (_, i) => (i * 7 + 3) % cfg.vocabSize);
  const attentionMask = Float32Array.from({ length: B * Ts }, (_, i) => (i === B * Ts - 1 ? 0 : 1));
  const labels = Int32Array.from({ length: B * Tt }, (_, i) => (i % 6 === 5 ? -100 : (i * 5 + 1) % cfg.vocabSize));
  const losses: number[] = [];
  m.train();
  for (let i = 0; i < 3; i++) {
    m.zeroGrad();
    losses.push(m.forward({ inputIds, shape: [B, Ts], attentionMask, labels }).loss!);
    m.backward();
    opt.step({ batchSize: B });
  }
  opt.dispose();
  const params = new Map<string, Float32Array>();
  for (const p of m.parameters()) if (p.trainable) params.set(p.name, p.tensor.to('cpu', { dtype: 'float32' }).toArray());
  return { losses, params };
}

describe.skipIf(!emulationPossible())('T5 with bf16 activations (CUDA emulation)', () => {
  beforeAll(() => native()._cudaEmulation());

  test('moved to the CPU the model runs in float32 (the float32 model bit for bit), and in bf16 again back on the device', () => {
    using m = createT5(cfg, { seed: 2, activations: 'bfloat16' }) as T5Model & Disposable;
    using f = createT5(cfg, { seed: 2 }) as T5Model & Disposable;
    m.eval(); // no dropout: every forward of a model computes the same thing
    f.eval();
    const B = 2, Ts = 6, Tt = 4;
    const b = { inputIds: Int32Array.from({ length: B * Ts }, (_, i) => (i * 7 + 3) % cfg.vocabSize), shape: [B, Ts] as [number, number], labels: Int32Array.from({ length: B * Tt }, (_, i) => (i * 5 + 1) % cfg.vocabSize) };
    const loss = (x: T5Model) => x.forward(b).loss!;
    expect([m.activations, m.storage]).toEqual(['bfloat16', 'float32']);
    expect(loss(m)).toBe(loss(f));
    m.to('cuda');
    expect(m.storage).toBe('bfloat16');
    const onDevice = loss(m);
    expect(onDevice).not.toBe(loss(f));
    expect(Math.abs(onDevice - loss(f)) / loss(f)).toBeLessThan(2 * U);
    m.to('cpu');
    expect(loss(m)).toBe(loss(f));
  });

  test.each(['lora', 'prompt', 'prefix'] as const)('%s: three K-FAC steps track the float32 CPU run', (method) => {
    const c = run('cpu', 'float32', method), e = run('cuda', 'bfloat16', method);
    expect(c.losses[2]).not.toBe(c.losses[0]);
    e.losses.forEach((l, i) => expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(2 * U));
    let worst = 0;
    for (const [n, a] of c.params) worst = Math.max(worst, maxRel(e.params.get(n)!, a));
    console.log(`T5 ${method}, bf16 vs float32: loss ${e.losses.map((l, i) => (Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!)).toExponential(2)).join(', ')}; parameters ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(8 * U);
    expect(worst).toBeGreaterThan(1e-5);
  });

  test('greedy decoding through the bf16 caches: the argmax of full forwards, step by step', () => {
    using m = createT5(cfg, { seed: 9, activations: 'bfloat16', initStd: 0.2 }) as T5Model & Disposable;
    m.to('cuda');
    m.eval();
    const src = Int32Array.of(3, 17, 5, 9, 1);
    using state = m.startDecoding(src, 1, src.length, null, 6);
    expect(state.self.layers[0]!.k.dtype).toBe('bfloat16');
    expect(state.cross[0]!.k.dtype).toBe('bfloat16');
    const dec = [0];
    const cached: number[] = [], full: number[] = [];
    for (let s = 0; s < 4; s++) {
      const step = m.decodeStep(Int32Array.of(dec[dec.length - 1]!), 1, state).to('cpu', { dtype: 'float32' }).toArray();
      cached.push(step.indexOf(Math.max(...step)));
      const all = m.forward({ inputIds: src, shape: [1, src.length], decoderInputIds: Int32Array.from(dec) } as never).logits.to('cpu', { dtype: 'float32' }).toArray();
      const row = all.subarray((dec.length - 1) * cfg.vocabSize, dec.length * cfg.vocabSize);
      full.push(row.indexOf(Math.max(...row)));
      dec.push(cached[s]!);
    }
    expect(cached).toEqual(full);
  });
});
