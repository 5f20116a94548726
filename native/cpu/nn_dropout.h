// Inverted dropout with a counter-based mask: element i is kept iff u(seed, i) ≥ p, where
// u is a 24-bit uniform from splitmix64(key(seed) + i). The mask depends only on (seed, i),
// so it is the same for any thread count, and the backward rebuilds it instead of storing it.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// The mask scheme, shared with attention-probability dropout.
struct DropoutMask {
  uint64_t key;        // from the seed
  uint64_t threshold;  // keep iff the 24-bit uniform ≥ threshold = round(p·2²⁴)
  float scale;         // 1/(1 − p)

  static uint64_t mix(uint64_t x) {  // splitmix64
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  }
  // p in [0, 1).
  static DropoutMask make(float p, uint64_t seed) {
    return {mix(seed ^ 0x3C6EF372FE94F82Bull), uint64_t(double(p) * 16777216.0 + 0.5), float(1.0 / (1.0 - double(p)))};
  }
  bool keep(uint64_t i) const { return (mix(key + i) >> 40) >= threshold; }
};

// x [n] → out [n] (=): x·keep/(1 − p); p = 0 copies x, p = 1 writes zeros. out may alias x.
void dropout_forward(const float* x, float* out, int64_t n, float p, uint64_t seed);
// dout [n] → dx [n] (=): the same mask and scale as the forward with this seed.
void dropout_backward(const float* dout, float* dx, int64_t n, float p, uint64_t seed);

}  // namespace kfac::cpu
