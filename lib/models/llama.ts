/**
 * The LLaMA family (LLaMA, Mistral, Qwen2, llama2.c checkpoints): token embedding, N pre-norm
 * decoder layers (RMSNorm → grouped-query attention with RoPE → residual; RMSNorm → SwiGLU MLP
 * → residual), a final RMSNorm, and a head: the LM head (tied to the embedding or not), or a
 * classification/regression `score` on the last non-padding token.
 *
 * Names follow LlamaForCausalLM / LlamaForSequenceClassification:
 * `model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.weight`, …, `model.norm.weight`,
 * `lm_head.weight` (absent when tied), `score.weight`.
 */
import { invalidArgument } from '../errors.js';
import * as F from '../nn/functional.js';
import { type Embedding, type Linear, RMSNorm } from '../nn/layers.js';
import { type Module, saved, storageOf } from '../nn/module.js';
import { add, axpy } from '../ops/index.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import { Init, type ModelOptions, resolveTask, TransformerModel } from './base.js';
import { type Batch, checkBatch, Container, type ForwardOutput, KVCache, RowGather, type SdpaCall, SdpaCore } from './common.js';
import { type LlamaConfig, llamaConfig, type Task } from './config.js';

const hasTrainable = (m: Module): boolean => m.parameters().some((p) => p.trainable);

/** Grouped-query self-attention with RoPE: q_proj, k_proj, v_proj, o_proj. */
export class LlamaAttention extends Container {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly core: SdpaCore;

  constructor(c: LlamaConfig, init: Init, seed = 0) {
    super();
    const H = c.numHeads * c.headDim;
    const Hkv = c.numKvHeads * c.headDim;
    this.q_proj = this.put('q_proj', init.linear(c.hiddenSize, H, c.qkvBias));
    this.k_proj = this.put('k_proj', init.linear(c.hiddenSize, Hkv, c.qkvBias));
    this.v_proj = this.put('v_proj', init.linear(c.hiddenSize, Hkv, c.qkvBias));
    this.o_proj = this.put('o_proj', init.linear(H, c.hiddenSize, c.outputBias));
    this.core = this.put('core', new SdpaCore({ heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim, causal: true, rope: { base: c.ropeTheta, convention: c.ropeConvention }, dropout: c.attentionDropout, seed }));
  }

  forward(x: Tensor, call: SdpaCall): Tensor {
    const o = this.core.forward(this.q_proj.forward(x), this.k_proj.forward(x), this.v_proj.forward(x), call);
    return this.o_proj.forward(o);
  }

  backward(dOut: Tensor): Tensor {
    const { dq, dk, dv } = this.core.backward(this.o_proj.backward(dOut)!);
    const x = this.workspace('dx', [...dq.shape.slice(0, -1), this.q_proj.inFeatures], storageOf(dq));
    this.q_proj.backward(dq, { dx: x, accumulate: false });
    this.k_proj.backward(dk, { dx: x, accumulate: true });
    this.v_proj.backward(dv, { dx: x, accumulate: true });
    return x;
  }

}

/** down_proj(silu(gate_proj(x)) · up_proj(x)). */
export class LlamaMLP extends Container {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;

  constructor(c: LlamaConfig, init: Init) {
    super();
    this.gate_proj = this.put('gate_proj', init.linear(c.hiddenSize, c.intermediateSize, c.mlpBias));
    this.up_proj = this.put('up_proj', init.linear(c.hiddenSize, c.intermediateSize, c.mlpBias));
    this.down_proj = this.put('down_proj', init.linear(c.intermediateSize, c.hiddenSize, c.mlpBias));
  }

  #g: Tensor | null = null;
  #u: Tensor | null = null;

  forward(x: Tensor): Tensor {
    const g = this.gate_proj.forward(x);
    const u = this.up_proj.forward(x);
    this.#g = g;
    this.#u = u;
    return this.down_proj.forward(F.swigluForward(g, u, this.workspace('h', g.shape, storageOf(g))));
  }

  backward(dOut: Tensor): Tensor {
    const g = saved(this.#g, 'LlamaMLP');
    const u = saved(this.#u, 'LlamaMLP');
    const dh = this.down_proj.backward(dOut)!;
    const dg = this.workspace('dg', dh.shape, storageOf(g));
    const du = this.workspace('du', dh.shape, storageOf(g));
    F.swigluBackward(g, u, dh, dg, du);
    const dx = this.workspace('dx', [...dh.shape.slice(0, -1), this.gate_proj.inFeatures], storageOf(g));
    this.gate_proj.backward(dg, { dx, accumulate: false });
    this.up_proj.backward(du, { dx, accumulate: true });
    return dx;
  }
}

/** Pre-norm decoder layer: x + attn(norm(x)), then h + mlp(norm(h)). */
export class LlamaDecoderLayer extends Container {
  readonly input_layernorm: RMSNorm;
  readonly self_attn: LlamaAttention;
  readonly post_attention_layernorm: RMSNorm;
  readonly mlp: LlamaMLP;

  constructor(c: LlamaConfig, init: Init, seed = 0) {
    super();
    this.input_layernorm = this.put('input_layernorm', new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps }));
    this.self_attn = this.put('self_attn', new LlamaAttention(c, init, seed));
    this.post_attention_layernorm = this.put('post_attention_layernorm', new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps }));
    this.mlp = this.put('mlp', new LlamaMLP(c, init));
  }

  forward(x: Tensor, call: SdpaCall): Tensor {
    const a = this.self_attn.forward(this.input_layernorm.forward(x), call);
    const h = this.workspace('h', x.shape, storageOf(x));
    const m = this.mlp.forward(this.post_attention_layernorm.forwardAdd(x, a, h)); // h = x + a
    return add(h, m, this.workspace('out', x.shape, storageOf(x)));
  }

  backward(dOut: Tensor): Tensor {
    const dh = this.post_attention_layernorm.backward(this.mlp.backward(dOut));
    axpy(1, dOut, dh);
    const dx = this.input_layernorm.backward(this.self_attn.backward(dh));
    axpy(1, dh, dx);
    return dx;
  }
}

/**
 * A LLaMA-family transformer with a causal LM head or a sequence classification/regression
 * head (`score`, no bias, read at the last non-padding token as Hugging Face does).
 */
export class LlamaModel extends TransformerModel {
  readonly config: LlamaConfig;
  readonly task: Task;
  readonly numLabels: number;
  readonly embed_tokens: Embedding;
  readonly layers: LlamaDecoderLayer[];
  readonly norm: RMSNorm;
  /** The LM head; null when tied to the embedding (causal-lm) or for the other tasks. */
  readonly lm_head: Linear | null;
  /** The classification/regression head. */
  readonly score: Linear | null;
  readonly #pick = new RowGather();
  #fwd: { B: number; T: number; pooled: boolean; hidden: Tensor } | null = null;

  constructor(config: LlamaConfig, options: ModelOptions = {}) {
    super();
    const c = (this.config = llamaConfig(config));
    const { task, numLabels } = resolveTask(options, 'causal-lm', ['causal-lm', 'sequence-classification', 'regression'], c.modelType);
    this.task = task;
    this.numLabels = numLabels;
    const init = new Init(options);
    this.initCheckpointing(options);
    this.embed_tokens = this.put('model.embed_tokens', init.embedding(c.vocabSize, c.hiddenSize));
    const act = options.activations ?? 'float32';
    if (act !== 'float32' && act !== 'bfloat16') invalidArgument('activations', "'float32' or 'bfloat16'", String(act));
    this.embed_tokens.activations = act; // every later activation takes its input's dtype
    this.layers = [];
    for (let i = 0; i < c.numLayers; i++) this.layers.push(this.put(`model.layers.${i}`, new LlamaDecoderLayer(c, init, (options.seed ?? 0) + 1001 + i)));
    this.norm = this.put('model.norm', new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps }));
    this.lm_head = task === 'causal-lm' && !c.tieWordEmbeddings ? this.put('lm_head', init.head(c.hiddenSize, c.vocabSize, false)) : null;
    this.score = task === 'causal-lm' ? null : this.put('score', init.head(c.hiddenSize, numLabels, false));
    this.finishInit(init);
  }

  /** [B, T] mask tensor (reused), or null when every token is real. */
  #mask(B: number, T: number, mask: Float32Array | null): Tensor | null {
    if (mask === null) return null;
    return this.workspace('mask', [B, T]).set(mask);
  }

  #trunk(ids: Int32Array, B: number, T: number, call: Omit<SdpaCall, 'B' | 'T'>): Tensor {
    const x = this.embed_tokens.forward(ids, [B, T]);
    const run = (i: number, y: Tensor): Tensor => this.layers[i]!.forward(y, { ...call, B, T, cache: call.cache ? { layer: call.cache.all.layers[i]!, all: call.cache.all } : null });
    return this.norm.forward(this.forwardBlocks(this.layers, x, B, run, call.cache !== null));
  }

  #lmHead(h: Tensor): Tensor {
    if (this.lm_head) return this.lm_head.forward(h);
    const y = this.workspace('tied_logits', [...h.shape.slice(0, -1), this.config.vocabSize], storageOf(h));
    return F.linearForward(h, this.embed_tokens.weight.tensor, null, y);
  }

  forward(batch: Batch): ForwardOutput {
    const c = this.config;
    const { B, T, ids, mask } = checkBatch(batch, c.vocabSize, c.maxPositions, this.positionShift);
    this.checkLabels(batch, B, T);
    if (c.slidingWindow !== null && T > c.slidingWindow) invalidArgument('batch.shape', `at most ${c.slidingWindow} positions (the sliding window is not implemented)`, `T = ${T}`);
    const h = this.#trunk(ids, B, T, { mask: this.#mask(B, T, mask), offset: this.positionShift, cache: null });
    let logits: Tensor;
    if (this.task === 'causal-lm') {
      logits = this.#lmHead(h);
      this.#fwd = { B, T, pooled: false, hidden: h };
    } else {
      const rows = lastTokenRows(ids, mask, B, T, c.padTokenId);
      logits = this.score!.forward(this.#pick.forward(h, rows));
      this.#fwd = { B, T, pooled: true, hidden: h };
    }
    return this.headLoss(logits, batch, B, T);
  }

  backward(dLogits?: Tensor): void {
    const d = this.dLogitsFor(dLogits);
    const f = this.#fwd!;
    let dh: Tensor;
    if (f.pooled) dh = this.#pick.backward(this.score!.backward(d)!);
    else if (this.lm_head) dh = this.lm_head.backward(d)!;
    else {
      dh = this.workspace('dh', f.hidden.shape, storageOf(f.hidden));
      F.linearBackward(f.hidden, this.embed_tokens.weight.tensor, d, { dx: dh, dW: this.embed_tokens.weight.gradTarget(), db: null });
    }
    let dx = this.norm.backward(dh);
    // Layers below the lowest one with a trainable parameter need no backward at all.
    let lowest = hasTrainable(this.embed_tokens) ? -1 : this.layers.length;
    if (lowest >= 0) for (let i = 0; i < this.layers.length; i++) if (hasTrainable(this.layers[i]!)) { lowest = i; break; }
    dx = this.backwardBlocks(this.layers, dx, Math.max(lowest, 0), (i, d) => this.layers[i]!.backward(d));
    if (lowest < 0) this.embed_tokens.backward(dx);
  }

  override createCache(B: number, maxT: number): KVCache {
    if (this.task !== 'causal-lm') super.createCache(B, maxT);
    const c = this.config;
    return new KVCache(B, Math.min(maxT, c.maxPositions), c.numLayers, c.numKvHeads, c.headDim, this.device, this.embed_tokens.storage);
  }

  override forwardCached(ids: Int32Array, B: number, T: number, cache: KVCache): Tensor {
    const c = this.config;
    const offset = cache.length;
    checkBatch({ inputIds: ids, shape: [B, T] }, c.vocabSize, cache.maxT, offset);
    if (c.slidingWindow !== null && offset + T > c.slidingWindow) invalidArgument('tokens', `at most ${c.slidingWindow} positions in all (the sliding window is not implemented)`, `${offset + T}`);
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

/**
 * Row of each sequence's last token, as Hugging Face picks it for classification: the
 * rightmost token that is not padTokenId; without a pad id, the rightmost real token of the
 * attention mask (or T − 1).
 */
export function lastTokenRows(ids: Int32Array, mask: Float32Array | null, B: number, T: number, padTokenId: number | null): Int32Array {
  const rows = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    let last = padTokenId === null && mask === null ? T - 1 : 0;
    for (let t = 0; t < T; t++) {
      const real = padTokenId !== null ? ids[b * T + t] !== padTokenId : mask === null || mask[b * T + t] !== 0;
      if (real) last = t;
    }
    rows[b] = b * T + last;
  }
  return rows;
}

/** A randomly initialised LLaMA-family model (normal(0, 0.02) weights from `seed`). */
export function createLlama(config: Parameters<typeof llamaConfig>[0], options: ModelOptions = {}): LlamaModel {
  return new LlamaModel(llamaConfig(config), options);
}

