/** Softmax cross-entropy over rows, with its gradient fused into the training forward. */
import { describe, invalidArgument } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkFinite, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { Module, saved, storageOf } from './module.js';

/**
 * Mean softmax cross-entropy over rows whose target is not `ignoreIndex` (−100). In training
 * mode the forward also computes ∂loss/∂logits (one fused pass), which backward returns
 * (scaled by dLoss).
 */
export class CrossEntropyLoss extends Module {
  readonly ignoreIndex: number;
  /** Non-ignored rows in the last forward. */
  count = 0;
  #logits: Tensor | null = null;
  #targets = new Int32Array(0);
  #n = 0;
  #haveGrad = false;

  constructor(options: { ignoreIndex?: number } = {}) {
    super();
    this.ignoreIndex = options.ignoreIndex === undefined ? -100 : checkInteger(options.ignoreIndex, 'ignoreIndex', -(2 ** 31), 2 ** 31 - 1);
  }

  /** logits [..., V], targets Int32Array with one id per row → mean loss. */
  forward(logits: Tensor, targets: Int32Array): number {
    if (!(targets instanceof Int32Array)) invalidArgument('targets', 'an Int32Array', describe(targets));
    const d = this.training ? this.workspace('dlogits', logits.shape, storageOf(logits)) : null;
    const r = F.crossEntropy(logits, targets, d, { ignoreIndex: this.ignoreIndex });
    if (this.#targets.length < targets.length) this.#targets = new Int32Array(targets.length);
    this.#targets.set(targets);
    this.#n = targets.length;
    this.#logits = logits;
    this.#haveGrad = d !== null;
    this.count = r.count;
    return r.loss;
  }

  /** ∂(dLoss·loss)/∂logits (overwritten). */
  backward(dLoss = 1): Tensor {
    const logits = saved(this.#logits, 'CrossEntropyLoss');
    checkFinite(dLoss, 'dLoss');
    const d = this.workspace('dlogits', logits.shape, storageOf(logits));
    if (!this.#haveGrad || dLoss !== 1) {
      F.crossEntropy(logits, this.#targets.subarray(0, this.#n), d, { ignoreIndex: this.ignoreIndex, dscale: dLoss });
      this.#haveGrad = dLoss === 1;
    }
    return d;
  }
}
