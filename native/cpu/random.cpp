#include "random.h"

#include <cmath>

#include "threadpool.h"

namespace kfac::cpu {

namespace {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A double in (0, 1]: never 0, so log() is finite.
inline double unit(uint64_t bits) { return (double(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0); }

constexpr double kTwoPi = 6.283185307179586476925286766559;

}  // namespace

void randn(float* x, int64_t n, uint64_t seed, float mean, float std) {
  uint64_t key = splitmix64(seed ^ 0x6A09E667F3BCC909ull);
  int64_t pairs = (n + 1) / 2;
  parallel_for(pairs, 8192, [=](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      uint64_t h1 = splitmix64(key + 2 * uint64_t(p));
      uint64_t h2 = splitmix64(key + 2 * uint64_t(p) + 1);
      double r = std::sqrt(-2.0 * std::log(unit(h1)));
      double t = kTwoPi * unit(h2);
      x[2 * p] = float(mean + std * r * std::cos(t));
      if (2 * p + 1 < n) x[2 * p + 1] = float(mean + std * r * std::sin(t));
    }
  });
}

void rand_uniform(float* x, int64_t n, uint64_t seed, float lo, float hi) {
  uint64_t key = splitmix64(seed ^ 0xBB67AE8584CAA73Bull);
  parallel_for(n, 16384, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      double u = unit(splitmix64(key + uint64_t(i))) - 0x1p-53;  // [0, 1)
      float v = float(lo + (double(hi) - double(lo)) * u);
      x[i] = v < hi ? v : lo;  // rounding must not reach hi
    }
  });
}

}  // namespace kfac::cpu
