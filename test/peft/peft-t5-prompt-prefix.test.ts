/**
 * Prompt and prefix tuning on T5 against Hugging Face PEFT (SEQ_2_SEQ_LM): the PEFT folders of
 * tools/make_peft_t5_prompt_prefix_fixtures.py load and give PEFT's logits and loss; what we save
 * has PEFT's layout (num_transformer_submodules 2, prompt table [2n, C], prefix table
 * [n, num_layers·2·d_model]) and loads back to the same logits; generation (greedy and beam) uses
 * the virtual tokens / prefix and gives PEFT's generate() ids, which differ from the base model's;
 * decoding is not bounded by the virtual positions, and a failed start with a prefix disposes its
 * caches.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it, vi } from 'vitest';

import { ConfigError, KfacError, ShapeError } from '../../lib/errors.js';
import { createT5, generateSeq2Seq, loadModel, type T5Model } from '../../lib/models/index.js';
import { type Seq2SeqBatch, Seq2SeqState } from '../../lib/models/t5.js';
import { SafetensorsFile } from '../../lib/io/safetensors.js';
import { loadPrefixTuning, savePrefixTuning } from '../../lib/peft/prefix-io.js';
import { applyPrefixTuning, prefixState } from '../../lib/peft/prefix.js';
import { loadPromptTuning, savePromptTuning } from '../../lib/peft/prompt-io.js';
import { applyPromptTuning, promptState } from '../../lib/peft/prompt.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { kfacLayersForPrefix } from '../../lib/peft/prefix-kfac.js';
import { kfacLayersForPrompt } from '../../lib/peft/prompt-kfac.js';
import { expectGradsMatchFiniteDifferences } from '../support/fd-grads.js';
import { expectClose } from '../support/nn-helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
const FIX = join(ROOT, 'test', 'fixtures', 'peft');
const tmp = mkdtempSync(join(tmpdir(), 'kfac-peft-t5pp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Expected {
  inputIds: number[][];
  attentionMask: number[][];
  labels: number[][];
  logitsShape: number[];
  logits: number[];
  loss: number;
  generate: { source: number[]; greedy: number[]; beam3: number[] }[];
}

const CASES = ['prompt-t5-v1_0', 'prompt-t5-v1_1', 'prefix-t5-v1_0', 'prefix-t5-v1_1'] as const;

function setup(name: string): { model: T5Model; exp: Expected; cfg: Record<string, unknown> } {
  const dir = join(FIX, name);
  const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const model = loadModel(join(ROOT, cfg['base_model_name_or_path'] as string)) as unknown as T5Model & Disposable;
  model.eval();
  if (name.startsWith('prompt')) loadPromptTuning(model, dir);
  else loadPrefixTuning(model, dir);
  return { model, exp: JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected, cfg };
}

function run(model: T5Model, exp: Expected): { logits: Float32Array; loss: number } {
  const B = exp.inputIds.length;
  const out = model.forward({ inputIds: Int32Array.from(exp.inputIds.flat()), shape: [B, exp.inputIds[0]!.length], attentionMask: exp.attentionMask.flat(), labels: Int32Array.from(exp.labels.flat()) } as never);
  expect(out.logits.shape).toEqual(exp.logitsShape);
  return { logits: out.logits.toArray().slice(), loss: out.loss! };
}

describe.each(CASES)('%s (PEFT fixture)', (name) => {
  it("loads and gives PEFT's logits and loss", () => {
    const { model, exp } = setup(name);
    try {
      const r = run(model, exp);
      expectClose(r.logits, exp.logits, `${name} logits`, 1e-5, 1e-5);
      expect(Math.abs(r.loss - exp.loss)).toBeLessThan(1e-5);
    } finally {
      model.dispose();
    }
  });

  it("saves PEFT's layout, and the saved folder loads back to the same logits", () => {
    const { model, exp, cfg } = setup(name);
    const dir = join(tmp, name);
    try {
      const prompt = name.startsWith('prompt');
      if (prompt) savePromptTuning(model, dir);
      else savePrefixTuning(model, dir);
      const ours = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      for (const k of ['peft_type', 'task_type', 'num_transformer_submodules', 'num_virtual_tokens', 'num_layers', 'num_attention_heads', 'token_dim']) expect(ours[k], k).toEqual(cfg[k]);
      const theirs = SafetensorsFile.open(join(FIX, name, 'adapter_model.safetensors'));
      const mine = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
      expect(mine.names).toEqual(theirs.names);
      for (const k of theirs.names) {
        expect(mine.info(k).shape, k).toEqual(theirs.info(k).shape);
        // The prompt table round-trips bit for bit; a projected prefix is saved as its output (PEFT does the same).
        expectClose(mine.readFloat32(k), theirs.readFloat32(k), k, 1e-6, 1e-6);
      }
      const m2 = loadModel(join(ROOT, cfg['base_model_name_or_path'] as string)) as unknown as T5Model & Disposable;
      try {
        m2.eval();
        if (prompt) loadPromptTuning(m2, dir);
        else loadPrefixTuning(m2, dir);
        expectClose(run(m2, exp).logits, exp.logits, `${name} reloaded`, 1e-5, 1e-5);
      } finally {
        m2.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  it("generates PEFT's greedy and beam-search ids, which differ from the base model's", () => {
    const { model, exp, cfg } = setup(name);
    try {
      const plain: { greedy: number[]; beam3: number[] }[] = [];
      using base = loadModel(join(ROOT, cfg['base_model_name_or_path'] as string)) as unknown as T5Model & Disposable;
      for (const g of exp.generate) {
        const opts = { maxNewTokens: g.greedy.length - 1, eosTokenId: null };
        expect([0, ...generateSeq2Seq(model, g.source, opts)], `greedy ${g.source}`).toEqual(g.greedy);
        expect([0, ...generateSeq2Seq(model, g.source, { ...opts, numBeams: 3 })], `beam ${g.source}`).toEqual(g.beam3);
        plain.push({ greedy: [0, ...generateSeq2Seq(base, g.source, opts)], beam3: [0, ...generateSeq2Seq(base, g.source, { ...opts, numBeams: 3 })] });
      }
      // the fixture's seed makes the adapter matter on both paths (a dropped prompt or prefix shows)
      expect(plain.map((p) => p.greedy), 'greedy: the base model alone decodes differently').not.toEqual(exp.generate.map((g) => g.greedy));
      expect(plain.map((p) => p.beam3), 'beam: the base model alone decodes differently').not.toEqual(exp.generate.map((g) => g.beam3));
    } finally {
      model.dispose();
    }
  });

  it('decodes past the source and the virtual positions: T5 has no position limit, the decoder cache grows by maxNewTokens', () => {
    const { model, exp } = setup(name);
    try {
      const src = exp.generate[0]!.source;
      const maxNewTokens = 40;
      expect(generateSeq2Seq(model, src, { maxNewTokens, eosTokenId: null }).length).toBe(maxNewTokens);
      expect(generateSeq2Seq(model, src, { maxNewTokens, eosTokenId: null, numBeams: 2 }).length).toBe(maxNewTokens);
    } finally {
      model.dispose();
    }
  });
});

describe('prompt and prefix tuning on T5: shapes and refusals', () => {
  it('a fresh T5 prompt has 2n rows (PEFT SEQ_2_SEQ_LM), or n with numTransformerSubmodules 1', () => {
    using model = loadModel(join(ROOT, 'test', 'fixtures', 'models', 't5-v1_0')) as unknown as T5Model & Disposable;
    const s = applyPromptTuning(model, { numVirtualTokens: 4 });
    expect(s.hook.prompt.weight.tensor.shape).toEqual([8, 24]);
    expect(s.numTransformerSubmodules).toBe(2);
    expect(promptState(model)).toBe(s);
    using m1 = loadModel(join(ROOT, 'test', 'fixtures', 'models', 't5-v1_0')) as unknown as T5Model & Disposable;
    expect(applyPromptTuning(m1, { numVirtualTokens: 4, numTransformerSubmodules: 1 }).hook.prompt.weight.tensor.shape).toEqual([4, 24]);
  });

  it('bad folders are typed errors and leave the model as it came', () => {
    const edited = (name: string, edit: Record<string, unknown>): string => {
      const d = join(tmp, `bad-${name}-${Object.keys(edit).join('-')}`);
      cpSync(join(FIX, name), d, { recursive: true });
      const f = join(d, 'adapter_config.json');
      writeFileSync(f, JSON.stringify({ ...(JSON.parse(readFileSync(f, 'utf8')) as object), ...edit }));
      return d;
    };
    using t5 = loadModel(join(ROOT, 'test', 'fixtures', 'models', 't5-v1_0')) as unknown as T5Model & Disposable;
    const before = t5.parameters().filter((p) => p.trainable).length;
    // one submodule: the table should be [n, C] but PEFT's file is [2n, C]
    expect(() => loadPromptTuning(t5, edited('prompt-t5-v1_0', { num_transformer_submodules: 1 }))).toThrow(ShapeError);
    expect(() => loadPrefixTuning(t5, edited('prefix-t5-v1_0', { num_transformer_submodules: 1 }))).toThrow(ConfigError);
    expect(() => loadPrefixTuning(t5, edited('prefix-t5-v1_0', { num_layers: 3 }))).toThrow(/num_layers/);
    expect(promptState(t5)).toBeUndefined();
    expect(prefixState(t5)).toBeUndefined();
    expect(t5.parameters().filter((p) => p.trainable).length).toBe(before);
    // an encoder-decoder folder on a decoder-only model
    using llama = loadModel(join(ROOT, 'test', 'fixtures', 'models', 'llama-gqa'));
    expect(() => loadPromptTuning(llama, join(FIX, 'prompt-t5-v1_0'))).toThrow(KfacError);
    expect(() => loadPromptTuning(llama, join(FIX, 'prompt-t5-v1_0'))).toThrow(/num_transformer_submodules/);
    expect(promptState(llama)).toBeUndefined();
  });

  it("prefix tuning refuses a T5 PEFT's layout cannot hold, before the model changes", () => {
    // t5-v1_1: 3 decoder layers for 2 encoder layers, and heads·d_kv = 15 ≠ d_model = 24
    using model = loadModel(join(ROOT, 'test', 'fixtures', 'models', 't5-v1_1')) as unknown as T5Model & Disposable;
    const trainable = model.parameters().filter((p) => p.trainable).length;
    expect(() => applyPrefixTuning(model)).toThrow(ConfigError);
    expect(() => applyPrefixTuning(model)).toThrow(/decoder/);
    expect(prefixState(model)).toBeUndefined();
    expect(model.parameters().filter((p) => p.trainable).length).toBe(trainable);
  });
});

describe('T5 decoding with a prefix: a failed start leaks nothing', () => {
  it("startDecoding disposes the self-attention cache and the cross-attention keys/values when the prefix cannot be written", () => {
    using model = loadModel(join(ROOT, 'test', 'fixtures', 'models', 't5-v1_0')) as unknown as T5Model & Disposable;
    applyPrefixTuning(model, { numVirtualTokens: 3 });
    const p = model.decoderBlocks[1]!.self.SelfAttention.prefix! as { kvInto?: unknown };
    const kvInto = p.kvInto;
    p.kvInto = () => {
      throw new ShapeError('prefix: a forced failure');
    };
    const dispose = vi.spyOn(Seq2SeqState.prototype, 'dispose');
    try {
      expect(() => generateSeq2Seq(model, [5, 17, 42, 1], { maxNewTokens: 4 })).toThrow(/a forced failure/);
      expect(dispose).toHaveBeenCalledTimes(1);
      const state = dispose.mock.contexts[0] as Seq2SeqState;
      expect(state.cross.length).toBe(model.decoderBlocks.length);
      for (const t of [...state.self.layers.flatMap((l) => [l.k, l.v]), ...state.cross.flatMap((c) => [c.k, c.v])]) expect(t.disposed).toBe(true);
    } finally {
      dispose.mockRestore();
      p.kvInto = kvInto;
    }
    // the prefix restored, decoding starts again
    expect(generateSeq2Seq(model, [5, 17, 42, 1], { maxNewTokens: 4, eosTokenId: null }).length).toBe(4);
  });
});

describe('T5 gradients with a prompt or a prefix, by finite differences', () => {
  const batch: Seq2SeqBatch = {
    inputIds: Int32Array.from([5, 9, 3, 17, 22, 8, 4, 11, 7, 2, 2, 2]),
    shape: [2, 6],
    attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    decoderInputIds: Int32Array.from([0, 12, 4, 19, 0, 6, 13, 0]),
    decoderAttentionMask: [1, 1, 1, 1, 1, 1, 1, 0],
    labels: Int32Array.from([12, 4, 19, 1, 6, 13, 1, -100]),
  };
  const check = (m: T5Model, names: string[]): void => {
    m.train();
    m.zeroGrad();
    m.forward(batch);
    m.backward();
    expectGradsMatchFiniteDifferences(m.parameters(), names, () => m.forward(batch).loss!, { median: true });
  };
  const t5 = (extra: object = {}): T5Model =>
    createT5({ vocabSize: 30, hiddenSize: 12, intermediateSize: 16, numLayers: 2, numHeads: 2, numBuckets: 6, maxDistance: 8, dropout: 0, ...extra }, { seed: 5, initStd: 0.3 });
  const train = (m: T5Model, names: string[]): void => {
    for (const p of m.parameters()) if (names.includes(p.name)) p.trainable = true;
  };

  it('prompt: the table, the shared embedding and the encoder position bias beside it (v1.1, 2n rows, the last n unused)', () => {
    using m = t5({ gated: true, numDecoderLayers: 3, headDim: 3 });
    const s = applyPromptTuning(m, { numVirtualTokens: 2 });
    const extra = ['shared.weight', 'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'];
    train(m, extra);
    check(m, ['shared.prompt_encoder.weight', ...extra]);
    // rows n … 2n − 1 are never read: no gradient
    const g = s.hook.prompt.weight.grad!.toArray();
    expect(Array.from(g.subarray(2 * 12)).every((v) => v === 0)).toBe(true);
  });

  it.each([false, true])('prefix (projection %s): the table or MLP, and the decoder position bias read at offset n', (proj) => {
    using m = t5();
    applyPrefixTuning(m, { numVirtualTokens: 3, prefixProjection: proj, encoderHiddenSize: 5 });
    const extra = ['decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight', 'decoder.block.1.layer.0.SelfAttention.q.weight'];
    train(m, extra);
    const enc = 'decoder.block.0.layer.0.SelfAttention.prompt_encoder';
    check(m, [`${enc}.embedding.weight`, ...(proj ? [`${enc}.transform.0.weight`, `${enc}.transform.2.bias`] : []), ...extra]);
  });
});

describe('K-FAC on T5 prompt and prefix tuning', () => {
  const batch: Seq2SeqBatch = {
    inputIds: Int32Array.from([5, 9, 3, 17, 22, 8, 4, 11, 7, 2, 2, 2]),
    shape: [2, 6],
    attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    labels: Int32Array.from([12, 4, 19, 1, 6, 13, 1, -100]),
  };
  const t5 = (): T5Model & Disposable =>
    createT5({ vocabSize: 30, hiddenSize: 12, intermediateSize: 16, numLayers: 2, numHeads: 2, numBuckets: 6, maxDistance: 8, dropout: 0 }, { seed: 5, initStd: 0.3 }) as T5Model & Disposable;
  const lossOf = (m: T5Model): number => {
    m.zeroGrad();
    const out = m.forward(batch);
    m.backward();
    return out.loss!;
  };
  /** The loss before and after six K-FAC steps at `lr` on the fixed batch (each step after its own backward). */
  const kfacSteps = (m: T5Model, layers: ConstructorParameters<typeof KFAC>[0], lr: number): { first: number; last: number } => {
    const opt = new KFAC(layers, [], { lr });
    try {
      const first = lossOf(m);
      for (let i = 0; i < 6; i++) {
        if (i > 0) lossOf(m);
        opt.step({ batchSize: 2 });
      }
      return { first, last: lossOf(m) };
    } finally {
      opt.dispose();
    }
  };

  it("prompt: the one-hot factor is diagonal with each used row's share and zeros for PEFT's unused n rows; steps lower the loss and leave those rows", () => {
    using m = t5();
    const n = 3;
    const s = applyPromptTuning(m, { numVirtualTokens: n, seed: 2 });
    lossOf(m);
    const layers = kfacLayersForPrompt(m);
    const pre = new KfacPreconditioner(layers, { factorDecay: 0, newtonClip: null });
    pre.step({ batchSize: 2 });
    const G = pre.factors(layers[0]!.name).G;
    const R = 2 * n;
    for (let i = 0; i < R; i++)
      for (let j = 0; j < R; j++) {
        const want = i === j && i < n ? G[0]! : 0;
        expect(G[i * R + j], `G[${i}, ${j}]`).toBeCloseTo(want, 7);
      }
    expect(G[0]).toBeGreaterThan(0);
    pre.dispose();
    const unused = s.hook.prompt.weight.tensor.toArray().slice(n * 12);
    const { first, last } = kfacSteps(m, layers, 0.5);
    expect(last).toBeLessThan(first);
    expect(Array.from(s.hook.prompt.weight.tensor.toArray().slice(n * 12))).toEqual(Array.from(unused));
  });

  it('prefix (with the projection MLP): the table and both MLP layers are blocks; steps lower the loss', () => {
    using m = t5();
    applyPrefixTuning(m, { numVirtualTokens: 3, prefixProjection: true, encoderHiddenSize: 8 });
    const layers = kfacLayersForPrefix(m);
    expect(layers.map((l) => [l.name, l.weight.tensor.shape])).toEqual([
      ['prompt_encoder.embedding', [3, 12]],
      ['prompt_encoder.transform.0', [8, 12]],
      ['prompt_encoder.transform.2', [2 * 2 * 12, 8]],
    ]);
    const { first, last } = kfacSteps(m, layers, 0.05);
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
  });
});
