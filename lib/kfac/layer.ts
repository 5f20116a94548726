/** What the K-FAC preconditioner needs from a tracked linear layer. */
import type { Param } from '../optim/types.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * A linear map s = W a (+ b) whose gradient K-FAC preconditions. After a forward and a
 * backward pass, `input()` gives the rows a (shape [R, din] or [..., din]; R = batch ×
 * sequence) and `outputGrad()` the rows g = ∂L/∂s ([R, dout]) of that pass, where L is the
 * loss as the model computed it (mean-reduced over the batch unless the preconditioner is told
 * otherwise). Layers that read the same input (for example the lora_A projections of q, k and
 * v) may give the same `inputKey`: they then share one A factor, updated and decomposed once.
 */
export interface KfacLayer {
  name: string;
  /** W [dout, din]. */
  weight: Param;
  /** b [dout], when the layer has a bias. */
  bias?: Param | null;
  input(): Tensor;
  outputGrad(): Tensor;
  inputKey?: string;
}
