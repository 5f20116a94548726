/**
 * Prompt tuning (lib/peft/prompt.ts, prompt-io.ts, prompt-kfac.ts): Python PEFT's PROMPT_TUNING
 * folders (tools/make_peft_prompt_prefix_fixtures.py: LLaMA and GPT-2 causal LM, BERT
 * classification with a padded row) load with the same logits, save → load → save is
 * byte-stable; a text-initialised prompt equals running the base model on the text followed by
 * the input; ∂P by finite differences; bad folders are typed errors that leave the model as it
 * was; the K-FAC block's one-hot factor is exactly I/n and its other factor is the mean of the
 * diagonal blocks of the dense empirical Fisher of P (the dense Fisher itself for n = 1), and it
 * composes with Newton-step clipping.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, KfacError, ShapeError } from '../../lib/index.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { createGpt2, loadModel } from '../../lib/models/index.js';
import { applyPromptTuning, promptState, removePromptTuning } from '../../lib/peft/prompt.js';
import { loadPromptTuning, savePromptTuning } from '../../lib/peft/prompt-io.js';
import { kfacLayersForPrompt } from '../../lib/peft/prompt-kfac.js';
import { expectClose, input } from '../support/nn-helpers.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'peft');
const MODELS = join(import.meta.dirname, '..', 'fixtures', 'models');
const BASES = { 'prompt-llama': 'llama-gqa', 'prompt-gpt2': 'gpt2-lm', 'prompt-bert': 'bert-cls' } as const;

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

const gpt2 = (seed = 1) => createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed }).eval(); // no dropout: forwards repeat exactly
const batch = { inputIds: Int32Array.from([1, 4, 7, 2, 9, 3, 5, 0, 11, 6]), shape: [2, 5] as const, labels: Int32Array.from([4, 7, 2, 9, 3, 5, 0, 11, 6, 1]) };

describe('prompt tuning in the PEFT format', () => {
  for (const [c, base] of Object.entries(BASES))
    it(`loads Python PEFT's ${c} with the same logits; save → load → save is byte-stable`, () => {
      const e = expected(c);
      using model = loadModel(join(MODELS, base));
      const s = loadPromptTuning(model, join(FIX, c));
      expect(s.counts.trainable).toBeGreaterThan(0);
      const out = model.forward(batchOf(e));
      expect(out.logits.shape).toEqual(e.logitsShape);
      expect(maxDiff(out.logits.toArray(), e.logits)).toBeLessThan(1e-5);
      const dir = mkdtempSync(join(tmpdir(), 'pt-'));
      savePromptTuning(model, dir);
      const ours = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      const theirs = JSON.parse(readFileSync(join(FIX, c, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      for (const k of ['peft_type', 'num_virtual_tokens', 'token_dim', 'num_layers', 'num_attention_heads', 'num_transformer_submodules', 'task_type', 'prompt_tuning_init'])
        expect(ours[k], k).toEqual(theirs[k]);
      using m2 = loadModel(join(MODELS, base));
      loadPromptTuning(m2, dir);
      expect(maxDiff(m2.forward(batchOf(e)).logits.toArray(), e.logits)).toBeLessThan(1e-5);
      const dir2 = mkdtempSync(join(tmpdir(), 'pt-'));
      savePromptTuning(m2, dir2);
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) expect(readFileSync(join(dir2, f)).equals(readFileSync(join(dir, f)))).toBe(true);
    });

  it('a bad folder is a typed error and leaves the model as it was', () => {
    using model = loadModel(join(MODELS, 'llama-gqa'));
    const e = expected('prompt-llama');
    const plain = model.logits({ inputIds: Int32Array.from(e.inputIds), shape: e.shape });
    const flags = model.parameters().map((p) => p.trainable);
    const cfg = JSON.parse(readFileSync(join(FIX, 'prompt-llama', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    const bad = (edit: Record<string, unknown>, err: new (...a: never[]) => Error, msg: RegExp) => {
      const dir = mkdtempSync(join(tmpdir(), 'pt-'));
      writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, ...edit }));
      writeFileSync(join(dir, 'adapter_model.safetensors'), readFileSync(join(FIX, 'prompt-llama', 'adapter_model.safetensors')));
      expect(() => loadPromptTuning(model, dir)).toThrow(err);
      expect(() => loadPromptTuning(model, dir)).toThrow(msg);
      expect(promptState(model)).toBeUndefined();
      expect(model.parameters().map((p) => p.trainable)).toEqual(flags);
      expect(model.parameters().some((p) => p.name.includes('prompt'))).toBe(false);
      expect(maxDiff(model.logits({ inputIds: Int32Array.from(e.inputIds), shape: e.shape }), plain)).toBe(0);
    };
    bad({ num_virtual_tokens: 4 }, ShapeError, /prompt_embeddings.*\[3, 32\]/);
    bad({ token_dim: 16 }, ConfigError, /token_dim/);
    bad({ num_transformer_submodules: 2 }, ConfigError, /num_transformer_submodules/);
    bad({ peft_type: 'PREFIX_TUNING' }, ConfigError, /not a prompt-tuning adapter/);
  });
});

describe('prompt tuning', () => {
  it('a text-initialised prompt equals the base model run on the text followed by the input; labels of virtual tokens are ignored', () => {
    using model = gpt2();
    const text = [3, 8, 13];
    const ids = batch.inputIds;
    const joined = new Int32Array(2 * 8);
    for (let b = 0; b < 2; b++) {
      joined.set(text, b * 8);
      joined.set(ids.subarray(b * 5, b * 5 + 5), b * 8 + 3);
    }
    const labels = Int32Array.from(joined, (v, i) => (i % 8 < 3 ? -100 : v));
    const want = model.forward({ inputIds: joined, shape: [2, 8], labels });
    const wantLogits = want.logits.toArray();
    const wantLoss = want.loss!;
    const s = applyPromptTuning(model, { numVirtualTokens: 3, init: { textTokenIds: text, text: 'abc' } });
    expect(s.counts.trainable).toBe(3 * 8);
    const got = model.forward({ ...batch, labels: ids });
    expect(got.logits.shape).toEqual([2, 8, 20]);
    expectClose(got.logits.toArray(), wantLogits, 'logits', 1e-6, 1e-5);
    expect(got.loss).toBeCloseTo(wantLoss, 6);
    // incremental decoding: the first cached step runs the virtual tokens in front of the prompt
    {
      using cache = model.createCache(2, 16);
      const cached = model.forwardCached(ids, 2, 5, cache);
      expect(cached.shape).toEqual([2, 8, 20]);
      expectClose(cached.toArray(), wantLogits, 'cached logits', 1e-5, 1e-4);
      expect(cache.length).toBe(8);
    }
    removePromptTuning(model);
    expect(model.forward(batch).logits.shape).toEqual([2, 5, 20]);
  });

  it('∂P by finite differences; a second method on the same model is refused', () => {
    using model = gpt2(3);
    const s = applyPromptTuning(model, { numVirtualTokens: 2, seed: 4 });
    const P = s.hook.prompt.weight;
    const p0 = P.tensor.toArray().map((v) => v * 0.1);
    const loss = (p: Float32Array) => {
      P.tensor.set(p);
      return model.forward(batch).loss!;
    };
    model.zeroGrad();
    loss(p0);
    model.backward();
    const g = P.grad!.toArray();
    for (const i of [0, 5, 9, 14]) {
      const h = 1e-2;
      const up = p0.slice();
      const dn = p0.slice();
      up[i]! += h;
      dn[i]! -= h;
      expect(g[i]!).toBeCloseTo((loss(up) - loss(dn)) / (2 * h), 3);
    }
    expect(() => applyPromptTuning(model)).toThrow(KfacError);
  });

  it('a model without a word embedding is a ConfigError', async () => {
    const { Module } = await import('../../lib/nn/module.js');
    const m = Object.assign(new (class extends Module {})(), { task: 'causal-lm', config: { vocabSize: 4 }, forward: () => null });
    expect(() => applyPromptTuning(m)).toThrow(ConfigError);
  });
});

describe('K-FAC block of the prompt table', () => {
  for (const n of [1, 3])
    it(`one-hot factor I/n, gradient factor the mean diagonal block of the dense Fisher (n = ${n})`, () => {
      using model = gpt2(7);
      const s = applyPromptTuning(model, { numVirtualTokens: n, seed: 2 });
      s.hook.prompt.weight.tensor.set(input(n * 8, 3, 0.2).f32);
      const C = 8;
      const N = n * C;
      // per-sequence gradients of P (one sequence at a time), and the dense empirical Fisher
      const F = new Float64Array(N * N);
      for (let b = 0; b < 2; b++) {
        model.zeroGrad();
        model.forward({ inputIds: batch.inputIds.subarray(b * 5, b * 5 + 5), shape: [1, 5], labels: batch.labels.subarray(b * 5, b * 5 + 5) });
        model.backward();
        const g = s.hook.prompt.weight.grad!.toArray();
        for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) F[i * N + j]! += g[i]! * g[j]!;
      }
      // K-FAC rows come from one backward over the batch, with the loss summed over sequences
      model.zeroGrad();
      const out = model.forward({ inputIds: batch.inputIds, shape: [2, 5], labels: batch.labels });
      model.backward(out.dLogits!);
      const layers = kfacLayersForPrompt(model);
      const pre = new KfacPreconditioner(layers, { factorDecay: 0, newtonClip: null });
      pre.step({ batchSize: 2 });
      const f = pre.factors(layers[0]!.name);
      // the one-hot side: diagonal, equal weights (every virtual token once per sequence)
      const oh = Array.from(f.G);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) expect(oh[i * n + j]).toBe(0);
      for (let i = 1; i < n; i++) expect(oh[i * n + i]).toBeCloseTo(oh[0]!, 6);
      // the gradient side ∝ (1/n) Σ_v F[v, v] (C×C diagonal blocks); F's blocks use per-sequence mean losses
      const D = new Float64Array(C * C);
      for (let v = 0; v < n; v++) for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) D[i * C + j]! += F[(v * C + i) * N + v * C + j]! / n;
      const c = f.A[0]! / D[0]!;
      expect(c).toBeGreaterThan(0);
      expectClose(f.A, D.map((v) => v * c), 'A ∝ mean diagonal block of the dense Fisher', 1e-5, 1e-3);
      pre.dispose();
    });

  it('composes with Newton-step clipping: a large step is scaled down to the threshold', () => {
    const run = (clip: boolean) => {
      using model = gpt2(7);
      const s = applyPromptTuning(model, { numVirtualTokens: 2 });
      model.zeroGrad();
      model.forward(batch);
      model.backward();
      const pre = new KfacPreconditioner(kfacLayersForPrompt(model), clip ? {} : { newtonClip: null });
      const tel = pre.step({ batchSize: 2, lr: 10 });
      const norm = Math.hypot(...s.hook.prompt.weight.grad!.toArray());
      pre.dispose();
      return { tel, norm };
    };
    const free = run(false);
    const clipped = run(true);
    expect(clipped.tel.clipped).toBe(true);
    expect(clipped.norm).toBeCloseTo(free.norm * clipped.tel.clipScale, 4);
  });
});
