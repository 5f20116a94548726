#include "elementwise.h"

#include <algorithm>
#include <cstring>

#include "threadpool.h"

namespace kfac::cpu {

namespace {
constexpr int64_t kGrain = 1 << 15;  // below ~32K elements a second thread costs more than it saves
}

void fill(float* x, int64_t n, float value) {
  parallel_for(n, kGrain, [=](int64_t b, int64_t e) { std::fill(x + b, x + e, value); });
}

void copy(const float* src, float* dst, int64_t n) {
  if (src == dst) return;
  parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    std::memmove(dst + b, src + b, size_t(e - b) * sizeof(float));
  });
}

void add(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

void scale(const float* x, float alpha, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = alpha * x[i];
  });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) y[i] += alpha * x[i];
  });
}

void transpose(const float* in, float* out, int64_t batch, int64_t rows, int64_t cols) {
  constexpr int64_t T = 32;  // tile edge: both tiles stay in L1
  int64_t tiles_r = (rows + T - 1) / T;
  int64_t total = batch * tiles_r;
  parallel_for(total, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, T * cols)),
               [=](int64_t s, int64_t e) {
                 for (int64_t t = s; t < e; ++t) {
                   int64_t bi = t / tiles_r, r0 = (t % tiles_r) * T;
                   const float* src = in + bi * rows * cols;
                   float* dst = out + bi * rows * cols;
                   int64_t r1 = std::min(rows, r0 + T);
                   for (int64_t c0 = 0; c0 < cols; c0 += T) {
                     int64_t c1 = std::min(cols, c0 + T);
                     for (int64_t i = r0; i < r1; ++i)
                       for (int64_t j = c0; j < c1; ++j) dst[j * rows + i] = src[i * cols + j];
                   }
                 }
               });
}

}  // namespace kfac::cpu
