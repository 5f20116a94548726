#include "clip.h"

#include <algorithm>
#include <vector>

#include "threadpool.h"

namespace kfac::cpu {

namespace {

constexpr int64_t kBlock = 1 << 14;

struct Piece {
  int64_t tensor, begin, end;
};

// Cuts every buffer into fixed blocks: the unit of parallel work and of summation order.
std::vector<Piece> pieces(const int64_t* ns, int64_t count, const float* scales = nullptr) {
  std::vector<Piece> p;
  for (int64_t i = 0; i < count; ++i) {
    if (scales && scales[i] == 1.f) continue;
    for (int64_t b = 0; b < ns[i]; b += kBlock) p.push_back({i, b, std::min(ns[i], b + kBlock)});
  }
  return p;
}

template <class F>
void reduce_many(const int64_t* ns, int64_t count, double* out, F f) {
  std::vector<Piece> p = pieces(ns, count);
  std::vector<double> part(p.size(), 0.0);
  parallel_for(int64_t(p.size()), 2, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) part[size_t(k)] = f(p[size_t(k)]);
  });
  std::fill(out, out + count, 0.0);
  for (size_t k = 0; k < p.size(); ++k) out[p[k].tensor] += part[k];
}

}  // namespace

void sum_squares_many(const float* const* xs, const int64_t* ns, int64_t count, double* out) {
  reduce_many(ns, count, out, [&](const Piece& pc) {
    const float* x = xs[pc.tensor];
    double acc[4] = {0, 0, 0, 0};
    int64_t i = pc.begin;
    for (; i + 4 <= pc.end; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]) * double(x[i + k]);
    for (; i < pc.end; ++i) acc[0] += double(x[i]) * double(x[i]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  });
}

void dot_many(const float* const* xs, const float* const* ys, const int64_t* ns, int64_t count,
              double* out) {
  reduce_many(ns, count, out, [&](const Piece& pc) {
    const float* x = xs[pc.tensor];
    const float* y = ys[pc.tensor];
    double acc[4] = {0, 0, 0, 0};
    int64_t i = pc.begin;
    for (; i + 4 <= pc.end; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]) * double(y[i + k]);
    for (; i < pc.end; ++i) acc[0] += double(x[i]) * double(y[i]);
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
  });
}

void scale_many(float* const* xs, const int64_t* ns, const float* scales, int64_t count) {
  std::vector<Piece> p = pieces(ns, count, scales);
  parallel_for(int64_t(p.size()), 2, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const Piece& pc = p[size_t(k)];
      float* x = xs[pc.tensor];
      float s = scales[pc.tensor];
      for (int64_t i = pc.begin; i < pc.end; ++i) x[i] *= s;
    }
  });
}

}  // namespace kfac::cpu
