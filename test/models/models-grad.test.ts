/**
 * Whole-model gradient checks by finite differences, and frozen parameters.
 *
 * For each family a small random model computes its loss in float32; the analytic gradient of a
 * few parameter entries (the largest ones of a few tensors across the depth of the model) is
 * compared with central differences L(θ + h) − L(θ − h) / 2h. With h = 2e-3 and float32 losses
 * (relative rounding ~1e-7, the loss summed in float64), the difference quotient is good to
 * ~1e-4 absolute; we allow 3e-3·max|g| + 2e-2·|g| — far below the O(|g|) error of a wrong
 * backward: dropping one residual path of the LLaMA layer backward moves g by ~15 % and fails it.
 */
import { describe, expect, test } from 'vitest';

import type { Batch, TransformerModel } from '../../lib/models/index.js';
import { createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import { SdpaCore } from '../../lib/models/common.js';
import { Dropout } from '../../lib/nn/layers.js';

function ids(n: number, vocab: number, seed: number, lo = 0): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (s % (vocab - lo));
  });
}

/** Restarts every dropout mask sequence (hidden states and attention probabilities), so repeated forwards draw the same masks. */
function resetDropout(m: TransformerModel): void {
  for (const [, mod] of m.namedModules()) {
    if (mod instanceof Dropout) mod.calls = 0;
    if (mod instanceof SdpaCore) mod.dropoutCalls = 0;
  }
}

function lossOf(m: TransformerModel, batch: Batch): number {
  resetDropout(m);
  return m.forward(batch).loss!;
}

function checkGrads(m: TransformerModel, batch: Batch, names: string[], perTensor = 3): void {
  m.zeroGrad();
  resetDropout(m);
  m.forward(batch);
  m.backward();
  const params = new Map(m.parameters().map((p) => [p.name, p]));
  const h = 2e-3;
  for (const name of names) {
    const p = params.get(name);
    expect(p, name).toBeDefined();
    const g = p!.grad!.toArray();
    const order = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
    const gmax = Math.abs(g[order[0]!]!);
    expect(gmax, `${name}: a non-zero gradient`).toBeGreaterThan(0);
    const w = p!.tensor.toArray();
    for (const i of order.slice(0, perTensor)) {
      const w0 = w[i]!;
      w[i] = w0 + h;
      p!.tensor.set(w);
      const lp = lossOf(m, batch);
      w[i] = w0 - h;
      p!.tensor.set(w);
      const lm = lossOf(m, batch);
      w[i] = w0;
      p!.tensor.set(w);
      const fd = (lp - lm) / (2 * h);
      expect(Math.abs(fd - g[i]!), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`).toBeLessThan(3e-3 * gmax + 2e-2 * Math.abs(g[i]!));
    }
  }
}

const B = 2;
const T = 6;
const mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];

describe('finite-difference gradients of whole models', () => {
  test('LLaMA, grouped-query attention, causal LM with padding', () => {
    using m = createLlama({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 3, initStd: 0.2 });
    m.eval();
    const x = ids(B * T, 40, 1);
    const labels = Int32Array.from(x, (v, i) => (mask[i] ? v : -100));
    checkGrads(m, { inputIds: x, shape: [B, T], attentionMask: mask, labels }, [
      'model.embed_tokens.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.1.mlp.up_proj.weight',
      'model.layers.1.post_attention_layernorm.weight',
      'lm_head.weight',
    ]);
  });

  test('Qwen2-style q/k/v biases, tied embedding, classification on the last token', () => {
    using m = createLlama({ modelType: 'qwen2', vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 1, tieWordEmbeddings: true, padTokenId: 0 }, { seed: 5, initStd: 0.2, task: 'sequence-classification', numLabels: 3 });
    m.eval();
    const x = ids(B * T, 40, 2, 1);
    x[10] = 0;
    x[11] = 0;
    checkGrads(m, { inputIds: x, shape: [B, T], attentionMask: mask, labels: Int32Array.of(2, 0) }, ['model.layers.0.self_attn.v_proj.bias', 'model.layers.1.self_attn.o_proj.weight', 'score.weight', 'model.embed_tokens.weight']);
  });

  test('GPT-2 LM (tied head, fused c_attn) with padding, dropout active (fixed masks)', () => {
    using m = createGpt2({ vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 4, maxPositions: 16, attnDropout: 0.1, residDropout: 0.1, embdDropout: 0.1 }, { seed: 7, initStd: 0.2 });
    m.train(); // all three dropouts, with masks fixed by resetDropout
    const x = ids(B * T, 40, 3);
    checkGrads(m, { inputIds: x, shape: [B, T], attentionMask: mask, labels: x }, ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.0.attn.c_attn.bias', 'transformer.h.1.mlp.c_fc.weight', 'transformer.ln_f.weight']);
  });

  test('BERT classification with token types and padding, hidden and attention dropout active (fixed masks)', () => {
    using m = createBert({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, hiddenDropout: 0.2, attentionDropout: 0.2 }, { seed: 9, initStd: 0.2 });
    m.train();
    const x = ids(B * T, 40, 4);
    const tt = Int32Array.from([0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0]);
    checkGrads(m, { inputIds: x, shape: [B, T], attentionMask: mask, tokenTypeIds: tt, labels: Int32Array.of(1, 0) }, [
      'bert.embeddings.word_embeddings.weight',
      'bert.embeddings.token_type_embeddings.weight',
      'bert.embeddings.LayerNorm.bias',
      'bert.encoder.layer.0.attention.self.key.weight',
      'bert.encoder.layer.1.output.dense.weight',
      'bert.pooler.dense.weight',
      'classifier.bias',
    ]);
  });

  test('RoBERTa regression and DistilBERT classification', () => {
    using r = createBert({ modelType: 'roberta', vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 2, maxPositions: 20 }, { seed: 11, initStd: 0.2, task: 'regression', numLabels: 2 });
    r.eval();
    const x = ids(B * T, 40, 5, 2);
    x[10] = 1;
    x[11] = 1;
    checkGrads(r, { inputIds: x, shape: [B, T], attentionMask: mask, labels: Float32Array.of(0.5, -1, 2, 0.25) }, ['roberta.embeddings.position_embeddings.weight', 'roberta.encoder.layer.0.attention.self.query.weight', 'classifier.dense.weight', 'classifier.out_proj.weight']);
    using d = createBert({ modelType: 'distilbert', vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 2 }, { seed: 13, initStd: 0.2 });
    d.eval();
    checkGrads(d, { inputIds: ids(B * T, 40, 6), shape: [B, T], attentionMask: mask, labels: Int32Array.of(0, 1) }, ['distilbert.transformer.layer.0.attention.v_lin.weight', 'distilbert.transformer.layer.1.ffn.lin1.weight', 'pre_classifier.weight']);
  });
});

describe('frozen parameters', () => {
  test('get no gradient, and the trainable ones get the same gradient as in a fully trainable model', () => {
    const cfg = { vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 3, numHeads: 4, numKvHeads: 2 };
    using full = createLlama(cfg, { seed: 1, initStd: 0.2 });
    using part = createLlama(cfg, { seed: 1, initStd: 0.2 });
    const x = ids(B * T, 40, 7);
    const batch: Batch = { inputIds: x, shape: [B, T], labels: x };
    for (const m of [full, part]) m.eval();
    part.freeze();
    const trainable = ['model.layers.1.self_attn.q_proj.weight', 'model.layers.2.mlp.down_proj.weight'];
    for (const p of part.parameters()) if (trainable.includes(p.name)) p.trainable = true;
    for (const m of [full, part]) {
      m.zeroGrad();
      m.forward(batch);
      m.backward();
    }
    const fullGrads = new Map(full.parameters().map((p) => [p.name, p.grad!.toArray()]));
    for (const p of part.parameters()) {
      if (trainable.includes(p.name)) expect(Array.from(p.grad!.toArray())).toEqual(Array.from(fullGrads.get(p.name)!));
      else expect(p.grad, p.name).toBeNull();
    }
  });

  test('a model with only its head trainable backpropagates into the head only', () => {
    using m = createBert({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4 }, { seed: 2 });
    m.eval();
    m.freeze();
    for (const p of m.parameters()) if (p.name.startsWith('classifier.')) p.trainable = true;
    m.zeroGrad();
    m.forward({ inputIds: ids(B * T, 40, 8), shape: [B, T], labels: Int32Array.of(0, 1) });
    m.backward();
    for (const p of m.parameters()) expect(p.grad === null, p.name).toBe(!p.name.startsWith('classifier.'));
  });
});
