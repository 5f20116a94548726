/**
 * Prefix tuning on the device. The join of the learned keys/values in front of a layer's own is
 * native ops (kv_cache_write to join, time_slice — its reverse — to split the gradient and to
 * pick a layer's columns out of the prefix rows), so it runs on a cuda device. Checked here under
 * the CUDA emulation: the time_slice kernel's body against a float64 reference and the CPU on odd
 * sizes, its bad input, and K-FAC + prefix-tuning steps of a tiny LLaMA (GQA, RoPE, a padded row)
 * and GPT-2, with and without PEFT's projection MLP, that follow the CPU; T5's decoder
 * self-attention prefix in PEFT's cache layout (two layers: both read the same key/value blocks,
 * so their gradients add on the device), whose steps and greedy generation follow the CPU.
 *
 * Tolerance: as test/cuda/cuda-emulation-train.test.ts argues (the emulated kernels differ from
 * the CPU's only in float32 rounding: libm exp, tree sums in double): losses to 1e-6 relative,
 * the prefix parameters (max |Δ| / max |value| per tensor) to 2e-5 after three steps, with the
 * eigen method (EKFAC, the default, grows that rounding beyond such a bound: see there).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { beforeAll, describe, expect, it, test } from 'vitest';

import { InvalidArgumentError, ShapeError } from '../../lib/errors.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createGpt2, createLlama, createT5, type Seq2SeqBatch, type T5Model } from '../../lib/models/index.js';
import { generateSeq2Seq } from '../../lib/models/t5-generate.js';
import { native } from '../../lib/native/loader.js';
import * as F from '../../lib/nn/functional.js';
import type { Module } from '../../lib/nn/module.js';
import { loadPrefixTuning, savePrefixTuning } from '../../lib/peft/prefix-io.js';
import { applyPrefixTuning } from '../../lib/peft/prefix.js';
import { kfacLayersForPrefix } from '../../lib/peft/prefix-kfac.js';
import { emulationPossible, nanT, onBoth, put } from '../support/emulation.js';
import { maxRel, randomF32 } from '../support/helpers.js';

type Model = Module & { forward(b: unknown): { loss?: number | null }; backward(): void };

describe.skipIf(!emulationPossible())('prefix tuning under the CUDA emulation', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each([
    [1, 7, 1, 1, 5, 0],
    [3, 33, 7, 3, 5, 26],
    [2, 9, 4, 1, 129, 3],
    [5, 1, 1, 2, 7, 0],
  ])('time_slice B=%i Tsrc=%i T=%i H=%i D=%i offset=%i: every element of dst, the float64 reference and the CPU bit for bit', (B, Ts, T, H, D, off) => {
    const src = randomF32(B * Ts * H * D, Ts + D);
    const want = new Float64Array(B * T * H * D);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let k = 0; k < H * D; k++) want[(b * T + t) * H * D + k] = src[((b * Ts) + off + t) * H * D + k]!;
    onBoth((dev) => [F.timeSlice(put(src, [B, Ts, H, D], dev), nanT([B, T, H, D], dev), off)], [want], 'time_slice', 0, 0, true);
  });

  it('time_slice bad input: a window past the end, mismatched shapes, the same memory: typed errors naming the argument', () => {
    for (const dev of ['cpu', 'cuda'] as const) {
      const src = put(randomF32(2 * 5 * 3, 1), [2, 5, 1, 3], dev);
      expect(() => F.timeSlice(src, nanT([2, 3, 1, 3], dev), 3)).toThrow(InvalidArgumentError);
      expect(() => F.timeSlice(src, nanT([2, 3, 1, 3], dev), 3)).toThrow(/offset/);
      expect(() => F.timeSlice(src, nanT([1, 3, 1, 3], dev), 0)).toThrow(ShapeError);
      expect(() => F.timeSlice(src, nanT([2, 3, 3], dev), 0)).toThrow(/dst/);
      expect(() => F.timeSlice(src, src, 0)).toThrow(/src|dst/);
    }
  });

  const run = (device: 'cpu' | 'cuda', make: () => Model, projection: boolean) => {
    using m = make();
    if (device === 'cuda') m.to('cuda');
    const s = applyPrefixTuning(m, { numVirtualTokens: 3, prefixProjection: projection, encoderHiddenSize: 6, seed: 4 });
    expect(s.encoder.embedding.weight.tensor.device).toBe(device);
    const opt = new KFAC(kfacLayersForPrefix(m), [], { lr: 0.05, momentum: 0.9, inverseEvery: 2, method: 'eigen' });
    const ids = Int32Array.from({ length: 14 }, (_, i) => (i * 5 + 2) % 24);
    const mask = Float32Array.from({ length: 14 }, (_, i) => (i >= 12 ? 0 : 1)); // the second row padded at its end
    const labels = Int32Array.from(ids, (v, i) => (mask[i] ? v : -100));
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      m.zeroGrad();
      losses.push(m.forward({ inputIds: ids, shape: [2, 7], labels, attentionMask: mask }).loss!);
      m.backward();
      opt.step({ batchSize: 2 });
    }
    opt.dispose();
    const params = new Map<string, Float32Array>();
    for (const p of m.parameters()) if (p.name.includes('prompt_encoder')) params.set(p.name, p.tensor.device === 'cpu' ? p.tensor.toArray() : p.tensor.to('cpu').toArray());
    return { losses, params };
  };

  const llama = () => createLlama({ vocabSize: 24, hiddenSize: 16, intermediateSize: 20, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 3 }) as unknown as Model;
  const gpt2 = () => createGpt2({ vocabSize: 24, hiddenSize: 8, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed: 7 }).eval() as unknown as Model;

  test.each([
    ['LLaMA (GQA, RoPE)', llama, false],
    ['LLaMA (GQA, RoPE)', llama, true],
    ['GPT-2', gpt2, false],
  ] as const)('%s, projection %s: three K-FAC + prefix steps follow the CPU (losses 1e-6, prefix 2e-5)', (_name, make, projection) => {
    const c = run('cpu', make, projection), e = run('cuda', make, projection);
    expect(c.losses.every(Number.isFinite)).toBe(true);
    expect(c.losses[2]).not.toBe(c.losses[0]); // the steps moved the prefix
    for (let i = 0; i < 3; i++) expect(Math.abs(e.losses[i]! - c.losses[i]!) / Math.abs(c.losses[i]!)).toBeLessThan(1e-6);
    expect([...e.params.keys()]).toEqual([...c.params.keys()]);
    expect(c.params.size).toBe(projection ? 5 : 1);
    let worst = 0;
    for (const [name, a] of c.params) worst = Math.max(worst, maxRel(e.params.get(name)!, a));
    expect(worst).toBeLessThan(2e-5);
  });

  test.each([false, true])("T5 (PEFT's cache layout, layers sharing blocks), projection %s: three K-FAC + prefix steps and greedy generation follow the CPU", (projection) => {
    const batch: Seq2SeqBatch = {
      inputIds: Int32Array.from([5, 9, 3, 17, 22, 8, 4, 11, 7, 2, 2, 2]),
      shape: [2, 6],
      attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
      decoderInputIds: Int32Array.from([0, 12, 4, 19, 0, 6, 13, 0]),
      labels: Int32Array.from([12, 4, 19, 1, 6, 13, 1, -100]),
    };
    const t5run = (device: 'cpu' | 'cuda') => {
      using m = createT5({ vocabSize: 30, hiddenSize: 12, intermediateSize: 16, numLayers: 2, numHeads: 2, numBuckets: 6, maxDistance: 8, dropout: 0 }, { seed: 5, initStd: 0.3 }) as T5Model & Disposable;
      if (device === 'cuda') m.to('cuda');
      const s = applyPrefixTuning(m, { numVirtualTokens: 3, prefixProjection: projection, encoderHiddenSize: 8, seed: 4 });
      expect(s.encoder.embedding.weight.tensor.device).toBe(device);
      const opt = new KFAC(kfacLayersForPrefix(m), [], { lr: 0.05, momentum: 0.9, inverseEvery: 2, method: 'eigen' });
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        m.zeroGrad();
        losses.push(m.forward(batch).loss!);
        m.backward();
        opt.step({ batchSize: 2 });
      }
      opt.dispose();
      const values = s.values();
      const ids = Array.from(generateSeq2Seq(m, [5, 9, 3, 17], { maxNewTokens: 5, eosTokenId: null }));
      return { losses, values, ids };
    };
    const c = t5run('cpu'), e = t5run('cuda');
    expect(c.losses.every(Number.isFinite)).toBe(true);
    expect(c.losses[2]).not.toBe(c.losses[0]);
    for (let i = 0; i < 3; i++) expect(Math.abs(e.losses[i]! - c.losses[i]!) / Math.abs(c.losses[i]!)).toBeLessThan(1e-6);
    expect(maxRel(e.values, c.values)).toBeLessThan(2e-5);
    expect(e.ids).toEqual(c.ids);
  });

  test('a prefix on the device is saved in the PEFT format and loads back with the same loss', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfac-prefix-dev-'));
    try {
      const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 5 + 2) % 24);
      const b = { inputIds: ids, shape: [2, 5], labels: ids };
      using m = llama();
      m.to('cuda');
      const s = applyPrefixTuning(m, { numVirtualTokens: 2, prefixProjection: true, encoderHiddenSize: 6, seed: 9 });
      const loss = m.forward(b).loss!;
      const values = s.values();
      savePrefixTuning(m, dir);
      using c = llama();
      const t = loadPrefixTuning(c, dir); // back on the CPU: the projection's output as the table
      expect(Array.from(t.encoder.embedding.weight.tensor.toArray())).toEqual(Array.from(values));
      expect(Math.abs(c.forward(b).loss! - loss) / loss).toBeLessThan(1e-5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
