/**
 * TrainerTasks for real models: sequence classification / regression (length-bucketed, padded
 * batches; accuracy, F1, Matthews, Pearson, Spearman on the dev split) and causal language
 * modelling (documents joined into one token stream cut into blocks; dev perplexity).
 */
import type { Example, TaskSpec } from './data.js';
import { shuffledIndices } from './data.js';
import { argmaxRows, METRICS } from './metrics.js';
import type { TextCodec } from './text.js';
import type { MicroBatchLoss, TrainerState, TrainerTask } from './trainer.js';
import { DataError } from './data.js';
import { NotFiniteError } from '../errors.js';
import type { Batch, TransformerModel } from '../models/index.js';
import { hostArray } from '../models/base.js';
import type { DeviceValue } from '../tensor/device-value.js';
import type { Tensor } from '../tensor/tensor.js';

/** What the training tasks need of a model: a forward with a loss, its backward, its trainable parameters. */
interface LossModel<B> {
  training: boolean;
  train(): unknown;
  forward(batch: B): { loss?: number | null; lossValue?: DeviceValue | null };
  backward(): void;
  trainableParameters(): { grad: Tensor | null }[];
}

/**
 * Forward (in train mode: the model is switched to it, since a loaded model starts in eval
 * mode), loss and backward of one batch. A forward pass whose outputs are no longer finite (the
 * weights blew up) reports a NaN loss, which the Trainer records as divergence. The loss is
 * read when `loss` is first asked for; `lossValue` is the same loss not yet read (see MicroBatchLoss).
 */
export function lossAndBackwardOf<B>(model: LossModel<B>, batch: B, size: number): MicroBatchLoss {
  if (!model.training) model.train();
  try {
    const out = model.forward(batch);
    model.backward();
    return {
      get loss(): number {
        try {
          return out.loss!;
        } catch (e) {
          if (e instanceof NotFiniteError) return NaN;
          throw e;
        }
      },
      batchSize: size,
      lossValue: out.lossValue ?? null,
    };
  } catch (e) {
    if (e instanceof NotFiniteError) return { loss: NaN, batchSize: size };
    throw e;
  }
}

/** The loss of a batch, forward only (NaN when the outputs are no longer finite). */
export function lossOf<B>(model: LossModel<B>, batch: B): number {
  const v = lossValueOf(model, batch);
  return typeof v === 'number' ? v : v.value();
}

/**
 * The loss of a batch, forward only, left where the model computed it when its head leaves it
 * there (a cross-entropy's `lossValue`: no wait for the device), else the number (NaN when the
 * outputs are no longer finite).
 */
export function lossValueOf<B>(model: LossModel<B>, batch: B): number | DeviceValue {
  try {
    const out = model.forward(batch);
    return out.lossValue ?? out.loss!;
  } catch (e) {
    if (e instanceof NotFiniteError) return NaN;
    throw e;
  }
}

/** The gradients of the model's trainable parameters that have one. */
export function gradsOf(model: LossModel<never>): Tensor[] {
  return model.trainableParameters().flatMap((p) => (p.grad ? [p.grad] : []));
}

export interface TaskBatch {
  batch: Batch;
  size: number;
}

interface Encoded {
  ids: number[];
  typeIds: number[];
  label: number;
}

/** Right-pads encoded rows into one Batch (mask 0 on padding). */
function collate(rows: readonly Encoded[], padId: number, kind: 'classification' | 'regression', withTypes: boolean): Batch {
  const B = rows.length;
  const T = rows.reduce((m, r) => Math.max(m, r.ids.length), 1);
  const inputIds = new Int32Array(B * T).fill(padId);
  const mask = new Float32Array(B * T);
  const types = withTypes ? new Int32Array(B * T) : null;
  rows.forEach((r, b) => {
    for (let t = 0; t < r.ids.length; t++) {
      inputIds[b * T + t] = r.ids[t]!;
      mask[b * T + t] = 1;
      if (types) types[b * T + t] = r.typeIds[t] ?? 0;
    }
  });
  const labels = kind === 'regression' ? Float32Array.from(rows, (r) => r.label) : Int32Array.from(rows, (r) => r.label);
  return { inputIds, shape: [B, T], attentionMask: mask, ...(types ? { tokenTypeIds: types } : {}), labels };
}

abstract class ModelTask implements TrainerTask<TaskBatch> {
  constructor(
    readonly model: TransformerModel,
    readonly batchSize: number,
    readonly evalBatchSize: number,
  ) {}
  abstract batches(epoch: number, seed: number): Iterable<TaskBatch>;
  abstract evaluate(): { loss: number; metrics: Record<string, number> };
  /** Batches in one epoch. */
  abstract readonly batchesPerEpoch: number;
  /** Set by the caller to make checkpoints (best, interrupted). */
  save?: (dir: string, state: TrainerState) => void;

  /**
   * Forward (in train mode: the model is switched to it, since a loaded model starts in eval
   * mode), loss and backward. A forward pass whose logits are no longer finite (the weights blew
   * up) reports a NaN loss, which the Trainer records as divergence.
   */
  lossAndBackward(b: TaskBatch): MicroBatchLoss {
    return lossAndBackwardOf(this.model, b.batch, b.size);
  }
  /** The training loss of a batch, forward only (NaN when the outputs are no longer finite). */
  loss(b: TaskBatch): number {
    return lossOf(this.model, b.batch);
  }
  lossValue(b: TaskBatch): number | DeviceValue {
    return lossValueOf(this.model, b.batch);
  }
  zeroGrad(): void {
    this.model.zeroGrad();
  }
  grads(): Tensor[] {
    return gradsOf(this.model);
  }
  /**
   * Runs an evaluation in eval mode (no dropout) and restores the previous mode. A model whose
   * outputs are no longer finite evaluates to a NaN loss and NaN metrics instead of throwing.
   */
  protected inEval(fn: () => { loss: number; metrics: Record<string, number> }, metricNames: readonly string[]): { loss: number; metrics: Record<string, number> } {
    const was = this.model.training;
    this.model.eval();
    try {
      return fn();
    } catch (e) {
      if (e instanceof NotFiniteError) return { loss: NaN, metrics: Object.fromEntries(metricNames.map((m) => [m, NaN])) };
      throw e;
    } finally {
      this.model.train(was);
    }
  }
}

export interface ClassificationTaskOptions {
  batchSize: number;
  evalBatchSize?: number;
  maxLength: number;
}

export class ClassificationTask extends ModelTask {
  readonly #train: Encoded[];
  readonly #dev: Encoded[];
  readonly #withTypes: boolean;
  readonly batchesPerEpoch: number;

  constructor(
    model: TransformerModel,
    readonly codec: TextCodec,
    readonly spec: TaskSpec,
    train: readonly Example[],
    dev: readonly Example[],
    o: ClassificationTaskOptions,
  ) {
    super(model, o.batchSize, o.evalBatchSize ?? Math.max(o.batchSize, 32));
    const enc = (e: Example): Encoded => ({ ...codec.encodeExample(e.text, e.textPair, o.maxLength), label: e.label });
    this.#train = train.map(enc);
    this.#dev = dev.map(enc);
    this.#withTypes = model.config.family === 'bert';
    if (this.#dev.length === 0) throw new DataError('classification needs at least one dev example');
    this.batchesPerEpoch = Math.ceil(this.#train.length / o.batchSize);
  }

  /** Seeded shuffle, then length bucketing: chunks of 32 batches are sorted by length, cut, and the batches shuffled again. */
  *batches(_epoch: number, seed: number): Iterable<TaskBatch> {
    const order = shuffledIndices(this.#train.length, seed);
    const chunk = this.batchSize * 32;
    const groups: number[][] = [];
    for (let s = 0; s < order.length; s += chunk) {
      const part = Array.from(order.subarray(s, s + chunk)).sort((a, b) => this.#train[a]!.ids.length - this.#train[b]!.ids.length || a - b);
      for (let i = 0; i < part.length; i += this.batchSize) groups.push(part.slice(i, i + this.batchSize));
    }
    const batchOrder = shuffledIndices(groups.length, seed ^ 0x5bd1e995);
    for (const g of batchOrder) {
      const rows = groups[g]!.map((i) => this.#train[i]!);
      yield { batch: collate(rows, this.codec.padId, this.spec.kind, this.#withTypes), size: rows.length };
    }
  }

  /** Dev loss and the task's metrics (predictions: argmax for classes, the output for regression). */
  evaluate(): { loss: number; metrics: Record<string, number> } {
    return this.inEval(() => {
      const byLength = this.#dev.map((_, i) => i).sort((a, b) => this.#dev[a]!.ids.length - this.#dev[b]!.ids.length || a - b);
      const pred = new Float64Array(this.#dev.length);
      const labels = Float64Array.from(this.#dev, (e) => e.label);
      let lossSum = 0;
      for (let s = 0; s < byLength.length; s += this.evalBatchSize) {
        const idx = byLength.slice(s, s + this.evalBatchSize);
        const out = this.model.forward(collate(idx.map((i) => this.#dev[i]!), this.codec.padId, this.spec.kind, this.#withTypes));
        lossSum += out.loss! * idx.length;
        const C = this.model.numLabels;
        const logits = hostArray(out.logits);
        const p = this.spec.kind === 'regression' ? logits : argmaxRows(logits, idx.length, C);
        idx.forEach((i, r) => (pred[i] = this.spec.kind === 'regression' ? p[r * C]! : p[r]!));
      }
      const metrics: Record<string, number> = {};
      for (const m of this.spec.metrics) metrics[m] = METRICS[m](pred, labels);
      return { loss: lossSum / this.#dev.length, metrics };
    }, this.spec.metrics);
  }
}

export interface CausalLmTaskOptions {
  batchSize: number;
  evalBatchSize?: number;
  /** Tokens per block. */
  blockLength: number;
  /** Use at most this many dev blocks (default: all). */
  maxEvalBlocks?: number;
}

/** Documents → one token stream (each document BOS-prefixed) → blocks of `blockLength` tokens. */
export function tokenBlocks(codec: TextCodec, docs: readonly string[], blockLength: number): Int32Array[] {
  const stream: number[] = [];
  for (const d of docs) for (const id of codec.encodeDocument(d)) stream.push(id);
  const blocks: Int32Array[] = [];
  for (let s = 0; s + blockLength <= stream.length; s += blockLength) blocks.push(Int32Array.from(stream.slice(s, s + blockLength)));
  return blocks;
}

export class CausalLmTask extends ModelTask {
  readonly #train: Int32Array[];
  readonly #dev: Int32Array[];
  readonly blockLength: number;
  readonly batchesPerEpoch: number;

  constructor(model: TransformerModel, codec: TextCodec, train: readonly string[], dev: readonly string[], o: CausalLmTaskOptions) {
    super(model, o.batchSize, o.evalBatchSize ?? o.batchSize);
    this.blockLength = o.blockLength;
    this.#train = tokenBlocks(codec, train, o.blockLength);
    const dv = tokenBlocks(codec, dev, o.blockLength);
    this.#dev = o.maxEvalBlocks ? dv.slice(0, o.maxEvalBlocks) : dv;
    if (this.#dev.length === 0) throw new DataError(`the dev text has fewer than ${o.blockLength} tokens (one block)`);
    this.batchesPerEpoch = Math.ceil(this.#train.length / o.batchSize);
  }

  get trainBlocks(): number {
    return this.#train.length;
  }
  get devBlocks(): number {
    return this.#dev.length;
  }

  #batch(blocks: readonly Int32Array[]): Batch {
    const T = this.blockLength;
    const ids = new Int32Array(blocks.length * T);
    blocks.forEach((b, i) => ids.set(b, i * T));
    return { inputIds: ids, shape: [blocks.length, T], labels: ids };
  }

  *batches(_epoch: number, seed: number): Iterable<TaskBatch> {
    const order = shuffledIndices(this.#train.length, seed);
    for (let s = 0; s < order.length; s += this.batchSize) {
      const rows = Array.from(order.subarray(s, s + this.batchSize), (i) => this.#train[i]!);
      yield { batch: this.#batch(rows), size: rows.length };
    }
  }

  /** Mean next-token loss over the dev blocks and its perplexity. */
  evaluate(): { loss: number; metrics: Record<string, number> } {
    return this.inEval(() => {
      let sum = 0;
      for (let s = 0; s < this.#dev.length; s += this.evalBatchSize) {
        const rows = this.#dev.slice(s, s + this.evalBatchSize);
        sum += this.model.forward(this.#batch(rows)).loss! * rows.length;
      }
      const loss = sum / this.#dev.length;
      return { loss, metrics: { perplexity: Math.exp(loss) } };
    }, ['perplexity']);
  }
}
