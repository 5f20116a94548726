/** Element-type conversion of host tensors (float32 ↔ bfloat16). */
import { describe, invalidArgument } from '../errors.js';
import { native } from '../native/loader.js';
import { handleOf, Tensor, type DType } from '../tensor/tensor.js';

/**
 * A new tensor holding x's values as `dtype` ('float32' or 'bfloat16'): to bfloat16 rounds to
 * nearest even (NaN and ±Inf kept), to float32 is exact; the same dtype gives a copy.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const h = handleOf(x, 'x');
  if (dtype !== 'float32' && dtype !== 'bfloat16') invalidArgument('dtype', "'float32' or 'bfloat16'", describe(dtype));
  return Tensor.fromNative(native().cast(h, dtype));
}
