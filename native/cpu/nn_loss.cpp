// Vectorised exp in the row loops: see nn_softmax.h.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "nn_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "nn_softmax.h"
#include "threadpool.h"

namespace kfac::cpu {

double cross_entropy(const float* logits, const int32_t* targets, float* dlogits, int64_t N, int64_t V,
                     int32_t ignore_index, float dscale, int64_t* count) {
  int64_t cnt = 0;
  for (int64_t n = 0; n < N; ++n) cnt += targets[n] != ignore_index;
  if (count) *count = cnt;
  std::vector<double> row_loss(size_t(std::max<int64_t>(N, 0)), 0.0);
  double* rl = row_loss.data();
  float g = cnt > 0 ? float(double(dscale) / double(cnt)) : 0.f;
  parallel_for(N, std::max<int64_t>(1, 8192 / std::max<int64_t>(V, 1)), [=](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n) {
      const float* z = logits + n * V;
      float* d = dlogits ? dlogits + n * V : nullptr;
      int32_t t = targets[n];
      if (t == ignore_index) {
        if (d)
          for (int64_t v = 0; v < V; ++v) d[v] = 0.f;
        continue;
      }
      // log-sum-exp with the row maximum subtracted: no overflow for any finite logits.
      const float zt = z[t];  // read before d (which may be z) is written
      const float mx = softmax::row_max(z, V);
      if (d) {
        const double se = softmax::exp_shift_sum_to(z, d, V, mx);  // d = exp(z − max)
        rl[n] = double(mx) + std::log(se) - double(zt);  // NaN/inf here reaches the caller's check
        const float inv = float(double(g) / se);
        for (int64_t v = 0; v < V; ++v) d[v] *= inv;
        d[t] -= g;
      } else {
        rl[n] = double(mx) + std::log(softmax::exp_shift_sum_only(z, V, mx)) - double(zt);
      }
    }
  });
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total += rl[n];
  return cnt > 0 ? total / double(cnt) : 0.0;
}

}  // namespace kfac::cpu
