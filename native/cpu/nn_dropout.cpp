#include "nn_dropout.h"

#include <algorithm>
#include <cstring>

#include "threadpool.h"

namespace kfac::cpu {

namespace {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void dropout_apply(const float* x, float* out, int64_t n, float p, uint64_t seed) {
  if (p <= 0.f) {
    if (x != out)
      parallel_for(n, 1 << 15, [=](int64_t s, int64_t e) {
        std::memmove(out + s, x + s, size_t(e - s) * sizeof(float));
      });
    return;
  }
  if (p >= 1.f) {
    parallel_for(n, 1 << 15, [=](int64_t s, int64_t e) { std::fill(out + s, out + e, 0.f); });
    return;
  }
  const uint64_t key = splitmix64(seed ^ 0x3C6EF372FE94F82Bull);
  // keep iff the top 24 bits, as an integer, are ≥ p·2²⁴ (exact, no float rounding).
  const uint64_t threshold = uint64_t(double(p) * 16777216.0 + 0.5);
  const float scale = float(1.0 / (1.0 - double(p)));
  parallel_for(n, 1 << 14, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      uint64_t u = splitmix64(key + uint64_t(i)) >> 40;
      out[i] = u >= threshold ? x[i] * scale : 0.f;
    }
  });
}

}  // namespace

void dropout_forward(const float* x, float* out, int64_t n, float p, uint64_t seed) {
  dropout_apply(x, out, n, p, seed);
}

void dropout_backward(const float* dout, float* dx, int64_t n, float p, uint64_t seed) {
  dropout_apply(dout, dx, n, p, seed);
}

}  // namespace kfac::cpu
