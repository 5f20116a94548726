// Normalisation over the last dimension C of N = B·T rows.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// LayerNorm. x [N, C], w [C], b [C] or null → out [N, C] (=), mean [N] (=), rstd [N] (=).
// out = (x − mean)·rstd·w + b, rstd = 1/sqrt(var + eps), var the biased variance. With `res`
// (and `sum`, both or neither) the row normalised is x + res, written to sum first.
void layernorm_forward(const float* x, const float* w, const float* b, float eps, float* out,
                       float* mean, float* rstd, int64_t N, int64_t C, const float* res = nullptr,
                       float* sum = nullptr);
// dout [N, C] → dx [N, C] (=, skipped when null), dw [C] (+=, skipped when null),
// db [C] (+=, skipped when null). Uses the mean/rstd saved by the forward.
void layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                        const float* dout, float* dx, float* dw, float* db, int64_t N, int64_t C);

// RMSNorm. x [N, C], w [C] → out [N, C] (=), rstd [N] (=); out = x·rstd·w,
// rstd = 1/sqrt(mean(x²) + eps); `res` and `sum` as layernorm_forward's.
void rmsnorm_forward(const float* x, const float* w, float eps, float* out, float* rstd, int64_t N,
                     int64_t C, const float* res = nullptr, float* sum = nullptr);
// dout [N, C] → dx [N, C] (=, skipped when null), dw [C] (+=, skipped when null).
void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dout, float* dx,
                      float* dw, int64_t N, int64_t C);

}  // namespace kfac::cpu
