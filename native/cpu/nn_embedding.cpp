#include "nn_embedding.h"

#include <algorithm>
#include <cstring>

#include "threadpool.h"

namespace kfac::cpu {

void embedding_forward(const int32_t* ids, const float* W, float* out, int64_t N, int64_t C) {
  if (C <= 0) return;
  parallel_for(N, std::max<int64_t>(1, 16384 / C), [=](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n)
      std::memcpy(out + n * C, W + int64_t(ids[n]) * C, size_t(C) * sizeof(float));
  });
}

void embedding_backward(const int32_t* ids, const float* dout, float* dW, int64_t N, int64_t C) {
  if (C <= 0 || N <= 0) return;
  // Split columns, not rows: no two threads ever touch the same dW element, and every
  // element receives its contributions in the order n = 0, 1, … (deterministic).
  parallel_for(C, std::max<int64_t>(16, 32768 / std::max<int64_t>(N, 1)), [=](int64_t s, int64_t e) {
    for (int64_t n = 0; n < N; ++n) {
      const float* g = dout + n * C;
      float* w = dW + int64_t(ids[n]) * C;
      for (int64_t c = s; c < e; ++c) w[c] += g[c];
    }
  });
}

}  // namespace kfac::cpu
