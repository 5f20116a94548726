// Seeded random fills. Counter-based (element i depends only on seed and i), so the
// result is the same for any thread count and any machine.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// Normal(mean, std) by Box–Muller on splitmix64 streams.
void randn(float* x, int64_t n, uint64_t seed, float mean, float std);
// Uniform in [lo, hi).
void rand_uniform(float* x, int64_t n, uint64_t seed, float lo, float hi);

}  // namespace kfac::cpu
