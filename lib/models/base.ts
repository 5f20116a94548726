/**
 * The base of every model: task heads' losses, parameter initialisation, and the contract
 * forward(batch) → logits (+ loss and dLogits) / backward(dLogits) → parameter gradients.
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { Embedding, Linear } from '../nn/layers.js';
import { type Module, type Parameter, storageOf } from '../nn/module.js';
import type { LinearLayout } from '../nn/functional.js';
import * as F from '../nn/functional.js';
import { cast } from '../ops/cast.js';
import { type Device, placement, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkInteger } from '../util/validate.js';
import { type BlockBackwardContext, BlockCheckpoints } from './checkpoint.js';
import { type Batch, Container, crossEntropyOutput, type ForwardOutput, type KVCache, mseLoss } from './common.js';
import type { ArchitectureConfig, Task } from './config.js';

export interface ModelOptions {
  /** Default 'causal-lm' for decoders, 'sequence-classification' for encoders. */
  task?: Task;
  /** Classes (sequence-classification, default 2) or outputs (regression, default 1). */
  numLabels?: number;
  /** Seed of the random initialisation (default 0). */
  seed?: number;
  /** Standard deviation of the normal initialisation of weights (default 0.02, as Hugging Face). */
  initStd?: number;
  /**
   * Gradient checkpointing per transformer block (default false): the forward keeps only each
   * block's input and the backward recomputes the block's forward, trading one more forward of
   * the blocks for their activation memory. Loss and gradients are unchanged. Settable later
   * through `model.checkpointing`.
   */
  checkpointing?: boolean;
  /**
   * Device of the weights (default 'cpu'): each weight is made there as it is created (a random
   * one is drawn on the host, one tensor at a time, and copied across), never a whole host copy.
   */
  device?: Device;
  /**
   * Storage of the frozen base Linear weights of the blocks (default 'float32'). 'bfloat16'
   * halves their memory and runs them on the bf16 GEMM; they are frozen (no gradient).
   * Embeddings, norms, heads, GPT-2's Conv1D and adapters stay float32.
   */
  dtype?: 'float32' | 'bfloat16';
  /**
   * Storage of the activations (every family, on cuda; default 'float32'): 'bfloat16' keeps the
   * hidden states, the residual stream, attention's tensors and the logits in bf16 (every sum
   * and the loss in float32) while LoRA branches, their inputs and gradients, K-FAC factors and
   * optimizer state stay float32 — as PyTorch autocast runs a bf16 PEFT model. The CPU stores
   * activations in float32 only: a model asked for bf16 runs there in float32 (after
   * `to('cpu')`, say), and in bf16 again once back on cuda.
   */
  activations?: 'float32' | 'bfloat16';
  /** @internal Leave weights uninitialised (they are about to be loaded). */
  uninitialised?: boolean;
}

/** @internal Creates weights: normal(0, std) from consecutive seeds, or uninitialised for loading. */
export class Init {
  #seed: number;
  readonly std: number;
  readonly empty: boolean;
  readonly device: Device;
  readonly linearDtype: 'float32' | 'bfloat16';

  constructor(o: ModelOptions) {
    this.#seed = o.seed === undefined ? 0 : checkInteger(o.seed, 'seed', 0, 2 ** 40);
    this.std = o.initStd ?? 0.02;
    this.empty = o.uninitialised === true;
    const p = placement({ ...(o.device === undefined ? {} : { device: o.device }), ...(o.dtype === undefined ? {} : { dtype: o.dtype }) });
    this.device = p.device;
    this.linearDtype = p.dtype;
  }

  /** A weight on the model's device: uninitialised, or normal(0, std) drawn on the host and copied across (in `dtype`). */
  weight(shape: readonly number[], dtype: 'float32' | 'bfloat16' = 'float32'): Tensor {
    if (this.empty) return Tensor.empty(shape, { device: this.device, dtype });
    const t = Tensor.randn(shape, { seed: this.#seed++, std: this.std });
    if (this.device === 'cpu' && dtype === 'float32') return t;
    try {
      return t.to(this.device, { dtype });
    } finally {
      t.dispose();
    }
  }

  linear(inF: number, outF: number, bias: boolean, layout: LinearLayout = 'linear'): Linear {
    const w = this.weight(layout === 'conv1d' ? [inF, outF] : [outF, inF], layout === 'linear' ? this.linearDtype : 'float32');
    return new Linear(inF, outF, bias ? { layout, weight: w, biasInit: Tensor.zeros([outF]) } : { layout, weight: w, bias: false });
  }

  /** A head's Linear (LM head, classifier, pooler): float32 under any dtype. */
  head(inF: number, outF: number, bias: boolean): Linear {
    const w = this.weight([outF, inF]);
    return new Linear(inF, outF, bias ? { weight: w, biasInit: Tensor.zeros([outF]) } : { weight: w, bias: false });
  }

  embedding(n: number, dim: number): Embedding {
    return new Embedding(n, dim, { weight: this.weight([n, dim]) });
  }
}

/** The values of a tensor on any device (one download from a device). */
export function hostArray(t: Tensor): Float32Array {
  if (t.device === 'cpu' && t.dtype === 'float32') return t.toArray();
  const h = t.to('cpu', { dtype: 'float32' });
  try {
    return h.toArray();
  } finally {
    h.dispose();
  }
}

/** Heads and poolers keep float32 weights under `dtype: 'bfloat16'`. */
export const HEAD_MODULE = /(^|\.)(lm_head|classifier|pre_classifier|score|pooler|cls)(\.|$)/;

/**
 * Under `dtype: 'bfloat16'`: the Linear weights of heads (HEAD_MODULE) become float32 again and
 * the other bfloat16 weights are frozen (no gradient). Returns the frozen count.
 */
export function settleBf16Heads(model: Module): number {
  let n = 0;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof Linear) || m.weight.tensor.dtype !== 'bfloat16') continue;
    if (HEAD_MODULE.test(name)) {
      const old = m.weight.tensor;
      m.weight.tensor = cast(old, 'float32');
      old.dispose();
      continue;
    }
    m.weight.trainable = false;
    m.weight.grad?.dispose();
    m.weight.grad = null;
    n++;
  }
  return n;
}

export function resolveTask(o: ModelOptions, fallback: Task, allowed: readonly Task[], family: string): { task: Task; numLabels: number } {
  const task = o.task ?? fallback;
  if (!allowed.includes(task)) invalidArgument('task', `one of ${allowed.map((t) => `'${t}'`).join(', ')} for ${family}`, describe(task));
  const numLabels = o.numLabels === undefined ? (task === 'regression' ? 1 : 2) : checkInteger(o.numLabels, 'numLabels', 1, 2 ** 20);
  return { task, numLabels };
}

/**
 * A transformer with a task head. `forward` keeps what `backward` needs; `backward` adds
 * (+=) into the gradients of trainable parameters (call zeroGrad() between steps); frozen
 * parameters get no gradient and cost no weight-gradient work.
 */
export abstract class TransformerModel extends Container {
  abstract readonly config: ArchitectureConfig;
  abstract readonly task: Task;
  abstract readonly numLabels: number;
  #targets = new Int32Array(0);
  protected last: ForwardOutput | null = null;
  /**
   * Position of the first token of a batch in forward (default 0). Prefix tuning (lib/peft) sets
   * it to its number of virtual positions, which come before every sequence's tokens.
   */
  positionShift = 0;
  /** Gradient checkpointing per block (ModelOptions.checkpointing); takes effect at the next forward. */
  checkpointing = false;
  /**
   * Called after each checkpointed block's backward, while the block's activations are alive
   * (they are freed right after): K-FAC captures that block's layers here (`captureBlockwise`).
   */
  onBlockBackward: ((ctx: BlockBackwardContext) => void) | null = null;
  readonly #ckpt = new BlockCheckpoints();
  #blockPaths: string[] | null = null;

  /** @internal Reads ModelOptions.checkpointing (called by each family's constructor). */
  protected initCheckpointing(o: ModelOptions): void {
    this.checkpointing = o.checkpointing === undefined ? false : checkBoolean(o.checkpointing, 'checkpointing');
  }

  /**
   * @internal The end of each family's constructor: the small tensors made on the host (norms,
   * biases) join the weights on ModelOptions.device, and under dtype 'bfloat16' the heads go
   * back to float32 and the bfloat16 base weights are frozen.
   */
  protected finishInit(init: Init): void {
    if (init.device !== 'cpu') this.to(init.device);
    if (init.linearDtype === 'bfloat16') settleBf16Heads(this);
  }

  /** Runs the blocks over x: plainly, or checkpointed (when enabled and not decoding with a cache). */
  protected forwardBlocks(blocks: readonly Module[], x: Tensor, B: number, run: (i: number, x: Tensor) => Tensor, cached: boolean): Tensor {
    if (!this.checkpointing || cached) {
      this.#ckpt.reset();
      let y = x;
      for (let i = 0; i < blocks.length; i++) y = run(i, y);
      return y;
    }
    return this.#ckpt.forward(blocks, x, B, run);
  }

  /** Backward through blocks n−1 … lowest (recomputing each one when the forward was checkpointed). */
  protected backwardBlocks(blocks: readonly Module[], dOut: Tensor, lowest: number, back: (i: number, d: Tensor) => Tensor): Tensor {
    if (!this.#ckpt.active) {
      let d = dOut;
      for (let i = blocks.length - 1; i >= lowest; i--) d = back(i, d);
      return d;
    }
    if (this.#blockPaths === null || this.#blockPaths.length !== blocks.length) {
      const path = new Map(this.namedModules().map(([n, m]) => [m, n]));
      this.#blockPaths = blocks.map((b) => `${path.get(b) ?? ''}.`);
    }
    return this.#ckpt.backward(blocks, this.#blockPaths, dOut, lowest, back, this.onBlockBackward);
  }

  /** Bytes the checkpointed forward keeps (the block inputs and two gradient buffers); 0 when not checkpointing. */
  get checkpointBytes(): number {
    return this.#ckpt.nbytes;
  }

  override dispose(): void {
    this.#ckpt.dispose();
    super.dispose();
  }

  /** Logits for a batch and, when it has labels, the loss and ∂loss/∂logits. */
  abstract forward(batch: Batch): ForwardOutput;

  /** Backpropagates dLogits (default: the last forward's) into the parameter gradients. */
  abstract backward(dLogits?: Tensor): void;

  /** A forward pass in eval mode that only returns a copy of the logits' values. */
  logits(batch: Batch): Float32Array {
    const wasTraining = this.training;
    this.eval();
    try {
      const out = this.forward({ ...batch, labels: null });
      return hostArray(out.logits);
    } finally {
      this.train(wasTraining);
    }
  }

  /** Decoders: an empty KV cache for B sequences of up to maxT positions. */
  createCache(_B: number, _maxT: number): KVCache {
    return invalidArgument('model', 'a causal language model (a KV cache needs a decoder)', `a ${this.config.modelType} model for ${this.task}`);
  }

  /** Decoders: logits [B, T, V] of new tokens, reading and extending the cache (no backward). */
  forwardCached(_ids: Int32Array, _B: number, _T: number, _cache: KVCache): Tensor {
    return invalidArgument('model', 'a causal language model', `a ${this.config.modelType} model for ${this.task}`);
  }

  /** The parameters that backward gives gradients to (what an optimizer updates). */
  trainableParameters(): Parameter[] {
    return this.parameters().filter((p) => p.trainable);
  }

  /** Names of the parameters, trainable or not, in checkpoint order. */
  parameterNames(): string[] {
    return this.parameters().map((p) => p.name);
  }

  /** Resolved dLogits for backward: the argument (checked against the logits' shape) or the last forward's. */
  protected dLogitsFor(d: Tensor | undefined): Tensor {
    const last = this.last;
    if (last === null) invalidArgument('backward', 'a call after forward()', 'no forward pass yet');
    if (d === undefined) {
      if (last.dLogits === null) invalidArgument('dLogits', 'a tensor (the last forward had no labels)', 'undefined');
      return last.dLogits;
    }
    if (!(d instanceof Tensor)) invalidArgument('dLogits', 'a Tensor', describe(d));
    const want = last.logits.shape;
    if (d.rank !== want.length || d.shape.some((s, i) => s !== want[i]))
      throw new ShapeError(`dLogits: expected shape [${want.join(', ')}], got [${d.shape.join(', ')}]`, { argument: 'dLogits', expected: `[${want.join(', ')}]`, got: `[${d.shape.join(', ')}]` });
    return d;
  }

  /** Validates the batch's labels for the task (before any native work). */
  protected checkLabels(batch: Batch, B: number, T: number): void {
    const labels = batch.labels;
    if (labels === undefined || labels === null) return;
    const fail = (expected: string, got: string): never => invalidArgument('batch.labels', expected, got);
    const count = (n: number, what: string): void => {
      if (labels.length !== n) throw new ShapeError(`batch.labels: expected ${n} ${what}, got ${labels.length}`, { argument: 'batch.labels', expected: `${n} ${what}`, got: `${labels.length}` });
    };
    if (this.task === 'regression') {
      if (!(labels instanceof Float32Array)) fail('a Float32Array of regression targets', describe(labels));
      count(B * this.numLabels, 'targets (B·numLabels)');
      for (let i = 0; i < labels.length; i++) if (!Number.isFinite(labels[i]!)) fail('finite targets', `${labels[i]} at index ${i}`);
      return;
    }
    if (!(labels instanceof Int32Array)) fail(this.task === 'causal-lm' ? 'an Int32Array of token ids (or −100)' : 'an Int32Array of class ids (or −100)', describe(labels));
    const causal = this.task === 'causal-lm';
    count(causal ? B * T : B, causal ? 'labels (B·T)' : 'labels (one per sequence)');
    const hi = causal ? this.config.vocabSize : this.numLabels;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i]!;
      if (v !== -100 && (v < 0 || v >= hi)) fail(`values in [0, ${hi}) or −100`, `${v} at index ${i}`);
    }
  }

  /** Loss of the task head (labels already checked by checkLabels). logits: [B, T, V] (causal-lm) or [B, L]. */
  protected headLoss(logits: Tensor, batch: Batch, B: number, T: number): ForwardOutput {
    const labels = batch.labels;
    if (labels === undefined || labels === null) return (this.last = { logits, loss: null, dLogits: null, count: 0 });
    const d = this.workspace('dlogits', logits.shape, storageOf(logits));
    if (this.task === 'causal-lm') {
      // Position t predicts labels[t + 1]; the last position of each row has no target.
      if (this.#targets.length !== B * T) this.#targets = new Int32Array(B * T);
      for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) this.#targets[b * T + t] = t + 1 < T ? labels[b * T + t + 1]! : -100;
      return (this.last = crossEntropyOutput(logits, this.#targets, d));
    }
    if (this.task === 'sequence-classification') return (this.last = crossEntropyOutput(logits, labels as Int32Array, d));
    const r = mseLoss(logits, labels as Float32Array, d);
    return (this.last = { logits, loss: r.loss, dLogits: d, count: r.count });
  }
}
