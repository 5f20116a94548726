/**
 * BERT-family encoders (BERT, RoBERTa, DistilBERT): word + absolute position (+ token type)
 * embeddings → LayerNorm, N post-LayerNorm layers (bidirectional attention with the padding
 * mask → dense → residual → LayerNorm; dense → GELU → dense → residual → LayerNorm), and a
 * sequence classification or regression head on the first token:
 * - BERT: pooler (dense + tanh) → dropout → `classifier`;
 * - RoBERTa: `classifier.dense` → tanh → `classifier.out_proj` (no pooler);
 * - DistilBERT: `pre_classifier` → ReLU → dropout → `classifier`.
 *
 * Names follow BertForSequenceClassification (`bert.encoder.layer.0.attention.self.query.weight`),
 * RobertaForSequenceClassification (`roberta.…`) and DistilBertForSequenceClassification
 * (`distilbert.transformer.layer.0.attention.q_lin.weight`).
 */
import { Dropout, type Embedding, GELU, LayerNorm, type Linear } from '../nn/layers.js';
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { type Module, storageOf } from '../nn/module.js';
import { add, axpy } from '../ops/index.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import { Init, type ModelOptions, resolveTask, TransformerModel } from './base.js';
import { type Batch, checkBatch, Container, type ForwardOutput, RowGather, SdpaCore, SmallActivation } from './common.js';
import { type BertConfig, bertConfig, type BertConfigInit, type BertModelType, type Task } from './config.js';

const hasTrainable = (m: Module): boolean => m.parameters().some((p) => p.trainable);

/** Module paths inside one encoder layer, per model type. */
interface LayerNames {
  q: string;
  k: string;
  v: string;
  o: string;
  attnDrop: string | null;
  ln1: string;
  up: string;
  down: string;
  ffnDrop: string;
  ln2: string;
}

const BERT_NAMES: LayerNames = {
  q: 'attention.self.query',
  k: 'attention.self.key',
  v: 'attention.self.value',
  o: 'attention.output.dense',
  attnDrop: 'attention.output.dropout',
  ln1: 'attention.output.LayerNorm',
  up: 'intermediate.dense',
  down: 'output.dense',
  ffnDrop: 'output.dropout',
  ln2: 'output.LayerNorm',
};

const DISTILBERT_NAMES: LayerNames = {
  q: 'attention.q_lin',
  k: 'attention.k_lin',
  v: 'attention.v_lin',
  o: 'attention.out_lin',
  attnDrop: null,
  ln1: 'sa_layer_norm',
  up: 'ffn.lin1',
  down: 'ffn.lin2',
  ffnDrop: 'ffn.dropout',
  ln2: 'output_layer_norm',
};

/** One post-LayerNorm encoder layer. */
export class BertLayer extends Container {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly attnOut: Linear;
  readonly attnDropout: Dropout | null;
  readonly ln1: LayerNorm;
  readonly up: Linear;
  readonly act: GELU;
  readonly down: Linear;
  readonly ffnDropout: Dropout;
  readonly ln2: LayerNorm;
  readonly core: SdpaCore;
  #B = 0;
  #T = 0;

  constructor(c: BertConfig, init: Init, seed: number) {
    super();
    const n = c.modelType === 'distilbert' ? DISTILBERT_NAMES : BERT_NAMES;
    const C = c.hiddenSize;
    this.query = this.put(n.q, init.linear(C, C, true));
    this.key = this.put(n.k, init.linear(C, C, true));
    this.value = this.put(n.v, init.linear(C, C, true));
    this.attnOut = this.put(n.o, init.linear(C, C, true));
    this.attnDropout = n.attnDrop === null ? null : this.put(n.attnDrop, new Dropout(c.hiddenDropout, { seed }));
    this.ln1 = this.put(n.ln1, new LayerNorm(C, { eps: c.layerNormEps }));
    this.up = this.put(n.up, init.linear(C, c.intermediateSize, true));
    this.act = new GELU({ approximate: c.activation });
    this.down = this.put(n.down, init.linear(c.intermediateSize, C, true));
    this.ffnDropout = this.put(n.ffnDrop, new Dropout(c.hiddenDropout, { seed: seed + 1 }));
    this.ln2 = this.put(n.ln2, new LayerNorm(C, { eps: c.layerNormEps }));
    this.core = this.put('attention.core', new SdpaCore({ heads: c.numHeads, kvHeads: c.numHeads, headDim: C / c.numHeads, causal: false, rope: null, dropout: c.attentionDropout, seed: seed + 500 }));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [B, T] = x.shape as [number, number, number];
    this.#B = B;
    this.#T = T;
    const o = this.core.forward(this.query.forward(x), this.key.forward(x), this.value.forward(x), { B, T, mask, offset: 0, cache: null });
    let a = this.attnOut.forward(o);
    if (this.attnDropout) a = this.attnDropout.forward(a);
    const h = this.ln1.forwardAdd(x, a, this.workspace('r1', x.shape, storageOf(x)));
    const f = this.ffnDropout.forward(this.down.forward(this.act.forward(this.up.forward(h))));
    return this.ln2.forwardAdd(h, f, this.workspace('r2', x.shape, storageOf(x)));
  }

  backward(dOut: Tensor): Tensor {
    const d2 = this.ln2.backward(dOut); // ∂ of the residual sum h + f
    const dh = this.up.backward(this.act.backward(this.down.backward(this.ffnDropout.backward(d2))!))!;
    axpy(1, d2, dh);
    const d1 = this.ln1.backward(dh); // ∂ of x + a
    const da = this.attnDropout ? this.attnDropout.backward(d1) : d1;
    const { dq, dk, dv } = this.core.backward(this.attnOut.backward(da)!);
    const dx = this.workspace('dx', [this.#B, this.#T, this.query.inFeatures], storageOf(dq));
    this.query.backward(dq, { dx, accumulate: false });
    this.key.backward(dk, { dx, accumulate: true });
    this.value.backward(dv, { dx, accumulate: true });
    axpy(1, d1, dx);
    return dx;
  }

  override to(device: Device): this {
    super.to(device);
    this.act.to(device);
    return this;
  }

  override releaseWorkspaces(): void {
    super.releaseWorkspaces();
    this.act.releaseWorkspaces();
  }

  override dispose(): void {
    this.act.dispose();
    super.dispose();
  }
}

/** A BERT, RoBERTa or DistilBERT encoder with a sequence classification or regression head. */
export class BertModel extends TransformerModel {
  readonly config: BertConfig;
  readonly task: Task;
  readonly numLabels: number;
  /** 'bert', 'roberta' or 'distilbert': the prefix of every trunk parameter. */
  readonly prefix: BertModelType;
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding | null;
  readonly embLayerNorm: LayerNorm;
  readonly embDropout: Dropout;
  readonly layers: BertLayer[];
  /** BERT's pooler.dense, RoBERTa's classifier.dense, DistilBERT's pre_classifier. */
  readonly poolDense: Linear;
  readonly poolAct: SmallActivation;
  readonly headDropout: Dropout;
  /** RoBERTa's head applies its dropout twice (before dense and before out_proj): the first use. */
  readonly #preDropout: Dropout;
  /** classifier (BERT, DistilBERT) or classifier.out_proj (RoBERTa). */
  readonly classifier: Linear;
  readonly #first = new RowGather();
  #rows = new Int32Array(0);
  #pos = new Int32Array(0);
  #types = new Int32Array(0);

  constructor(config: BertConfig, options: ModelOptions = {}) {
    super();
    const c = (this.config = bertConfig(config));
    const { task, numLabels } = resolveTask(options, 'sequence-classification', ['sequence-classification', 'regression'], c.modelType);
    this.task = task;
    this.numLabels = numLabels;
    const init = new Init(options);
    const seed = options.seed ?? 0;
    this.initCheckpointing(options);
    const p = (this.prefix = c.modelType);
    const C = c.hiddenSize;
    this.word_embeddings = this.put(`${p}.embeddings.word_embeddings`, init.embedding(c.vocabSize, C));
    this.position_embeddings = this.put(`${p}.embeddings.position_embeddings`, init.embedding(c.maxPositions, C));
    this.token_type_embeddings = c.typeVocabSize > 0 ? this.put(`${p}.embeddings.token_type_embeddings`, init.embedding(c.typeVocabSize, C)) : null;
    const act = options.activations ?? 'float32';
    if (act !== 'float32' && act !== 'bfloat16') invalidArgument('activations', "'float32' or 'bfloat16'", describe(act));
    // the embeddings write their rows in `act`; every later activation takes its input's dtype
    for (const e of [this.word_embeddings, this.position_embeddings, this.token_type_embeddings]) if (e) e.activations = act;
    this.embLayerNorm = this.put(`${p}.embeddings.LayerNorm`, new LayerNorm(C, { eps: c.layerNormEps }));
    this.embDropout = this.put(`${p}.embeddings.dropout`, new Dropout(c.hiddenDropout, { seed: seed + 1000 }));
    this.layers = [];
    const layerPath = p === 'distilbert' ? 'distilbert.transformer.layer' : `${p}.encoder.layer`;
    for (let i = 0; i < c.numLayers; i++) this.layers.push(this.put(`${layerPath}.${i}`, new BertLayer(c, init, seed + 1001 + 2 * i)));
    if (p === 'bert') {
      this.poolDense = this.put('bert.pooler.dense', init.head(C, C, true));
      this.classifier = this.put('classifier', init.head(C, numLabels, true));
    } else if (p === 'roberta') {
      this.poolDense = this.put('classifier.dense', init.head(C, C, true));
      this.classifier = this.put('classifier.out_proj', init.head(C, numLabels, true));
    } else {
      this.poolDense = this.put('pre_classifier', init.head(C, C, true));
      this.classifier = this.put('classifier', init.head(C, numLabels, true));
    }
    this.poolAct = new SmallActivation(p === 'distilbert' ? 'relu' : 'tanh');
    this.headDropout = this.put(p === 'roberta' ? 'classifier.dropout' : 'dropout', new Dropout(c.classifierDropout, { seed: seed + 999 }));
    this.#preDropout = new Dropout(c.classifierDropout, { seed: seed + 998 });
    this.finishInit(init);
  }

  forward(batch: Batch): ForwardOutput {
    const c = this.config;
    const { B, T, ids, mask } = checkBatch(batch, c.vocabSize, c.maxPositions - c.positionOffset, this.positionShift);
    this.checkLabels(batch, B, T);
    const n = B * T;
    if (this.#pos.length !== n) {
      this.#pos = new Int32Array(n);
      this.#types = new Int32Array(n);
    }
    if (c.modelType === 'roberta') {
      // Hugging Face numbers real tokens padding_idx + 1, + 2, …; padding tokens get padding_idx.
      for (let b = 0; b < B; b++) {
        let k = 0;
        for (let t = 0; t < T; t++) this.#pos[b * T + t] = ids[b * T + t] === c.padTokenId ? c.padTokenId : c.padTokenId + this.positionShift + ++k;
      }
    } else for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) this.#pos[b * T + t] = t + c.positionOffset + this.positionShift;
    const w = this.word_embeddings.forward(ids, [B, T]);
    let e = add(w, this.position_embeddings.forward(this.#pos, [B, T]), this.workspace('emb', [B, T, c.hiddenSize], storageOf(w)));
    if (this.token_type_embeddings) {
      const tt = batch.tokenTypeIds;
      if (tt === undefined || tt === null) this.#types.fill(0);
      else {
        this.#types.set(checkTypes(tt, n, c.typeVocabSize));
      }
      e = add(e, this.token_type_embeddings.forward(this.#types, [B, T]), e);
    }
    let x = this.embDropout.forward(this.embLayerNorm.forward(e));
    const maskT = mask === null ? null : this.workspace('mask', [B, T]).set(mask);
    x = this.forwardBlocks(this.layers, x, B, (i, y) => this.layers[i]!.forward(y, maskT), false);
    if (this.#rows.length !== B) this.#rows = Int32Array.from({ length: B }, (_, b) => b * T);
    else for (let b = 0; b < B; b++) this.#rows[b] = b * T;
    const first = this.#first.forward(x, this.#rows); // float32 rows, also from bf16 activations
    let pooled: Tensor;
    if (this.prefix === 'bert') pooled = this.headDropout.forward(this.poolAct.forward(this.poolDense.forward(first)));
    else if (this.prefix === 'roberta') pooled = this.headDropout.forward(this.poolAct.forward(this.poolDense.forward(this.#preDropout.forward(first))));
    else pooled = this.headDropout.forward(this.poolAct.forward(this.poolDense.forward(first)));
    const logits = this.classifier.forward(pooled);
    return this.headLoss(logits, batch, B, T);
  }

  backward(dLogits?: Tensor): void {
    const d = this.dLogitsFor(dLogits);
    const dPooled = this.headDropout.backward(this.classifier.backward(d)!);
    let dFirst = this.poolDense.backward(this.poolAct.backward(dPooled))!;
    if (this.prefix === 'roberta') dFirst = this.#preDropout.backward(dFirst);
    let dx = this.#first.backward(dFirst);
    const embTrainable = hasTrainable(this.word_embeddings) || hasTrainable(this.position_embeddings) || (this.token_type_embeddings !== null && hasTrainable(this.token_type_embeddings)) || hasTrainable(this.embLayerNorm);
    let lowest = embTrainable ? -1 : this.layers.length;
    if (lowest >= 0) for (let i = 0; i < this.layers.length; i++) if (hasTrainable(this.layers[i]!)) { lowest = i; break; }
    dx = this.backwardBlocks(this.layers, dx, Math.max(lowest, 0), (i, d) => this.layers[i]!.backward(d));
    if (lowest < 0) {
      const de = this.embLayerNorm.backward(this.embDropout.backward(dx));
      this.word_embeddings.backward(de);
      this.position_embeddings.backward(de);
      this.token_type_embeddings?.backward(de);
    }
  }

  override train(on = true): this {
    super.train(on);
    this.#preDropout.train(on);
    return this;
  }

  override to(device: Device): this {
    super.to(device);
    this.#first.to(device);
    this.#preDropout.to(device);
    this.poolAct.to(device);
    return this;
  }

  override dispose(): void {
    this.#first.dispose();
    this.poolAct.dispose();
    this.#preDropout.dispose();
    super.dispose();
  }
}

function checkTypes(tt: unknown, n: number, V: number): Int32Array {
  if (!(tt instanceof Int32Array)) invalidArgument('batch.tokenTypeIds', 'an Int32Array', describe(tt));
  if (tt.length !== n) throw new ShapeError(`batch.tokenTypeIds: expected ${n} values, got ${tt.length}`, { argument: 'batch.tokenTypeIds', expected: `${n} values`, got: `${tt.length}` });
  for (let i = 0; i < n; i++) if (tt[i]! < 0 || tt[i]! >= V) invalidArgument('batch.tokenTypeIds', `values in [0, ${V})`, `${tt[i]} at index ${i}`);
  return tt;
}

/** A randomly initialised BERT-family model (normal(0, 0.02) weights from `seed`). */
export function createBert(config: BertConfigInit, options: ModelOptions = {}): BertModel {
  return new BertModel(bertConfig(config), options);
}
