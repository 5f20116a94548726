// Whole-buffer reductions on f32 data, accumulated in float64 so that the result
// does not depend on how many threads ran (blocks are combined in a fixed order).
#pragma once
#include <cstdint>

namespace kfac::cpu {

double sum(const float* x, int64_t n);
double sum_squares(const float* x, int64_t n);
// sqrt(sum_squares), computed without overflow for values near FLT_MAX.
double norm2(const float* x, int64_t n);
// Σ x·y
double dot(const float* x, const float* y, int64_t n);
// True when every element is finite.
bool all_finite(const float* x, int64_t n);

}  // namespace kfac::cpu
