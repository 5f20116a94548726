/** The bf16 GEMM (frozen bf16 weights): products of bfloat16 matrices into float32. */
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkOptions } from '../util/validate.js';

/**
 * a [M, K] bfloat16 · b → [M, N] float32, with b [K, N], or b [N, K] and `transB` (a Linear
 * weight), on the kernel `info().cpu.bf16Kernel` names. Products are exact, sums float32.
 */
export function matmulBf16(a: Tensor, b: Tensor, options: { transB?: boolean } = {}): Tensor {
  const o = checkOptions(options);
  const transB = o['transB'] === undefined ? false : checkBoolean(o['transB'], 'transB');
  return Tensor.fromNative(native().gemmBf16(handleOf(a, 'a'), handleOf(b, 'b'), transB));
}
