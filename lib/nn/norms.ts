/** LayerNorm and RMSNorm over the last dimension. */
import { describe, invalidArgument } from '../errors.js';
import { add } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { checkFinite, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { fusions } from './fusion.js';
import { Module, ParamSlot, saved, storageOf } from './module.js';
import { lastDim, MAX_DIM } from './dims.js';

export interface LayerNormOptions {
  eps?: number;
  /** Learn a bias (default true). */
  bias?: boolean;
}

/** LayerNorm over the last dimension (weight 1, bias 0 at start); saves mean and rstd per row. */
export class LayerNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: ParamSlot;
  readonly bias: ParamSlot | null;
  #x: Tensor | null = null;

  constructor(dim: number, options: LayerNormOptions = {}) {
    super();
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    this.eps = options.eps === undefined ? 1e-5 : checkFinite(options.eps, 'eps');
    if (!(this.eps > 0)) invalidArgument('eps', 'a positive number', describe(this.eps));
    this.weight = this.registerParameter('weight', Tensor.full([dim], 1));
    this.bias = (options.bias ?? true) ? this.registerParameter('bias', Tensor.zeros([dim])) : null;
  }

  forward(x: Tensor): Tensor {
    return this.#forward(x);
  }

  /**
   * LayerNorm of x + residual, with x + residual written to `sum` (the caller's residual stream,
   * which the backward reads): one kernel when the `addNorm` fusion is on, else add then forward.
   */
  forwardAdd(x: Tensor, residual: Tensor, sum: Tensor): Tensor {
    return fusions().addNorm ? this.#forward(x, { residual, sum }) : this.#forward(add(x, residual, sum));
  }

  /** The norm of x (or of x + residual, stored in `fused.sum`), which the backward then reads. */
  #forward(x: Tensor, fused?: F.NormResidual): Tensor {
    lastDim(x, this.dim, 'x');
    const rows = x.shape.slice(0, -1);
    const out = this.workspace('out', x.shape, storageOf(x));
    F.layerNormForward(x, this.weight.tensor, this.bias?.tensor ?? null, this.eps, out, this.workspace('mean', rows), this.workspace('rstd', rows), fused);
    this.#x = fused ? fused.sum : x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'LayerNorm');
    const rows = x.shape.slice(0, -1);
    const dx = this.workspace('dx', x.shape, storageOf(x));
    F.layerNormBackward(x, this.weight.tensor, this.workspace('mean', rows), this.workspace('rstd', rows), dOut, { dx, dw: this.weight.gradTarget(), db: this.bias?.gradTarget() ?? null });
    return dx;
  }
}

/** RMSNorm over the last dimension (weight 1 at start), as in Llama. */
export class RMSNorm extends Module {
  readonly dim: number;
  readonly eps: number;
  readonly weight: ParamSlot;
  #x: Tensor | null = null;

  constructor(dim: number, options: { eps?: number } = {}) {
    super();
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    this.eps = options.eps === undefined ? 1e-6 : checkFinite(options.eps, 'eps');
    if (!(this.eps > 0)) invalidArgument('eps', 'a positive number', describe(this.eps));
    this.weight = this.registerParameter('weight', Tensor.full([dim], 1));
  }

  forward(x: Tensor): Tensor {
    return this.#forward(x);
  }

  /** RMSNorm of x + residual, with x + residual written to `sum`: as LayerNorm.forwardAdd. */
  forwardAdd(x: Tensor, residual: Tensor, sum: Tensor): Tensor {
    return fusions().addNorm ? this.#forward(x, { residual, sum }) : this.#forward(add(x, residual, sum));
  }

  #forward(x: Tensor, fused?: F.NormResidual): Tensor {
    lastDim(x, this.dim, 'x');
    const out = this.workspace('out', x.shape, storageOf(x));
    F.rmsNormForward(x, this.weight.tensor, this.eps, out, this.workspace('rstd', x.shape.slice(0, -1)), fused);
    this.#x = fused ? fused.sum : x;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    const x = saved(this.#x, 'RMSNorm');
    const dx = this.workspace('dx', x.shape, storageOf(x));
    F.rmsNormBackward(x, this.weight.tensor, this.workspace('rstd', x.shape.slice(0, -1)), dOut, { dx, dw: this.weight.gradTarget() });
    return dx;
  }
}
