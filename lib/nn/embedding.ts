/** Embedding: token ids → rows of a table, and the output hook prompt tuning attaches. */
import { describe, invalidArgument } from '../errors.js';
import { scale } from '../ops/index.js';
import { type Device, Tensor } from '../tensor/tensor.js';
import { checkFinite, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { expectShape, Module, ParamSlot, saved } from './module.js';
import { MAX_DIM } from './dims.js';

export interface EmbeddingOptions {
  /** Initial table [V, C] (taken over); default Normal(0, std). */
  weight?: Tensor;
  std?: number;
  seed?: number;
}

/**
 * A hook on an Embedding's output (prompt tuning, lib/peft): forward may rewrite rows of the
 * looked-up [..., C] output in place; backward reads the output gradient first and returns the
 * gradient the table's scatter should use (dOut itself, or a copy with rewritten rows zeroed).
 */
export interface EmbeddingHook {
  forward(out: Tensor): void;
  backward(dOut: Tensor, tableTrainable: boolean): Tensor;
}

/**
 * The storage of a model's activations on `device`: the one asked for on cuda, float32 on the CPU
 * (whose kernels store no bf16 activation).
 */
export function activationStorage(asked: 'float32' | 'bfloat16', device: Device): 'float32' | 'bfloat16' {
  return device === 'cpu' ? 'float32' : asked;
}

/** Token ids → rows of a [V, C] table. Backward scatter-adds into the table's gradient. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly dim: number;
  readonly weight: ParamSlot;
  /**
   * Storage of the looked-up rows asked for (default float32). 'bfloat16' makes the model's
   * activations bf16 on cuda — every later activation takes its input's dtype — and is set
   * aside on the CPU, which stores activations in float32 only (`storage`), so a model moved
   * there with `to('cpu')` runs in float32 and is bf16 again back on cuda.
   */
  activations: 'float32' | 'bfloat16' = 'float32';

  /** The storage the rows are written in on the current device: `activations` on cuda, float32 on the CPU. */
  get storage(): 'float32' | 'bfloat16' {
    return activationStorage(this.activations, this.device);
  }
  #ids = new Int32Array(0);
  #n = -1;
  #hook: EmbeddingHook | null = null;
  #hookNames: string[] = [];

  /** The attached output hook, or null. */
  get hook(): EmbeddingHook | null {
    return this.#hook;
  }

  /** Attaches an output hook; its modules become children of this embedding. */
  attachHook(hook: EmbeddingHook, modules: Readonly<Record<string, Module>>): void {
    if (this.#hook) invalidArgument('hook', 'an Embedding without a hook', 'one that already has one');
    for (const [n, m] of Object.entries(modules)) this.registerModule(n, m);
    this.#hook = hook;
    this.#hookNames = Object.keys(modules);
  }

  /** Detaches the hook (its modules are unregistered, not disposed). */
  detachHook(): void {
    for (const n of this.#hookNames) this.removeModule(n);
    this.#hook = null;
    this.#hookNames = [];
  }

  constructor(numEmbeddings: number, dim: number, options: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = checkInteger(numEmbeddings, 'numEmbeddings', 1, MAX_DIM);
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    const std = options.std === undefined ? 0.02 : checkFinite(options.std, 'std');
    const seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, Number.MAX_SAFE_INTEGER);
    this.weight = this.registerParameter('weight', options.weight ? expectShape(options.weight, [numEmbeddings, dim], 'weight') : Tensor.randn([numEmbeddings, dim], { seed, std }));
  }

  /** ids (e.g. B·T tokens) → [...shape, C]; shape defaults to [ids.length]. */
  forward(ids: Int32Array, shape: readonly number[] = [ids.length]): Tensor {
    if (!(ids instanceof Int32Array)) invalidArgument('ids', 'an Int32Array', describe(ids));
    const out = this.workspace('out', [...shape, this.dim], this.storage);
    if (this.#hook && this.storage === 'bfloat16') {
      // A hook (prompt tuning) writes float32 rows: it works on the float32 lookup, which is then
      // rounded to bf16 once, as the rows looked up directly would be.
      const o32 = this.workspace('out32', out.shape);
      F.embeddingForward(ids, this.weight.tensor, o32);
      this.#hook.forward(o32);
      scale(o32, 1, out);
    } else {
      F.embeddingForward(ids, this.weight.tensor, out);
      this.#hook?.forward(out);
    }
    if (this.#ids.length < ids.length) this.#ids = new Int32Array(ids.length);
    this.#ids.set(ids);
    this.#n = ids.length;
    return out;
  }

  /** Adds the scatter of dOut into the table's gradient (when trainable). Token ids have no gradient: returns null. */
  backward(dOut: Tensor): null {
    if (this.#n < 0) saved(null, 'Embedding');
    const dW = this.weight.gradTarget();
    // a hook reads float32 gradients: a bf16 dOut is widened (exactly) first
    const dh = this.#hook && dOut.dtype === 'bfloat16' ? scale(dOut, 1, this.workspace('dOut32', dOut.shape)) : dOut;
    const d = this.#hook ? this.#hook.backward(dh, dW !== null) : dOut;
    if (dW) F.embeddingBackward(this.#ids.subarray(0, this.#n), d, dW);
    return null;
  }
}
