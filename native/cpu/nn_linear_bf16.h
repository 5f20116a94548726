// Linear layers whose frozen weight W [OUT, IN] is stored in bfloat16 (activations float32).
// Forward y = x·Wᵀ + b and the input gradient dx = dy·W run on gemm_bf16_nt with x (or dy)
// rounded to bf16, as mixed-precision autocast does; sums stay float32. The weight gets no
// gradient (bf16 weights are frozen base weights). W's packed GEMM panels are cached with it
// (native/core/derived.h) and follow its writes (Storage::version).
#pragma once
#include <cstdint>

#include "../core/tensor.h"

namespace kfac::cpu {

void linear_forward_bf16(const float* x, const Tensor& W, const float* b, float* y, int64_t N, int64_t IN,
                         int64_t OUT);
// dx [N, IN] (= or += dy·W) when dx is not null; db [OUT] (+= Σ_n dy) when db is not null.
void linear_backward_bf16(const Tensor& W, const float* dy, float* dx, float* db, int64_t N, int64_t IN,
                          int64_t OUT, bool accumulate_dx);

}  // namespace kfac::cpu
