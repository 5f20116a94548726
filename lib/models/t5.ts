/**
 * T5 (v1.0, v1.1, Flan-T5, mT5): an encoder-decoder over one shared token embedding.
 *
 * Encoder: embedding → dropout → N blocks (self-attention with a bidirectional relative
 * position bias; feed-forward) → RMS layer norm → dropout. Decoder: embedding of the shifted
 * targets → dropout → N blocks (causal self-attention with a causal position bias;
 * cross-attention over the encoder output; feed-forward) → RMS layer norm → dropout → (× d^-0.5
 * when scaled) → LM head (the shared embedding when tied). The position bias lives in the first
 * block of each stack and is shared by every block of it. No attention scaling.
 *
 * Names follow T5ForConditionalGeneration (`shared.weight`, `encoder.block.0.layer.0.SelfAttention.q.weight`,
 * `encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, `encoder.final_layer_norm.weight`,
 * `decoder.…`, `lm_head.weight`).
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import * as F from '../nn/functional.js';
import { Dropout, type Embedding, type Linear, RMSNorm } from '../nn/layers.js';
import { type Module, storageOf } from '../nn/module.js';
import { activationStorage } from '../nn/embedding.js';
import { axpy, fill, scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { Init, type ModelOptions, TransformerModel } from './base.js';
import { type Batch, checkBatch, crossEntropyOutput, type ForwardOutput, KVCache } from './common.js';
import { fillPrefixCache } from './prefix-kv.js';
import type { Task } from './config.js';
import { relativePositionBucket, type T5Config, t5Config, type T5ConfigInit } from './t5-config.js';
import { hostValues, Seq2SeqState } from './t5-decoding.js';
import { type T5AttnCall, T5Block } from './t5-layers.js';

export { hostValues, Seq2SeqState };

const hasTrainable = (m: Module): boolean => m.parameters().some((p) => p.trainable);

/** A source/target batch: the encoder reads inputIds, the decoder the targets shifted right. */
export interface Seq2SeqBatch extends Batch {
  /** Decoder input ids [B·Tt]; default: labels shifted right behind the decoder start token. */
  readonly decoderInputIds?: Int32Array | null;
  /** [B·Tt] 0/1; absent means every target position is real (the causal mask still applies). */
  readonly decoderAttentionMask?: ArrayLike<number> | null;
  /** Target ids [B·Tt], −100 where ignored; the loss is the mean over the others (no shift). */
  readonly labels?: Int32Array | null;
}

/** One stack's relative position bias: [H, Tq, Tk] from the first block's bucket table, and its gradient. */
class PositionBias {
  readonly table: Embedding;
  readonly bidirectional: boolean;
  #buckets = new Int32Array(0);
  #dims = { Tq: 0, Tk: 0, offset: -1 };

  constructor(table: Embedding, bidirectional: boolean) {
    this.table = table;
    this.bidirectional = bidirectional;
  }

  /** Bucket of each (query, key) pair for queries at offset .. offset + Tq − 1. */
  buckets(c: T5Config, Tq: number, Tk: number, offset: number): Int32Array {
    const d = this.#dims;
    if (d.Tq === Tq && d.Tk === Tk && d.offset === offset) return this.#buckets;
    const b = new Int32Array(Tq * Tk);
    for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) b[i * Tk + j] = relativePositionBucket(j - (offset + i), this.bidirectional, c.numBuckets, c.maxDistance);
    this.#buckets = b;
    this.#dims = { Tq, Tk, offset };
    return b;
  }

  /** Writes the bias [H, Tq, Tk] into `out`. */
  fill(c: T5Config, Tq: number, Tk: number, offset: number, out: Tensor): Tensor {
    const H = c.numHeads;
    const w = hostValues(this.table.weight.tensor);
    const b = this.buckets(c, Tq, Tk, offset);
    const v = new Float32Array(H * Tq * Tk);
    for (let h = 0; h < H; h++) for (let p = 0; p < b.length; p++) v[h * b.length + p] = w[b[p]! * H + h]!;
    return out.set(v);
  }

  /** Adds Σ_b dbias [B, H, Tq, Tk] into the table's gradient (queries from `offset`: a decoder prefix's length). */
  backward(c: T5Config, dbias: Tensor, offset = 0): void {
    const dW = this.table.weight.gradTarget();
    if (!dW) return;
    const [B, H, Tq, Tk] = dbias.shape as [number, number, number, number];
    const d = hostValues(dbias);
    const b = this.buckets(c, Tq, Tk, offset);
    const g = hostValues(dW);
    const n = Tq * Tk;
    for (let bb = 0; bb < B; bb++)
      for (let h = 0; h < H; h++) {
        const off = (bb * H + h) * n;
        for (let p = 0; p < n; p++) g[b[p]! * H + h]! += d[off + p]!;
      }
    dW.set(g);
  }
}

interface StackFwd {
  ids: Int32Array;
  B: number;
  T: number;
  /** Prefix positions before the own keys (decoder self-attention under prefix tuning), else 0. */
  n: number;
  bias: Tensor;
  dbias: Tensor | null;
  dbiasSum: Tensor | null;
}

/** A T5 encoder-decoder with its LM head (task 'seq2seq-lm'). */
export class T5Model extends TransformerModel {
  readonly config: T5Config;
  readonly task: Task = 'seq2seq-lm';
  readonly numLabels = 0;
  readonly shared: Embedding;
  readonly encoderBlocks: T5Block[] = [];
  readonly decoderBlocks: T5Block[] = [];
  readonly encoderNorm: RMSNorm;
  readonly decoderNorm: RMSNorm;
  /** The untied LM head, or null when the head is the shared embedding. */
  readonly lm_head: Linear | null;
  readonly #encBias: PositionBias;
  readonly #decBias: PositionBias;
  readonly #drop: Record<'encIn' | 'encOut' | 'decIn' | 'decOut', Dropout>;
  #fwd: { enc: StackFwd; dec: StackFwd; encMask: Tensor | null; hidden: Tensor; needEnc: boolean } | null = null;
  /** Storage of the activations asked for (ModelOptions.activations). */
  readonly activations: 'float32' | 'bfloat16';
  /** The storage on the current device: `activations` on cuda, float32 on the CPU (activationStorage). */
  get storage(): 'float32' | 'bfloat16' {
    return activationStorage(this.activations, this.device);
  }

  constructor(config: T5ConfigInit, options: ModelOptions = {}) {
    super();
    const c = (this.config = t5Config(config));
    if (options.task !== undefined && options.task !== 'seq2seq-lm') invalidArgument('task', "'seq2seq-lm' for t5", describe(options.task));
    const init = new Init(options);
    const seed = options.seed ?? 0;
    const act = options.activations ?? 'float32';
    if (act !== 'float32' && act !== 'bfloat16') invalidArgument('activations', "'float32' or 'bfloat16'", describe(act));
    this.activations = act;
    this.shared = this.put('shared', init.embedding(c.vocabSize, c.hiddenSize));
    for (let i = 0; i < c.numLayers; i++) this.encoderBlocks.push(this.put(`encoder.block.${i}`, new T5Block(c, init, false, seed + 1001 + 10000 * i)));
    this.encoderNorm = this.put('encoder.final_layer_norm', new RMSNorm(c.hiddenSize, { eps: c.layerNormEps }));
    for (let i = 0; i < c.numDecoderLayers; i++) this.decoderBlocks.push(this.put(`decoder.block.${i}`, new T5Block(c, init, true, seed + 501001 + 10000 * i)));
    this.decoderNorm = this.put('decoder.final_layer_norm', new RMSNorm(c.hiddenSize, { eps: c.layerNormEps }));
    this.lm_head = c.tieWordEmbeddings ? null : this.put('lm_head', init.linear(c.hiddenSize, c.vocabSize, false));
    this.#encBias = new PositionBias(this.encoderBlocks[0]!.self.SelfAttention.put('relative_attention_bias', init.embedding(c.numBuckets, c.numHeads)), true);
    this.#decBias = new PositionBias(this.decoderBlocks[0]!.self.SelfAttention.put('relative_attention_bias', init.embedding(c.numBuckets, c.numHeads)), false);
    const d = (n: string, s: number): Dropout => this.put(n, new Dropout(c.dropout, { seed: seed + s }));
    this.#drop = { encIn: d('encoder.dropout', 11), encOut: d('encoder.final_dropout', 12), decIn: d('decoder.dropout', 13), decOut: d('decoder.final_dropout', 14) };
    this.finishInit(init); // the norms made on the host join the weights on options.device
  }

  /** Prefix positions of the decoder's self-attention (prefix tuning), or 0. */
  get decoderPrefixLength(): number {
    return this.decoderBlocks[0]!.self.SelfAttention.prefix?.length ?? 0;
  }

  #mask(key: string, B: number, T: number, m: Float32Array | null): Tensor | null {
    return m === null ? null : this.workspace(key, [B, T]).set(m);
  }

  /**
   * The shared embedding's rows of `ids` into the workspace `key` [B, T, C] in the activations'
   * dtype; `hook`: the shared embedding's hook (prompt tuning, the encoder's input only) rewrites
   * rows of the float32 lookup, which bf16 activations then round once (as Embedding.forward).
   */
  #embed(ids: Int32Array, key: string, B: number, T: number, hook: boolean): Tensor {
    const shape = [B, T, this.config.hiddenSize];
    const h = hook ? this.shared.hook : null;
    if (this.storage === 'float32') {
      const x = F.embeddingForward(ids, this.shared.weight.tensor, this.workspace(key, shape));
      h?.forward(x);
      return x;
    }
    const x32 = F.embeddingForward(ids, this.shared.weight.tensor, this.workspace(`${key}32`, shape));
    h?.forward(x32);
    return scale(x32, 1, this.workspace(key, shape, 'bfloat16'));
  }

  /** Encoder output [B, Ts, C] (a workspace); saves what backward needs. */
  #encode(ids: Int32Array, B: number, T: number, mask: Tensor | null, needGrad: boolean): { out: Tensor; s: StackFwd } {
    const c = this.config;
    const bias = this.#encBias.fill(c, T, T, 0, this.workspace('encBias', [c.numHeads, T, T]));
    const wantDb = needGrad && this.#encBias.table.weight.trainable;
    const s: StackFwd = { ids, B, T, n: 0, bias, dbias: wantDb ? this.workspace('encDbias', [B, c.numHeads, T, T]) : null, dbiasSum: wantDb ? this.workspace('encDbiasSum', [B, c.numHeads, T, T]) : null };
    // Prompt tuning (lib/peft/prompt.ts): the hook on the shared embedding writes the virtual tokens
    // into the encoder's input; the decoder's embedding is never hooked, as PEFT does it.
    let x = this.#embed(ids, 'encEmb', B, T, true);
    x = this.#drop.encIn.forward(x);
    const call: T5AttnCall = { B, Tq: T, Tk: T, mask, bias, dbias: s.dbias, cache: null, kv: null };
    for (const blk of this.encoderBlocks) x = blk.forward(x, call, null, null);
    return { out: this.#drop.encOut.forward(this.encoderNorm.forward(x)), s };
  }

  /** Checks a seq2seq batch; returns decoder ids, labels and masks. */
  #checkTargets(batch: Seq2SeqBatch, B: number): { dec: Int32Array; Tt: number; labels: Int32Array | null; decMask: Float32Array | null } {
    const c = this.config;
    const labels = batch.labels ?? null;
    if (labels !== null && !(labels instanceof Int32Array)) invalidArgument('batch.labels', 'an Int32Array of target ids (or −100)', describe(labels));
    let dec = batch.decoderInputIds ?? null;
    if (dec !== null && !(dec instanceof Int32Array)) invalidArgument('batch.decoderInputIds', 'an Int32Array', describe(dec));
    if (dec === null && labels === null) invalidArgument('batch', 'labels or decoderInputIds for the decoder', 'neither');
    const n = (dec ?? labels)!.length;
    if (n === 0 || n % B !== 0) throw new ShapeError(`batch.${dec ? 'decoderInputIds' : 'labels'}: expected a positive multiple of B = ${B} ids, got ${n}`, { argument: dec ? 'batch.decoderInputIds' : 'batch.labels', expected: `a multiple of ${B}`, got: `${n}` });
    const Tt = n / B;
    if (labels !== null) {
      if (labels.length !== B * Tt) throw new ShapeError(`batch.labels: expected ${B * Tt} labels (B·Tt), got ${labels.length}`, { argument: 'batch.labels', expected: `${B * Tt}`, got: `${labels.length}` });
      for (let i = 0; i < labels.length; i++) {
        const v = labels[i]!;
        if (v !== -100 && (v < 0 || v >= c.vocabSize)) invalidArgument('batch.labels', `values in [0, ${c.vocabSize}) or −100`, `${v} at index ${i}`);
      }
    }
    if (dec === null) {
      // transformers' _shift_right: decoder start token, then the labels with −100 as padding.
      dec = new Int32Array(B * Tt);
      for (let b = 0; b < B; b++) {
        dec[b * Tt] = c.decoderStartTokenId;
        for (let t = 1; t < Tt; t++) {
          const v = labels![b * Tt + t - 1]!;
          dec[b * Tt + t] = v === -100 ? c.padTokenId : v;
        }
      }
    }
    const checked = checkBatch({ inputIds: dec, shape: [B, Tt], attentionMask: batch.decoderAttentionMask ?? null }, c.vocabSize, null);
    return { dec, Tt, labels, decMask: checked.mask };
  }

  forward(batch: Batch): ForwardOutput {
    const c = this.config;
    const { B, T: Ts, ids, mask } = checkBatch(batch, c.vocabSize, null);
    const { dec, Tt, labels, decMask } = this.#checkTargets(batch as Seq2SeqBatch, B);
    const encMask = this.#mask('encMask', B, Ts, mask);
    const needEnc = this.encoderBlocks.some(hasTrainable) || hasTrainable(this.encoderNorm) || this.shared.weight.trainable || this.shared.hook !== null;
    const enc = this.#encode(ids, B, Ts, encMask, needEnc);
    // Decoder. With a prefix (prefix tuning) its n keys come first: queries sit at n … n + Tt − 1
    // for the position bias and the causal mask, and the prefix is never masked (as transformers
    // treats a cache of n positions that PEFT fills with the prefix).
    const n = this.decoderPrefixLength;
    const Tk = n + Tt;
    const decBias = this.#decBias.fill(c, Tt, Tk, n, this.workspace('decBias', [c.numHeads, Tt, Tk]));
    const wantDb = this.#decBias.table.weight.trainable;
    const ds: StackFwd = { ids: dec, B, T: Tt, n, bias: decBias, dbias: wantDb ? this.workspace('decDbias', [B, c.numHeads, Tt, Tk]) : null, dbiasSum: wantDb ? this.workspace('decDbiasSum', [B, c.numHeads, Tt, Tk]) : null };
    let x = this.#embed(dec, 'decEmb', B, Tt, false);
    x = this.#drop.decIn.forward(x);
    let selfMask = decMask;
    if (selfMask && n) {
      selfMask = new Float32Array(B * Tk).fill(1);
      for (let b = 0; b < B; b++) selfMask.set(decMask!.subarray(b * Tt, (b + 1) * Tt), b * Tk + n);
    }
    const self: T5AttnCall = { B, Tq: Tt, Tk, mask: this.#mask('decMask', B, Tk, selfMask), bias: decBias, dbias: ds.dbias, cache: null, kv: null };
    const cross: T5AttnCall = { B, Tq: Tt, Tk: Ts, mask: encMask, bias: null, dbias: null, cache: null, kv: null };
    for (const blk of this.decoderBlocks) x = blk.forward(x, self, enc.out, cross);
    const hidden = this.#hidden(x);
    const logits = this.#head(hidden);
    this.#fwd = { enc: enc.s, dec: ds, encMask, hidden, needEnc };
    if (labels === null) return (this.last = { logits, loss: null, dLogits: null, count: 0 });
    const d = this.workspace('dlogits', logits.shape, storageOf(logits));
    return (this.last = crossEntropyOutput(logits, labels, d));
  }

  /** Final norm, dropout and the tied head's d^-0.5 scaling of the decoder output. */
  #hidden(x: Tensor): Tensor {
    const h = this.#drop.decOut.forward(this.decoderNorm.forward(x));
    if (!this.config.scaleDecoderOutputs) return h;
    return scale(h, this.config.hiddenSize ** -0.5, this.workspace('scaled', h.shape, storageOf(h)));
  }

  #head(h: Tensor): Tensor {
    if (this.lm_head) return this.lm_head.forward(h);
    return F.linearForward(h, this.shared.weight.tensor, null, this.workspace('tied_logits', [...h.shape.slice(0, -1), this.config.vocabSize], storageOf(h)));
  }

  backward(dLogits?: Tensor): void {
    const d = this.dLogitsFor(dLogits);
    const f = this.#fwd!;
    const c = this.config;
    let dh: Tensor;
    if (this.lm_head) dh = this.lm_head.backward(d)!;
    else {
      dh = this.workspace('dh', f.hidden.shape, storageOf(f.hidden));
      F.linearBackward(f.hidden, this.shared.weight.tensor, d, { dx: dh, dW: this.shared.weight.gradTarget(), db: null });
    }
    if (c.scaleDecoderOutputs) dh = scale(dh, c.hiddenSize ** -0.5, this.workspace('dscaled', dh.shape, storageOf(dh)));
    let dx = this.decoderNorm.backward(this.#drop.decOut.backward(dh));
    const dEnc = f.needEnc ? fill(this.workspace('dEnc', [f.enc.B, f.enc.T, c.hiddenSize], this.storage), 0) : null;
    const sharedTrainable = this.shared.weight.trainable;
    const full = f.needEnc || sharedTrainable || f.dec.dbias !== null;
    let lowest = this.decoderBlocks.length;
    if (full) lowest = 0;
    else for (let i = 0; i < this.decoderBlocks.length; i++) if (hasTrainable(this.decoderBlocks[i]!)) { lowest = i; break; }
    this.#stackBackward(this.decoderBlocks, lowest, dx, dEnc, f.dec, this.#decBias, (g) => this.#drop.decIn.backward(g));
    if (!dEnc) return;
    dx = this.encoderNorm.backward(this.#drop.encOut.backward(dEnc));
    this.#stackBackward(this.encoderBlocks, 0, dx, null, f.enc, this.#encBias, (g) => this.#drop.encIn.backward(g));
  }

  /** Blocks top-down to `lowest`, the position bias's gradient, then the shared embedding's. */
  #stackBackward(blocks: T5Block[], lowest: number, dx: Tensor, dEnc: Tensor | null, s: StackFwd, bias: PositionBias, dropIn: (g: Tensor) => Tensor): void {
    if (s.dbiasSum) fill(s.dbiasSum, 0);
    for (let i = blocks.length - 1; i >= lowest; i--) {
      dx = blocks[i]!.backward(dx, dEnc);
      if (s.dbiasSum) axpy(1, s.dbias!, s.dbiasSum);
    }
    if (s.dbiasSum) bias.backward(this.config, s.dbiasSum, s.n);
    if (lowest > 0) return;
    const dW = this.shared.weight.gradTarget();
    const hook = bias === this.#encBias ? this.shared.hook : null;
    if (!hook) {
      if (dW) F.embeddingBackward(s.ids, dropIn(dx), dW);
      return;
    }
    // The prompt's gradient; the table's rows get the rest (a fresh tensor, when it trains). The
    // hook reads float32 gradients: a bf16 one is widened (exactly) first.
    const g = dropIn(dx);
    const d = hook.backward(g.dtype === 'bfloat16' ? scale(g, 1, this.workspace('dEmb32', g.shape)) : g, dW !== null);
    if (dW) {
      F.embeddingBackward(s.ids, d, dW);
      d.dispose();
    }
  }

  // ---------------------------------------------------------------- decoding

  /** Runs the encoder once (eval mode) and prepares caches for decoding up to maxT target positions. */
  startDecoding(inputIds: Int32Array, B: number, Ts: number, attentionMask: ArrayLike<number> | null, maxT: number): Seq2SeqState {
    const c = this.config;
    const { ids, mask } = checkBatch({ inputIds, shape: [B, Ts], attentionMask }, c.vocabSize, null);
    const maskT = mask === null ? null : Tensor.zeros([B, Ts], { device: this.device }).set(mask);
    const enc = this.#encode(ids, B, Ts, maskT, false);
    const H = c.numHeads;
    const D = c.headDim;
    const cross = this.decoderBlocks.map((blk) => {
      const o = { device: this.device, dtype: this.storage };
      const kv = { k: Tensor.empty([B, Ts, H, D], o), v: Tensor.empty([B, Ts, H, D], o) };
      blk.cross!.EncDecAttention.projectKv(enc.out, B, Ts, kv);
      return kv;
    });
    this.#fwd = null;
    this.last = null;
    // Prefix tuning: the prefix keys/values fill the first n positions of each self-attention cache.
    const state = new Seq2SeqState(B, Ts, new KVCache(B, this.decoderPrefixLength + maxT, c.numDecoderLayers, H, D, this.device, this.storage), cross, maskT);
    fillPrefixCache(state.self, this.decoderBlocks.map((blk) => blk.self.SelfAttention.prefix), state);
    return state;
  }

  /** Logits [B, T, V] of T new decoder tokens per row, reading and extending the state's caches. */
  decodeStep(ids: Int32Array, T: number, state: Seq2SeqState): Tensor {
    const c = this.config;
    const B = state.B;
    const offset = state.self.length;
    checkBatch({ inputIds: ids, shape: [B, T] }, c.vocabSize, state.self.maxT, offset);
    state.self.reserve(T);
    const Tk = offset + T;
    const bias = this.#decBias.fill(c, T, Tk, offset, this.workspace('stepBias', [c.numHeads, T, Tk]));
    let x = this.#embed(ids, 'stepEmb', B, T, false);
    for (let i = 0; i < this.decoderBlocks.length; i++) {
      const self: T5AttnCall = { B, Tq: T, Tk, mask: null, bias, dbias: null, cache: { layer: state.self.layers[i]!, offset }, kv: null };
      const cross: T5AttnCall = { B, Tq: T, Tk: state.Ts, mask: state.mask, bias: null, dbias: null, cache: null, kv: state.cross[i]! };
      x = this.decoderBlocks[i]!.forward(x, self, null, cross);
    }
    state.self.length += T;
    this.#fwd = null;
    this.last = null;
    return this.#head(this.#hidden(x));
  }
}

/** A randomly initialised T5 (normal(0, 0.02) weights from `seed`). */
export function createT5(config: T5ConfigInit, options: ModelOptions = {}): T5Model {
  return new T5Model(config, options);
}
