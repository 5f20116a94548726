// Linear layers whose frozen weight W [OUT, IN] is stored in bfloat16 (activations float32).
// Forward y = x·Wᵀ + b and the input gradient dx = dy·W run on gemm_bf16_nt with x (or dy)
// rounded to bf16, as mixed-precision autocast does; sums stay float32. The weight gets no
// gradient (bf16 weights are frozen base weights).
#pragma once
#include <cstdint>

namespace kfac::cpu {

void linear_forward_bf16(const float* x, const uint16_t* W, const float* b, float* y, int64_t N, int64_t IN,
                         int64_t OUT);
// dx [N, IN] (= or += dy·W) when dx is not null; db [OUT] (+= Σ_n dy) when db is not null.
void linear_backward_bf16(const uint16_t* W, const float* dy, float* dx, float* db, int64_t N, int64_t IN,
                          int64_t OUT, bool accumulate_dx);

}  // namespace kfac::cpu
