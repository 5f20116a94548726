// Linear layer kernels: y = x·Wᵀ + b, with W stored [out, in] (torch.nn.Linear) or,
// with `conv1d`, [in, out] (GPT-2's Conv1D, y = x·W + b). N = B·T rows.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// x [N, IN], W [OUT, IN] (or [IN, OUT] when conv1d), b [OUT] or null → y [N, OUT] (=).
void linear_forward(const float* x, const float* W, const float* b, float* y, int64_t N, int64_t IN,
                    int64_t OUT, bool conv1d);

// dy [N, OUT] →
//   dx [N, IN]   (= dy·W; += when accumulate_dx) — skipped when dx is null;
//   dW [OUT, IN] (+= dyᵀ·x; [IN, OUT] += xᵀ·dy when conv1d) — skipped when null (frozen);
//   db [OUT]     (+= Σ_n dy) — skipped when null.
void linear_backward(const float* x, const float* W, const float* dy, float* dx, float* dW, float* db,
                     int64_t N, int64_t IN, int64_t OUT, bool conv1d, bool accumulate_dx);

}  // namespace kfac::cpu
