// Inverted dropout with a counter-based mask: element i is kept iff u(seed, i) ≥ p, where
// u is a 24-bit uniform from splitmix64(key(seed) + i). The mask depends only on (seed, i),
// so it is the same for any thread count, and the backward rebuilds it instead of storing it.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// x [n] → out [n] (=): x·keep/(1 − p); p = 0 copies x, p = 1 writes zeros. out may alias x.
void dropout_forward(const float* x, float* out, int64_t n, float p, uint64_t seed);
// dout [n] → dx [n] (=): the same mask and scale as the forward with this seed.
void dropout_backward(const float* dout, float* dx, int64_t n, float p, uint64_t seed);

}  // namespace kfac::cpu
