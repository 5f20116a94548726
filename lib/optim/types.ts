/** What optimizers work on, and hyperparameters that may change with the step. */
import type { Tensor } from '../tensor/tensor.js';

/** A trainable parameter: its values and, after a backward pass, its gradient (null: skip it). */
export interface Param {
  name: string;
  tensor: Tensor;
  grad: Tensor | null;
}

/** A number, or a function of the step index (0 for the first update). */
export type Hyper = number | ((step: number) => number);
