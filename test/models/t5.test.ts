/**
 * T5 (v1.0 ReLU / tied scaled head; v1.1 gated-GELU / untied head): logits, loss and gradients
 * of tiny random checkpoints against transformers (tools/make_t5_fixtures.py), relative position
 * buckets, finite-difference gradients with dropout on, and bad configs.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

import { ConfigError } from '../../lib/errors.js';
import { createT5, generateSeq2Seq, greedySeq2Seq, loadModel, T5Model } from '../../lib/models/index.js';
import { relativePositionBucket, t5ConfigFromHf } from '../../lib/models/t5-config.js';
import { T5Attention } from '../../lib/models/t5-layers.js';
import type { Seq2SeqBatch } from '../../lib/models/t5.js';
import { Dropout } from '../../lib/nn/layers.js';
import { SafetensorsFile } from '../../lib/io/safetensors.js';
import { applyLora, loadAdapter, saveAdapter } from '../../lib/peft/index.js';
import { expectGradsMatchFiniteDifferences } from '../support/fd-grads.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

interface Expected {
  inputIds: number[][];
  attentionMask: number[][];
  labels: number[][];
  logitsShape: number[];
  logits: number[];
  loss: number;
  grads: Record<string, { shape: number[]; values: number[] }>;
}

/** max |got − want| over the elements, relative to the largest |want| of the tensor. */
function maxErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let mx = 0;
  for (let i = 0; i < want.length; i++) mx = Math.max(mx, Math.abs(want[i]!));
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / mx);
  return worst;
}

export function fixtureBatch(exp: Expected): Seq2SeqBatch {
  const B = exp.inputIds.length;
  return {
    inputIds: Int32Array.from(exp.inputIds.flat()),
    shape: [B, exp.inputIds[0]!.length],
    attentionMask: exp.attentionMask.flat(),
    labels: Int32Array.from(exp.labels.flat()),
  };
}

describe.each(['t5-v1_0', 't5-v1_1'])('%s against transformers', (name) => {
  const dir = join(FIXTURES, name);
  const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;

  test('loads every weight; logits, loss and gradients match', () => {
    using m = loadModel(dir);
    expect(m).toBeInstanceOf(T5Model);
    const t5 = m as unknown as T5Model;
    expect(t5.config.tieWordEmbeddings).toBe(name === 't5-v1_0');
    expect(t5.config.gated).toBe(name === 't5-v1_1');
    expect(m.loadReport.fresh).toEqual([]);
    expect(m.training).toBe(false);
    m.zeroGrad();
    const out = m.forward(fixtureBatch(exp));
    expect(out.logits.shape).toEqual(exp.logitsShape);
    expect(maxErr(out.logits.toArray(), exp.logits)).toBeLessThan(1e-5);
    expect(Math.abs(out.loss! - exp.loss)).toBeLessThan(1e-5 * Math.max(1, exp.loss));
    m.backward();
    const params = new Map(m.parameters().map((p) => [p.name, p]));
    for (const [g, want] of Object.entries(exp.grads)) {
      const p = params.get(g);
      expect(p, g).toBeDefined();
      expect(p!.tensor.shape).toEqual(want.shape);
      expect(maxErr(p!.grad!.toArray(), want.values), g).toBeLessThan(1e-4);
    }
  });
});

describe('relative position buckets', () => {
  test('equal transformers for bidirectional and causal settings over ±300 positions', () => {
    const f = JSON.parse(readFileSync(join(FIXTURES, '..', 'io', 't5-buckets.json'), 'utf8')) as { relative: number[]; cases: { numBuckets: number; maxDistance: number; bidirectional: boolean; buckets: number[] }[] };
    for (const c of f.cases) {
      const got = f.relative.map((r) => relativePositionBucket(r, c.bidirectional, c.numBuckets, c.maxDistance));
      expect(got, JSON.stringify({ ...c, buckets: undefined })).toEqual(c.buckets);
    }
  });
});

function ids(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 2 + (s % (vocab - 2));
  });
}

function resetDropout(m: T5Model): void {
  for (const [, mod] of m.namedModules()) {
    if (mod instanceof Dropout) mod.calls = 0;
    if (mod instanceof T5Attention) mod.dropoutCalls = 0;
  }
}

describe('finite-difference gradients (training mode, dropout on)', () => {
  test.each([
    ['v1.0 (ReLU, tied, scaled)', {}],
    ['v1.1 (gated GELU, untied, 3 decoder layers)', { gated: true, numDecoderLayers: 3, headDim: 3 }],
  ])('%s', (_, extra) => {
    using m = createT5({ vocabSize: 30, hiddenSize: 12, intermediateSize: 16, numLayers: 2, numHeads: 2, numBuckets: 6, maxDistance: 8, dropout: 0.1, ...extra }, { seed: 5, initStd: 0.3 });
    m.train();
    const B = 2;
    const batch: Seq2SeqBatch = {
      inputIds: ids(B * 6, 30, 1),
      shape: [B, 6],
      attentionMask: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
      labels: Int32Array.from([...ids(5, 30, 2), 4, 9, 1, -100, -100]),
    };
    const lossOf = (): number => {
      resetDropout(m);
      return m.forward(batch).loss!;
    };
    m.zeroGrad();
    resetDropout(m);
    m.forward(batch);
    m.backward();
    const names = [
      'shared.weight',
      'encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
      'decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight',
      'encoder.block.0.layer.0.SelfAttention.k.weight',
      'encoder.block.1.layer.0.layer_norm.weight',
      'decoder.block.0.layer.1.EncDecAttention.v.weight',
      'decoder.block.1.layer.0.SelfAttention.q.weight',
      m.config.gated ? 'decoder.block.0.layer.2.DenseReluDense.wi_1.weight' : 'decoder.block.0.layer.2.DenseReluDense.wi.weight',
      'decoder.final_layer_norm.weight',
      ...(m.config.gated ? ['lm_head.weight'] : []),
    ];
    // Dropout's 1/(1 − p) scaling makes the loss curve enough that h = 2e-3 is off by ~3 % on the
    // largest embedding gradient; 1e-3 keeps the quotient within the bound (and above float32 noise).
    expectGradsMatchFiniteDifferences(m.parameters(), names, lossOf, { h: 1e-3 });
  });

  test('a frozen model backpropagates nothing; training only the decoder leaves the encoder without gradients', () => {
    using m = createT5({ vocabSize: 30, hiddenSize: 8, intermediateSize: 8, numLayers: 2, numHeads: 2 }, { seed: 1 });
    m.freeze();
    for (const p of m.parameters()) if (p.name.startsWith('decoder.block.1.')) p.trainable = true;
    m.zeroGrad();
    m.forward({ inputIds: ids(8, 30, 3), shape: [2, 4], labels: ids(6, 30, 4) });
    m.backward();
    for (const p of m.parameters()) {
      if (p.name.startsWith('decoder.block.1.')) expect(p.grad!.toArray().some((v) => v !== 0), p.name).toBe(true);
      else expect(p.grad, p.name).toBeNull();
    }
  });
});

describe('bad configs and batches', () => {
  const base = { model_type: 't5', vocab_size: 10, d_model: 8, d_kv: 4, d_ff: 8, num_layers: 1, num_heads: 2 };
  test('an unknown feed_forward_proj is a ConfigError naming it', () => {
    for (const v of ['swiglu', 'gated-foo', 'fancy-gelu', 'gated-gelu-x', 3]) {
      let err: unknown;
      try {
        t5ConfigFromHf({ ...base, feed_forward_proj: v }, 'config.json');
      } catch (e) {
        err = e;
      }
      expect(err, String(v)).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).argument).toBe('feed_forward_proj');
      expect((err as ConfigError).message).toContain(String(v));
    }
    expect(t5ConfigFromHf({ ...base, feed_forward_proj: 'gated-silu' })).toMatchObject({ gated: true, activation: 'silu' });
    expect(t5ConfigFromHf({ ...base, feed_forward_proj: 'gated-gelu' })).toMatchObject({ gated: true, activation: 'gelu_tanh', tieWordEmbeddings: true });
  });

  test('a batch without targets, or with labels out of range, is refused before any work', () => {
    using m = createT5({ vocabSize: 10, hiddenSize: 8, intermediateSize: 8, numLayers: 1, numHeads: 2 });
    expect(() => m.forward({ inputIds: ids(4, 10, 1), shape: [1, 4] })).toThrow(/labels or decoderInputIds/);
    expect(() => m.forward({ inputIds: ids(4, 10, 1), shape: [1, 4], labels: Int32Array.from([3, 10]) } as Seq2SeqBatch)).toThrow(/labels/);
    expect(() => m.forward({ inputIds: ids(4, 10, 1), shape: [2, 2], labels: Int32Array.from([3, 4, 5]) } as Seq2SeqBatch)).toThrow(/multiple of B/);
  });
});

interface GenRow {
  source: number[];
  greedy: number[];
  beam3: number[];
  beam4_lp05_max6: number[];
  greedy_eos: { eos: number; ids: number[] };
  beam3_eos: { eos: number; ids: number[] };
}

describe.each(['t5-v1_0', 't5-v1_1'])('%s generation equals transformers generate()', (name) => {
  const dir = join(FIXTURES, name);
  const gen = (JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { generate: Record<string, GenRow> & { batch_greedy: number[][] } }).generate;
  const withStart = (ids: Int32Array): number[] => [0, ...ids];

  test.each(['row0', 'row1'])('%s: greedy, beam search, length penalty, eos', (row) => {
    using m = loadModel(dir) as unknown as T5Model & Disposable;
    const g = gen[row] as GenRow;
    expect(withStart(generateSeq2Seq(m, g.source, { maxNewTokens: 8 }))).toEqual(g.greedy);
    expect(withStart(generateSeq2Seq(m, g.source, { maxNewTokens: 8, numBeams: 3 }))).toEqual(g.beam3);
    expect(withStart(generateSeq2Seq(m, g.source, { maxNewTokens: 6, numBeams: 4, lengthPenalty: 0.5 }))).toEqual(g.beam4_lp05_max6);
    expect(withStart(generateSeq2Seq(m, g.source, { maxNewTokens: 8, eosTokenId: g.greedy_eos.eos }))).toEqual(g.greedy_eos.ids);
    expect(withStart(generateSeq2Seq(m, g.source, { maxNewTokens: 8, numBeams: 3, eosTokenId: g.beam3_eos.eos }))).toEqual(g.beam3_eos.ids);
  });

  test('batched greedy over padded sources equals each row', () => {
    using m = loadModel(dir) as unknown as T5Model & Disposable;
    const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
    const out = greedySeq2Seq(m, Int32Array.from(exp.inputIds.flat()), [2, 7], exp.attentionMask.flat(), { maxNewTokens: 8 });
    expect(out.map(withStart)).toEqual(gen.batch_greedy);
  });
});

describe('cached decoding', () => {
  test('decoding token by token equals the full forward of the same targets', () => {
    using m = createT5({ vocabSize: 30, hiddenSize: 12, intermediateSize: 16, numLayers: 2, numHeads: 2, numBuckets: 6, maxDistance: 8, gated: true }, { seed: 7, initStd: 0.3 });
    m.eval();
    const src = ids(5, 30, 9);
    const dec = Int32Array.from([0, 4, 17, 9, 22, 3]);
    const full = m.forward({ inputIds: src, shape: [1, 5], decoderInputIds: dec } as Seq2SeqBatch).logits.toArray();
    const state = m.startDecoding(src, 1, 5, null, dec.length);
    try {
      const V = 30;
      // Two tokens, then one at a time: the cache continues positions and the causal bias.
      const a = m.decodeStep(dec.subarray(0, 2), 2, state).toArray();
      const got = [...a];
      for (let t = 2; t < dec.length; t++) got.push(...m.decodeStep(dec.subarray(t, t + 1), 1, state).toArray());
      expect(maxErr(got, full)).toBeLessThan(1e-5);
      expect(got.length).toBe(dec.length * V);
    } finally {
      state.dispose();
    }
  });
});

describe('a PEFT LoRA adapter of T5 (q, v) made by peft', () => {
  test('loads onto the base folder and gives peft’s logits; saves the same keys; our own T5 LoRA saves as SEQ_2_SEQ_LM', () => {
    const dir = join(FIXTURES, '..', 'peft', 't5-v1_1-lora');
    const want = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { logits: number[]; loss: number };
    const base = JSON.parse(readFileSync(join(FIXTURES, 't5-v1_1', 'expected.json'), 'utf8')) as Expected;
    using m = loadModel(join(FIXTURES, 't5-v1_1'));
    const before = m.forward(fixtureBatch(base)).logits.toArray();
    const report = loadAdapter(m, dir);
    // q and v of every self- and cross-attention: 2 encoder blocks × 2 + 3 decoder blocks × 4.
    expect(report.state.branches.length).toBe(16);
    expect(report.state.branches.map((b) => b.path)).toContain('decoder.block.2.layer.1.EncDecAttention.v');
    const out = m.forward(fixtureBatch(base));
    expect(maxErr(out.logits.toArray(), want.logits)).toBeLessThan(1e-5);
    expect(maxErr(before, want.logits)).toBeGreaterThan(1e-3); // the adapter changes the logits
    const tmpDir = mkdtempSync(join(tmpdir(), 't5-lora-'));
    try {
      saveAdapter(m, tmpDir);
      const keys = (d: string) => [...SafetensorsFile.open(join(d, 'adapter_model.safetensors')).names].sort();
      expect(keys(tmpDir)).toEqual(keys(dir));
      // A LoRA of our own on T5 is saved as PEFT's seq2seq task (the loaded one keeps peft's task_type).
      using fresh = loadModel(join(FIXTURES, 't5-v1_1'));
      applyLora(fresh, { targetModules: ['q', 'v'], r: 2 });
      saveAdapter(fresh, join(tmpDir, 'own'));
      expect((JSON.parse(readFileSync(join(tmpDir, 'own', 'adapter_config.json'), 'utf8')) as { task_type: string }).task_type).toBe('SEQ_2_SEQ_LM');
    } finally {
      rmSync(tmpDir, { recursive: true, force: true });
    }
  });
});
