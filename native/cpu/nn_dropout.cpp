#include "nn_dropout.h"

#include <algorithm>
#include <cstring>

#include "threadpool.h"

namespace kfac::cpu {

namespace {


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
  // keep iff the top 24 bits, as an integer, are ≥ p·2²⁴ (exact, no float rounding).
  const DropoutMask m = DropoutMask::make(p, seed);
  parallel_for(n, 1 << 14, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = m.keep(uint64_t(i)) ? x[i] * m.scale : 0.f;
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
