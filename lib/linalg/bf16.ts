/** The bf16 GEMM (frozen bf16 weights): a·bᵀ of two bfloat16 matrices into float32. */
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';

/** a [M, K] bfloat16, b [N, K] bfloat16 → a·bᵀ [M, N] float32, on the kernel `info().cpu.bf16Kernel` names. */
export function matmulBf16NT(a: Tensor, b: Tensor): Tensor {
  return Tensor.fromNative(native().gemmBf16(handleOf(a, 'a'), handleOf(b, 'b')));
}
