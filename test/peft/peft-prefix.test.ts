/**
 * Prefix tuning (lib/peft/prefix.ts, prefix-io.ts, prefix-kfac.ts): Python PEFT's PREFIX_TUNING
 * folders (tools/make_peft_prompt_prefix_fixtures.py: grouped-query LLaMA, GPT-2 saved from
 * PEFT's projection MLP, BERT classification with a padded row) load with the same logits;
 * save → load → save is byte-stable; gradients of the table and of the projection MLP by finite
 * differences (decoder and encoder); bad folders and models without attention cores are typed
 * errors that leave the model as it was; the K-FAC block's one-hot factor is I/n and its other
 * factor the mean diagonal block of the dense empirical Fisher; K-FAC steps lower the loss.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, KfacError, ShapeError } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { createBert, createGpt2, createLlama, loadModel } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyPrefixTuning, prefixState, removePrefixTuning } from '../../lib/peft/prefix.js';
import { loadPrefixTuning, savePrefixTuning } from '../../lib/peft/prefix-io.js';
import { kfacLayersForPrefix } from '../../lib/peft/prefix-kfac.js';
import { expectClose, input } from '../support/nn-helpers.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'peft');
const MODELS = join(import.meta.dirname, '..', 'fixtures', 'models');
const BASES = { 'prefix-llama': 'llama-gqa', 'prefix-gpt2': 'gpt2-lm', 'prefix-bert': 'bert-cls' } as const;

interface Expected {
  shape: [number, number];
  inputIds: number[];
  attentionMask: number[] | null;
  logitsShape: number[];
  logits: number[];
}
const expected = (c: string): Expected => JSON.parse(readFileSync(join(FIX, c, 'expected.json'), 'utf8')) as Expected;
const batchOf = (e: Expected) => ({ inputIds: Int32Array.from(e.inputIds), shape: e.shape, attentionMask: e.attentionMask ? Float32Array.from(e.attentionMask) : null });
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const llama = (seed = 5) => createLlama({ vocabSize: 20, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed }).eval();
const gpt2 = (seed = 1) => createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed }).eval();
const bert = (seed = 1) => createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed }).eval();
const batch = { inputIds: Int32Array.from([1, 4, 7, 2, 9, 3, 5, 0, 11, 6]), shape: [2, 5] as const, labels: Int32Array.from([4, 7, 2, 9, 3, 5, 0, 11, 6, 1]) };
const clsBatch = { inputIds: Int32Array.from([1, 4, 7, 2, 9, 3, 5, 8, 0, 0]), shape: [2, 5] as const, attentionMask: Float32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]), labels: Int32Array.from([1, 0]) };

describe('prefix tuning in the PEFT format', () => {
  for (const [c, base] of Object.entries(BASES))
    it(`loads Python PEFT's ${c} with the same logits; save → load → save is byte-stable`, () => {
      const e = expected(c);
      using model = loadModel(join(MODELS, base));
      const plain = model.logits(batchOf(e));
      loadPrefixTuning(model, join(FIX, c));
      const out = model.forward(batchOf(e));
      expect(out.logits.shape).toEqual(e.logitsShape);
      expect(maxDiff(out.logits.toArray(), e.logits)).toBeLessThan(1e-5);
      expect(maxDiff(plain, e.logits)).toBeGreaterThan(1e-3); // the prefix matters
      const dir = mkdtempSync(join(tmpdir(), 'px-'));
      savePrefixTuning(model, dir);
      using m2 = loadModel(join(MODELS, base));
      loadPrefixTuning(m2, dir);
      expect(maxDiff(m2.forward(batchOf(e)).logits.toArray(), e.logits)).toBeLessThan(1e-5);
      const dir2 = mkdtempSync(join(tmpdir(), 'px-'));
      savePrefixTuning(m2, dir2);
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) expect(readFileSync(join(dir2, f)).equals(readFileSync(join(dir, f)))).toBe(true);
      removePrefixTuning(m2);
      if (c !== 'prefix-bert') expectClose(m2.logits(batchOf(e)), plain, 'removed', 1e-6, 1e-6); // (BERT keeps the loaded classifier)
    });

  it('a fresh prefix is written as PEFT records it (GQA: Hkv heads, token_dim Hkv·D; the MLP saved as its output)', () => {
    using model = loadModel(join(MODELS, 'llama-gqa'));
    const s = applyPrefixTuning(model, { numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 12 });
    const dir = mkdtempSync(join(tmpdir(), 'px-'));
    savePrefixTuning(model, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const theirs = JSON.parse(readFileSync(join(FIX, 'prefix-llama', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    for (const k of ['num_attention_heads', 'token_dim', 'num_layers', 'num_transformer_submodules', 'task_type']) expect(cfg[k], k).toEqual(theirs[k]);
    expect(cfg['prefix_projection']).toBe(true);
    const bytes = readFileSync(join(dir, 'adapter_model.safetensors'));
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString()) as Record<string, { shape: number[] }>;
    expect(header['prompt_embeddings']?.shape).toEqual([3, 64]);
    // the saved values are the MLP's output: loading them as a table gives the same logits
    const want = model.logits(batch);
    using m2 = loadModel(join(MODELS, 'llama-gqa'));
    loadPrefixTuning(m2, dir);
    expectClose(m2.logits(batch), want, 'projection saved as values', 1e-5, 1e-5);
    expect(s.encoder.transform).not.toBeNull();
  });

  it('a bad folder or a model without attention is a typed error that leaves the model as it was', () => {
    using model = loadModel(join(MODELS, 'llama-gqa'));
    const plain = model.logits(batch);
    const flags = model.parameters().map((p) => p.trainable);
    const cfg = JSON.parse(readFileSync(join(FIX, 'prefix-llama', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const bad = (edit: Record<string, unknown>, err: new (...a: never[]) => Error, msg: RegExp) => {
      const dir = mkdtempSync(join(tmpdir(), 'px-'));
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, ...edit }));
      writeFileSync(join(dir, 'adapter_model.safetensors'), readFileSync(join(FIX, 'prefix-llama', 'adapter_model.safetensors')));
      expect(() => loadPrefixTuning(model, dir)).toThrow(err);
      expect(() => loadPrefixTuning(model, dir)).toThrow(msg);
      expect(prefixState(model)).toBeUndefined();
      expect(model.parameters().map((p) => p.trainable)).toEqual(flags);
      expect(model.parameters().some((p) => p.name.includes('prompt_encoder'))).toBe(false);
      expect(maxDiff(model.logits(batch), plain)).toBe(0);
    };
    bad({ num_virtual_tokens: 4 }, ShapeError, /prompt_embeddings.*\[3, 64\]/);
    bad({ num_layers: 3 }, ConfigError, /num_layers/);
    bad({ token_dim: 32 }, ConfigError, /token_dim/);
    bad({ num_transformer_submodules: 2 }, ConfigError, /num_transformer_submodules/);
    bad({ peft_type: 'PROMPT_TUNING' }, ConfigError, /not a prefix-tuning adapter/);
    class NoAttention extends Module {
      positionShift = 0;
      readonly proj = this.registerModule('proj', new Linear(2, 2));
      forward(): null {
        return null;
      }
    }
    expect(() => applyPrefixTuning(new NoAttention())).toThrow(/exposes no attention core/);
    expect(() => applyPrefixTuning(new NoAttention())).toThrow(KfacError);
  });
});

describe('prefix tuning', () => {
  const fdCheck = (make: () => ReturnType<typeof llama> | ReturnType<typeof gpt2> | ReturnType<typeof bert>, b: typeof batch | typeof clsBatch, proj: boolean) => {
    using model = make();
    applyPrefixTuning(model, { numVirtualTokens: 2, prefixProjection: proj, encoderHiddenSize: 5, seed: 3 });
    const params = model.parameters().filter((p) => p.trainable && p.name.includes('prompt_encoder'));
    expect(params.length).toBe(proj ? 5 : 1);
    for (const p of params) p.tensor.set(p.tensor.toArray().map((v) => v * 0.3));
    model.zeroGrad();
    model.forward(b);
    model.backward();
    for (const p of params) {
      const g = p.grad!.toArray();
      const x0 = p.tensor.toArray();
      for (const i of [0, Math.floor(x0.length / 2), x0.length - 1]) {
        const h = 1e-2;
        const at = (d: number) => {
          const x = x0.slice();
          x[i]! += d;
          p.tensor.set(x);
          return model.forward(b).loss!;
        };
        const fd = (at(h) - at(-h)) / (2 * h);
        p.tensor.set(x0);
        expect(Math.abs(g[i]! - fd), `${p.name}[${i}]: ${g[i]} vs ${fd}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)));
      }
    }
  };
  it('table gradients by finite differences: grouped-query LLaMA (RoPE shifted by n), GPT-2, BERT with padding', () => {
    fdCheck(llama, batch, false);
    fdCheck(gpt2, batch, false);
    fdCheck(() => bert(), clsBatch, false);
  });
  it('projection MLP gradients by finite differences (LLaMA, BERT)', () => {
    fdCheck(llama, batch, true);
    fdCheck(() => bert(), clsBatch, true);
  });
});

describe('K-FAC blocks of the prefix', () => {
  it('one-hot factor I/n; gradient factor the mean diagonal block of the dense Fisher; the MLP adds two linear blocks', () => {
    using model = gpt2(7);
    const n = 2;
    const s = applyPrefixTuning(model, { numVirtualTokens: n, seed: 2 });
    s.encoder.embedding.weight.tensor.set(input(s.encoder.embedding.weight.tensor.size, 3, 0.3).f32);
    const W = s.width;
    const N = n * W;
    const F = new Float64Array(N * N);
    for (let b = 0; b < 2; b++) {
      model.zeroGrad();
      model.forward({ inputIds: batch.inputIds.subarray(b * 5, b * 5 + 5), shape: [1, 5], labels: batch.labels.subarray(b * 5, b * 5 + 5) });
      model.backward();
      const g = s.encoder.embedding.weight.grad!.toArray();
      for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) F[i * N + j]! += g[i]! * g[j]!;
    }
    model.zeroGrad();
    model.forward(batch);
    model.backward();
    const layers = kfacLayersForPrefix(model);
    expect(layers.map((l) => l.name)).toEqual(['prompt_encoder.embedding']);
    const pre = new KfacPreconditioner(layers, { factorDecay: 0, newtonClip: null });
    pre.step({ batchSize: 2 });
    const f = pre.factors('prompt_encoder.embedding');
    expect([f.G[1], f.G[2]]).toEqual([0, 0]);
    expect(f.G[3]).toBeCloseTo(f.G[0]!, 6);
    const D = new Float64Array(W * W);
    for (let v = 0; v < n; v++) for (let i = 0; i < W; i++) for (let j = 0; j < W; j++) D[i * W + j]! += F[(v * W + i) * N + v * W + j]! / n;
    const c = f.A[0]! / D[0]!;
    expect(c).toBeGreaterThan(0);
    expectClose(f.A, D.map((v) => v * c), 'A ∝ mean diagonal block of the dense Fisher', 1e-5, 1e-3);
    pre.dispose();
    removePrefixTuning(model);
    applyPrefixTuning(model, { numVirtualTokens: n, prefixProjection: true });
    expect(kfacLayersForPrefix(model).map((l) => [l.name, l.weight.tensor.shape])).toEqual([
      ['prompt_encoder.embedding', [n, 8]],
      ['prompt_encoder.transform.0', [8, 8]],
      ['prompt_encoder.transform.2', [2 * 2 * 8, 8]],
    ]);
  });

  it('a few KFAC steps (Newton clip on) lower the loss of a tiny LLaMA with a projected prefix', () => {
    using model = llama();
    applyPrefixTuning(model, { numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 8 });
    const opt = new KFAC(kfacLayersForPrefix(model), [], { lr: 0.05 });
    const loss = () => {
      model.zeroGrad();
      const out = model.forward(batch);
      model.backward();
      return out.loss!;
    };
    const first = loss();
    for (let i = 0; i < 8; i++) {
      if (i > 0) loss();
      opt.step({ batchSize: 2 });
    }
    const last = loss();
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
  });
});
