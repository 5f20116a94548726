// Element-type conversion and the bf16 GEMM entry point (host tensors).
#pragma once
#include "tensor.h"

namespace kfac::ops {

// A new tensor of `to` with x's values (float32 → bfloat16 rounds to nearest even; the other
// way is exact). The same dtype gives a copy. float16 is refused (DType error).
Tensor cast(const Tensor& x, DType to);

// a [M, K] bf16 · (trans_b ? bᵀ for b [N, K] : b [K, N]) bf16 → [M, N] float32, on the bf16
// kernel the dispatch picks.
Tensor gemm_bf16(const Tensor& a, const Tensor& b, bool trans_b);

}  // namespace kfac::ops
