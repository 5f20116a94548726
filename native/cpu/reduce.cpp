#include "reduce.h"

#include <cmath>
#include <vector>

#include "threadpool.h"

namespace kfac::cpu {

namespace {

constexpr int64_t kBlock = 1 << 14;  // fixed blocks: the same sum for any thread count

// Applies f to each fixed block [b, e) in parallel and adds the block results in order.
template <class F>
double blocked(int64_t n, F f) {
  if (n <= 0) return 0.0;
  int64_t nb = (n + kBlock - 1) / kBlock;
  if (nb == 1) return f(0, n);
  std::vector<double> part(size_t(nb), 0.0);
  parallel_for(nb, 2, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) part[size_t(i)] = f(i * kBlock, std::min(n, (i + 1) * kBlock));
  });
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

}  // namespace

double sum(const float* x, int64_t n) {
  return blocked(n, [=](int64_t b, int64_t e) {
    double acc[4] = {0, 0, 0, 0};
    int64_t i = b;
    for (; i + 4 <= e; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]);
    for (; i < e; ++i) acc[0] += double(x[i]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  });
}

double sum_squares(const float* x, int64_t n) {
  return blocked(n, [=](int64_t b, int64_t e) {
    double acc[4] = {0, 0, 0, 0};
    int64_t i = b;
    for (; i + 4 <= e; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]) * double(x[i + k]);
    for (; i < e; ++i) acc[0] += double(x[i]) * double(x[i]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  });
}

double norm2(const float* x, int64_t n) {
  // float squares summed in double cannot overflow (FLT_MAX² ≈ 1e77 < DBL_MAX).
  return std::sqrt(sum_squares(x, n));
}

double dot(const float* x, const float* y, int64_t n) {
  return blocked(n, [=](int64_t b, int64_t e) {
    double acc[4] = {0, 0, 0, 0};
    int64_t i = b;
    for (; i + 4 <= e; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]) * double(y[i + k]);
    for (; i < e; ++i) acc[0] += double(x[i]) * double(y[i]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  });
}

bool all_finite(const float* x, int64_t n) {
  double bad = blocked(n, [=](int64_t b, int64_t e) {
    float acc = 0.f;
    for (int64_t i = b; i < e; ++i) acc += x[i] * 0.f;  // NaN for NaN or ±Inf, else 0
    return std::isnan(acc) ? 1.0 : 0.0;
  });
  return bad == 0.0;
}

}  // namespace kfac::cpu
