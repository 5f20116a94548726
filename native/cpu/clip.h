// Reductions and scaling over a list of f32 buffers, for Newton-step clipping.
// Every reduction is accumulated in float64 over fixed blocks combined in a fixed
// order, so the results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// out[i] = Σ xs[i][k]² for each of the `count` buffers (ns[i] elements each).
// One parallel pass over all buffers together (small tensors share the pool).
void sum_squares_many(const float* const* xs, const int64_t* ns, int64_t count, double* out);

// out[i] = Σ xs[i][k]·ys[i][k].
void dot_many(const float* const* xs, const float* const* ys, const int64_t* ns, int64_t count,
              double* out);

// xs[i] *= scales[i] in place, skipping buffers whose scale is exactly 1.
void scale_many(float* const* xs, const int64_t* ns, const float* scales, int64_t count);

}  // namespace kfac::cpu
