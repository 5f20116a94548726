// The bf16 GEMM entry point (host tensors). The float32 ↔ bfloat16 conversion is the op
// list's `cast` (ops.h), dispatched on the tensor's device.
#pragma once
#include "tensor.h"

namespace kfac::ops {

// a [M, K] bf16 · (trans_b ? bᵀ for b [N, K] : b [K, N]) bf16 → [M, N] float32, on the bf16
// kernel the dispatch picks.
Tensor gemm_bf16(const Tensor& a, const Tensor& b, bool trans_b);

}  // namespace kfac::ops
