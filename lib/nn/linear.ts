/** Linear (y = x·Wᵀ + b, torch.nn.Linear or GPT-2 Conv1D layout) and the adapter branch it can carry (LoRA). */
import { describe, invalidArgument } from '../errors.js';
import { scale } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { expectShape, Module, ParamSlot, saved, storageOf } from './module.js';
import { lastDim, MAX_DIM, withLast } from './dims.js';

/**
 * A branch added to a Linear's output (LoRA, lib/peft): forward adds its output into y, backward
 * adds its input gradient into dx (when dx is not null; the base has already written it) and
 * accumulates its own parameters' gradients.
 */
export interface LinearAdapter {
  forward(x: Tensor, y: Tensor): void;
  backward(dy: Tensor, dx: Tensor | null): void;
  dispose(): void;
}

export interface LinearOptions {
  /** Learn a bias (default true). */
  bias?: boolean;
  /** 'linear': W [out, in] (torch.nn.Linear); 'conv1d': W [in, out] (GPT-2 Conv1D). */
  layout?: F.LinearLayout;
  /** Initial weight (taken over, not copied); default uniform ±1/sqrt(in) from `seed`. */
  weight?: Tensor;
  /** Initial bias [out]; default uniform ±1/sqrt(in). */
  biasInit?: Tensor;
  seed?: number;
}

/** y = x·Wᵀ + b over the last dimension: x [..., in] → y [..., out]. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly layout: F.LinearLayout;
  readonly weight: ParamSlot;
  readonly bias: ParamSlot | null;
  /** Compute the input gradient in backward (set false for a first layer whose input needs none). */
  computeInputGrad = true;
  #x: Tensor | null = null;
  #dy: Tensor | null = null;
  #dyScale = 1;
  #gReady = false;
  #adapter: LinearAdapter | null = null;
  #adapterNames: string[] = [];

  /** The input of the last forward (K-FAC's `a`); valid until the producer's next forward. */
  get input(): Tensor | null {
    return this.#x;
  }
  /** The output gradient of the last backward (K-FAC's `g`); valid until the caller reuses it. */
  get outputGrad(): Tensor | null {
    if (this.#dy === null || this.#dyScale === 1) return this.#dy;
    // Recorded by a fused caller as scale·dy: formed on first read only (K-FAC reads it, AdamW never).
    const g = this.workspace('g', this.#dy.shape);
    if (!this.#gReady) scale(this.#dy, this.#dyScale, g);
    this.#gReady = true;
    return g;
  }

  /**
   * For a caller that computed this layer's product itself (a fused LoRA branch, lib/peft):
   * records the input x and, after its backward, the output gradient as scale·dy, so that
   * `input`, `outputGrad` and K-FAC see what forward/backward would have recorded.
   */
  recordInput(x: Tensor): void {
    this.#x = x;
  }
  recordOutputGrad(dy: Tensor, scale: number): void {
    this.#dy = dy;
    this.#dyScale = scale;
    this.#gReady = false;
  }

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = checkInteger(inFeatures, 'inFeatures', 1, MAX_DIM);
    this.outFeatures = checkInteger(outFeatures, 'outFeatures', 1, MAX_DIM);
    const layout = options.layout ?? 'linear';
    if (layout !== 'linear' && layout !== 'conv1d') invalidArgument('layout', "'linear' or 'conv1d'", describe(layout));
    this.layout = layout;
    const seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    const bound = 1 / Math.sqrt(inFeatures);
    const wShape = layout === 'conv1d' ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    const w = options.weight ? expectShape(options.weight, wShape, 'weight') : Tensor.rand(wShape, { seed, low: -bound, high: bound });
    this.weight = this.registerParameter('weight', w);
    const bias = options.bias === undefined ? true : checkBoolean(options.bias, 'bias');
    this.bias = bias
      ? this.registerParameter('bias', options.biasInit ? expectShape(options.biasInit, [outFeatures], 'biasInit') : Tensor.rand([outFeatures], { seed: seed + 1, low: -bound, high: bound }))
      : null;
  }

  forward(x: Tensor): Tensor {
    lastDim(x, this.inFeatures, 'x');
    const y = this.workspace('y', withLast(x.shape, this.outFeatures), storageOf(x));
    F.linearForward(x, this.weight.tensor, this.bias?.tensor ?? null, y, this.layout);
    this.#x = x;
    this.#adapter?.forward(x, y);
    return y;
  }

  /** The attached adapter branch, or null. */
  get adapter(): LinearAdapter | null {
    return this.#adapter;
  }

  /** Attaches an adapter branch; its modules become children of this layer (so `lora_A.weight` is listed under it). */
  attachAdapter(adapter: LinearAdapter, modules: Readonly<Record<string, Module>>): void {
    if (this.#adapter) invalidArgument('adapter', 'a Linear without an adapter', 'a Linear that already has one');
    for (const [n, m] of Object.entries(modules)) this.registerModule(n, m);
    this.#adapter = adapter;
    this.#adapterNames = Object.keys(modules);
  }

  /** Detaches the adapter branch (its modules are unregistered, not disposed) and returns it. */
  detachAdapter(): LinearAdapter | null {
    const a = this.#adapter;
    for (const n of this.#adapterNames) this.removeModule(n);
    this.#adapter = null;
    this.#adapterNames = [];
    return a;
  }

  override dispose(): void {
    this.#adapter?.dispose();
    super.dispose();
  }

  /**
   * dy [..., out] → dx [..., in] (overwritten; null when computeInputGrad is false); adds
   * into the gradients of trainable weight and bias. `into` writes (or, with accumulate,
   * adds) dx into a caller's tensor instead of this module's workspace.
   */
  backward(dy: Tensor, into?: { dx: Tensor; accumulate: boolean }): Tensor | null {
    const x = saved(this.#x, 'Linear');
    lastDim(dy, this.outFeatures, 'dy');
    const dx = into ? into.dx : this.computeInputGrad ? this.workspace('dx', x.shape, storageOf(x)) : null;
    this.recordOutputGrad(dy, 1);
    F.linearBackward(x, this.weight.tensor, dy, { dx, dW: this.weight.gradTarget(), db: this.bias?.gradTarget() ?? null, accumulateDx: into?.accumulate ?? false }, this.layout);
    this.#adapter?.backward(dy, dx);
    return dx;
  }
}
