/**
 * GPT-2: token + learned position embeddings, N pre-LayerNorm blocks (ln_1 → causal attention
 * with a fused Conv1D c_attn → c_proj → residual; ln_2 → c_fc → GELU (tanh) → c_proj →
 * residual), ln_f, and a head: the LM head tied to wte, or a classification/regression `score`
 * (no bias) on the last non-padding token.
 *
 * Names follow GPT2LMHeadModel / GPT2ForSequenceClassification: `transformer.wte.weight`,
 * `transformer.h.0.attn.c_attn.weight` ([in, out], Conv1D layout), …, `transformer.ln_f.weight`,
 * `score.weight`.
 */
import { describe, invalidArgument } from '../errors.js';
import * as F from '../nn/functional.js';
import { Dropout, type Embedding, GELU, LayerNorm, type Linear } from '../nn/layers.js';
import { type Module, storageOf } from '../nn/module.js';
import { add, axpy } from '../ops/index.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import { Init, type ModelOptions, resolveTask, TransformerModel } from './base.js';
import { type Batch, checkBatch, Container, type ForwardOutput, KVCache, RowGather, type SdpaCall, SdpaCore } from './common.js';
import { type Gpt2Config, gpt2Config, type Gpt2ConfigInit, type Task } from './config.js';
import { lastTokenRows } from './llama.js';

const hasTrainable = (m: Module): boolean => m.parameters().some((p) => p.trainable);

/** Causal self-attention with the fused q/k/v projection c_attn [C, 3C] and c_proj. */
export class Gpt2Attention extends Container {
  readonly c_attn: Linear;
  readonly c_proj: Linear;
  readonly resid_dropout: Dropout;
  readonly core: SdpaCore;

  constructor(c: Gpt2Config, init: Init, seed: number) {
    super();
    const C = c.hiddenSize;
    this.c_attn = this.put('c_attn', init.linear(C, 3 * C, true, 'conv1d'));
    this.c_proj = this.put('c_proj', init.linear(C, C, true, 'conv1d'));
    this.resid_dropout = this.put('resid_dropout', new Dropout(c.residDropout, { seed }));
    this.core = this.put('core', new SdpaCore({ heads: c.numHeads, kvHeads: c.numHeads, headDim: C / c.numHeads, causal: true, rope: null, dropout: c.attnDropout, seed: seed + 500 }));
  }

  forward(x: Tensor, call: SdpaCall): Tensor {
    const { B, T } = call;
    const C = this.c_proj.inFeatures;
    const qkv = this.c_attn.forward(x); // [B, T, 3C]: q | k | v per token
    // the split: each token's row viewed as 3 "time steps" of one C-wide head, and step j sliced
    // out (a strided copy in qkv's dtype)
    const rows = this.view('qkv4', qkv, [B * T, 3, 1, C]);
    const [q, k, v] = (['q', 'k', 'v'] as const).map((n, j) => {
      const t = this.workspace(n, [B, T, C], storageOf(qkv));
      F.timeSlice(rows, this.view(`${n}4`, t, [B * T, 1, 1, C]), j);
      return t;
    }) as [Tensor, Tensor, Tensor];
    const o = this.core.forward(q, k, v, call);
    return this.resid_dropout.forward(this.c_proj.forward(o));
  }

  backward(dOut: Tensor): Tensor {
    const { dq, dk, dv } = this.core.backward(this.c_proj.backward(this.resid_dropout.backward(dOut))!);
    const C = dq.shape[dq.rank - 1]!;
    const N = dq.size / C;
    const dqkv = this.workspace('dqkv', [...dq.shape.slice(0, -1), 3 * C], storageOf(dq));
    const rows = this.view('dqkv4', dqkv, [N, 3, 1, C]);
    // the split's reverse: each gradient written at its step; the three cover dqkv
    [dq, dk, dv].forEach((d, j) => F.kvCacheWrite(this.view(`d${'qkv'[j]}4`, d, [N, 1, 1, C]), rows, j));
    return this.c_attn.backward(dqkv)!;
  }
}

/** c_fc → GELU → c_proj → dropout. */
export class Gpt2MLP extends Container {
  readonly c_fc: Linear;
  readonly act: GELU;
  readonly c_proj: Linear;
  readonly dropout: Dropout;

  constructor(c: Gpt2Config, init: Init, seed: number) {
    super();
    this.c_fc = this.put('c_fc', init.linear(c.hiddenSize, c.intermediateSize, true, 'conv1d'));
    this.act = this.put('act', new GELU({ approximate: c.activation }));
    this.c_proj = this.put('c_proj', init.linear(c.intermediateSize, c.hiddenSize, true, 'conv1d'));
    this.dropout = this.put('dropout', new Dropout(c.residDropout, { seed }));
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.c_proj.forward(this.act.forward(this.c_fc.forward(x))));
  }

  backward(dOut: Tensor): Tensor {
    return this.c_fc.backward(this.act.backward(this.c_proj.backward(this.dropout.backward(dOut))!))!;
  }
}

export class Gpt2Block extends Container {
  readonly ln_1: LayerNorm;
  readonly attn: Gpt2Attention;
  readonly ln_2: LayerNorm;
  readonly mlp: Gpt2MLP;

  constructor(c: Gpt2Config, init: Init, seed: number) {
    super();
    this.ln_1 = this.put('ln_1', new LayerNorm(c.hiddenSize, { eps: c.layerNormEps }));
    this.attn = this.put('attn', new Gpt2Attention(c, init, seed));
    this.ln_2 = this.put('ln_2', new LayerNorm(c.hiddenSize, { eps: c.layerNormEps }));
    this.mlp = this.put('mlp', new Gpt2MLP(c, init, seed + 1));
  }

  forward(x: Tensor, call: SdpaCall): Tensor {
    const h = this.workspace('h', x.shape, storageOf(x));
    const m = this.mlp.forward(this.ln_2.forwardAdd(x, this.attn.forward(this.ln_1.forward(x), call), h)); // h = x + attn
    return add(h, m, this.workspace('out', x.shape, storageOf(x)));
  }

  backward(dOut: Tensor): Tensor {
    const dh = this.ln_2.backward(this.mlp.backward(dOut));
    axpy(1, dOut, dh);
    const dx = this.ln_1.backward(this.attn.backward(dh));
    axpy(1, dh, dx);
    return dx;
  }
}

/** GPT-2 with its tied LM head, or a `score` head for classification/regression. */
export class Gpt2Model extends TransformerModel {
  readonly config: Gpt2Config;
  readonly task: Task;
  readonly numLabels: number;
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly drop: Dropout;
  readonly h: Gpt2Block[];
  readonly ln_f: LayerNorm;
  readonly score: Linear | null;
  readonly #pick = new RowGather();
  #pos = new Int32Array(0);
  #fwd: { hidden: Tensor; pooled: boolean } | null = null;

  constructor(config: Gpt2Config, options: ModelOptions = {}) {
    super();
    const c = (this.config = gpt2Config(config));
    const { task, numLabels } = resolveTask(options, 'causal-lm', ['causal-lm', 'sequence-classification', 'regression'], 'gpt2');
    this.task = task;
    this.numLabels = numLabels;
    const init = new Init(options);
    const seed = options.seed ?? 0;
    this.initCheckpointing(options);
    this.wte = this.put('transformer.wte', init.embedding(c.vocabSize, c.hiddenSize));
    this.wpe = this.put('transformer.wpe', init.embedding(c.maxPositions, c.hiddenSize));
    const act = options.activations ?? 'float32';
    if (act !== 'float32' && act !== 'bfloat16') invalidArgument('activations', "'float32' or 'bfloat16'", describe(act));
    this.wte.activations = act; // the embeddings write their rows in `act`; every later activation takes its input's dtype
    this.wpe.activations = act;
    this.drop = this.put('transformer.drop', new Dropout(c.embdDropout, { seed: seed + 1000 }));
    this.h = [];
    for (let i = 0; i < c.numLayers; i++) this.h.push(this.put(`transformer.h.${i}`, new Gpt2Block(c, init, seed + 1001 + 2 * i)));
    this.ln_f = this.put('transformer.ln_f', new LayerNorm(c.hiddenSize, { eps: c.layerNormEps }));
    this.score = task === 'causal-lm' ? null : this.put('score', init.head(c.hiddenSize, numLabels, false));
    this.finishInit(init);
  }

  #trunk(ids: Int32Array, B: number, T: number, call: Omit<SdpaCall, 'B' | 'T'>): Tensor {
    if (this.#pos.length !== B * T) this.#pos = new Int32Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) this.#pos[b * T + t] = call.offset + t;
    const w = this.wte.forward(ids, [B, T]);
    const e = add(w, this.wpe.forward(this.#pos, [B, T]), this.workspace('emb', [B, T, this.config.hiddenSize], storageOf(w)));
    const x = this.drop.forward(e);
    const run = (i: number, y: Tensor): Tensor => this.h[i]!.forward(y, { ...call, B, T, cache: call.cache ? { layer: call.cache.all.layers[i]!, all: call.cache.all } : null });
    return this.ln_f.forward(this.forwardBlocks(this.h, x, B, run, call.cache !== null));
  }

  #lmHead(h: Tensor): Tensor {
    const y = this.workspace('logits', [...h.shape.slice(0, -1), this.config.vocabSize], storageOf(h));
    return F.linearForward(h, this.wte.weight.tensor, null, y);
  }

  forward(batch: Batch): ForwardOutput {
    const c = this.config;
    const { B, T, ids, mask } = checkBatch(batch, c.vocabSize, c.maxPositions, this.positionShift);
    this.checkLabels(batch, B, T);
    const maskT = mask === null ? null : this.workspace('mask', [B, T]).set(mask);
    const h = this.#trunk(ids, B, T, { mask: maskT, offset: this.positionShift, cache: null });
    let logits: Tensor;
    if (this.task === 'causal-lm') {
      logits = this.#lmHead(h);
      this.#fwd = { hidden: h, pooled: false };
    } else {
      logits = this.score!.forward(this.#pick.forward(h, lastTokenRows(ids, mask, B, T, c.padTokenId)));
      this.#fwd = { hidden: h, pooled: true };
    }
    return this.headLoss(logits, batch, B, T);
  }

  backward(dLogits?: Tensor): void {
    const d = this.dLogitsFor(dLogits);
    const f = this.#fwd!;
    let dh: Tensor;
    if (f.pooled) dh = this.#pick.backward(this.score!.backward(d)!);
    else {
      dh = this.workspace('dh', f.hidden.shape, storageOf(f.hidden));
      F.linearBackward(f.hidden, this.wte.weight.tensor, d, { dx: dh, dW: this.wte.weight.gradTarget(), db: null });
    }
    let dx = this.ln_f.backward(dh);
    const embTrainable = hasTrainable(this.wte) || hasTrainable(this.wpe);
    let lowest = embTrainable ? -1 : this.h.length;
    if (lowest >= 0) for (let i = 0; i < this.h.length; i++) if (hasTrainable(this.h[i]!)) { lowest = i; break; }
    dx = this.backwardBlocks(this.h, dx, Math.max(lowest, 0), (i, d) => this.h[i]!.backward(d));
    if (lowest < 0) {
      const de = this.drop.backward(dx);
      this.wte.backward(de);
      this.wpe.backward(de);
    }
  }

  override createCache(B: number, maxT: number): KVCache {
    if (this.task !== 'causal-lm') super.createCache(B, maxT);
    const c = this.config;
    return new KVCache(B, Math.min(maxT, c.maxPositions), c.numLayers, c.numHeads, c.hiddenSize / c.numHeads, this.device, this.wte.storage);
  }

  override forwardCached(ids: Int32Array, B: number, T: number, cache: KVCache): Tensor {
    const offset = cache.length;
    checkBatch({ inputIds: ids, shape: [B, T] }, this.config.vocabSize, cache.maxT, offset);
    cache.reserve(T);
    const h = this.#trunk(ids, B, T, { mask: null, offset, cache: { layer: cache.layers[0]!, all: cache } });
    cache.length += T;
    this.#fwd = null;
    this.last = null;
    return this.#lmHead(h);
  }

  override to(device: Device): this {
    super.to(device);
    this.#pick.to(device);
    return this;
  }

  override dispose(): void {
    this.#pick.dispose();
    super.dispose();
  }
}

/** A randomly initialised GPT-2 (normal(0, 0.02) weights from `seed`). */
export function createGpt2(config: Gpt2ConfigInit, options: ModelOptions = {}): Gpt2Model {
  return new Gpt2Model(gpt2Config(config), options);
}
