// Multi-tensor reductions (float64 accumulation) and scaling for Newton-step clipping.
// The inner loops have AVX-512 and AVX2 variants (function target attributes, chosen at
// run time from the CPU and the kernel ISA setting) and a portable one.
// Optimised even when the build passes no -O flag (binding.gyp's cflags! strips them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "clip.h"

#include <algorithm>
#include <vector>

#include "cpu_features.h"
#include "threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KFAC_X86 1
#endif

namespace kfac::cpu {

namespace {

constexpr int64_t kBlock = 1 << 14;

struct Piece {
  int64_t tensor, begin, end;
};

// Σ x² (y == nullptr) or Σ x·y over [0, n), float64 accumulation.
double dot_portable(const float* x, const float* y, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  if (y) {
    for (; i + 4 <= n; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]) * double(y[i + k]);
    for (; i < n; ++i) acc[0] += double(x[i]) * double(y[i]);
  } else {
    for (; i + 4 <= n; i += 4)
      for (int k = 0; k < 4; ++k) acc[k] += double(x[i + k]) * double(x[i + k]);
    for (; i < n; ++i) acc[0] += double(x[i]) * double(x[i]);
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

void scale_portable(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

#ifdef KFAC_X86
// GCC 12's _mm512_cvtps_pd starts from an "undefined" register and warns about it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
__attribute__((target("avx512f"))) double dot_avx512(const float* x, const float* y, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512d x0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), x1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
    __m512d x2 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 16)), x3 = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 24));
    if (y) {
      a0 = _mm512_fmadd_pd(x0, _mm512_cvtps_pd(_mm256_loadu_ps(y + i)), a0);
      a1 = _mm512_fmadd_pd(x1, _mm512_cvtps_pd(_mm256_loadu_ps(y + i + 8)), a1);
      a2 = _mm512_fmadd_pd(x2, _mm512_cvtps_pd(_mm256_loadu_ps(y + i + 16)), a2);
      a3 = _mm512_fmadd_pd(x3, _mm512_cvtps_pd(_mm256_loadu_ps(y + i + 24)), a3);
    } else {
      a0 = _mm512_fmadd_pd(x0, x0, a0);
      a1 = _mm512_fmadd_pd(x1, x1, a1);
      a2 = _mm512_fmadd_pd(x2, x2, a2);
      a3 = _mm512_fmadd_pd(x3, x3, a3);
    }
  }
  double lanes[8];
  _mm512_storeu_pd(lanes, _mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  double s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  return s + dot_portable(x + i, y ? y + i : nullptr, n - i);
}
#pragma GCC diagnostic pop

__attribute__((target("avx2,fma"))) double dot_avx2(const float* x, const float* y, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256d x0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), x1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
    __m256d x2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8)), x3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
    if (y) {
      a0 = _mm256_fmadd_pd(x0, _mm256_cvtps_pd(_mm_loadu_ps(y + i)), a0);
      a1 = _mm256_fmadd_pd(x1, _mm256_cvtps_pd(_mm_loadu_ps(y + i + 4)), a1);
      a2 = _mm256_fmadd_pd(x2, _mm256_cvtps_pd(_mm_loadu_ps(y + i + 8)), a2);
      a3 = _mm256_fmadd_pd(x3, _mm256_cvtps_pd(_mm_loadu_ps(y + i + 12)), a3);
    } else {
      a0 = _mm256_fmadd_pd(x0, x0, a0);
      a1 = _mm256_fmadd_pd(x1, x1, a1);
      a2 = _mm256_fmadd_pd(x2, x2, a2);
      a3 = _mm256_fmadd_pd(x3, x3, a3);
    }
  }
  __m256d a = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
  double lanes[4];
  _mm256_storeu_pd(lanes, a);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + dot_portable(x + i, y ? y + i : nullptr, n - i);
}

__attribute__((target("avx512f"))) void scale_avx512(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;  // vectorised by the compiler for the target
}

__attribute__((target("avx2"))) void scale_avx2(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}
#endif

using DotFn = double (*)(const float*, const float*, int64_t);
using ScaleFn = void (*)(float*, int64_t, float);

// The variant for this CPU (the portable one when the generic kernels were asked for).
void pick(DotFn& dot, ScaleFn& scale) {
  dot = dot_portable;
  scale = scale_portable;
#ifdef KFAC_X86
  // The dispatch ISA, not the CPU's best: setCpuKernel('avx2') must reach the AVX2 variants.
  if (kernel_isa_at_least(KernelIsa::Avx512)) {
    dot = dot_avx512;
    scale = scale_avx512;
  } else if (kernel_isa_at_least(KernelIsa::Avx2)) {
    dot = dot_avx2;
    scale = scale_avx2;
  }
#endif
}

// Cuts every buffer into fixed blocks: the unit of parallel work and of summation order.
std::vector<Piece> pieces(const int64_t* ns, int64_t count, const float* scales = nullptr) {
  std::vector<Piece> p;
  for (int64_t i = 0; i < count; ++i) {
    if (scales && scales[i] == 1.f) continue;
    for (int64_t b = 0; b < ns[i]; b += kBlock) p.push_back({i, b, std::min(ns[i], b + kBlock)});
  }
  return p;
}

// Below this many elements one thread is faster than waking the pool: one thread streams
// cache-resident data at ~20 G elements/s, while a wake-up costs 10-500 µs on a busy machine.
constexpr int64_t kParallelElems = 1 << 21;

void reduce_many(const float* const* xs, const float* const* ys, const int64_t* ns, int64_t count, double* out) {
  DotFn dot;
  ScaleFn unused;
  pick(dot, unused);
  std::vector<Piece> p = pieces(ns, count);
  std::vector<double> part(p.size(), 0.0);
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) total += ns[i];
  auto body = [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const Piece& pc = p[size_t(k)];
      part[size_t(k)] = dot(xs[pc.tensor] + pc.begin, ys ? ys[pc.tensor] + pc.begin : nullptr, pc.end - pc.begin);
    }
  };
  if (total < kParallelElems) body(0, int64_t(p.size()));
  else parallel_for(int64_t(p.size()), 2, body);
  std::fill(out, out + count, 0.0);
  for (size_t k = 0; k < p.size(); ++k) out[p[k].tensor] += part[k];
}

}  // namespace

void sum_squares_many(const float* const* xs, const int64_t* ns, int64_t count, double* out) {
  reduce_many(xs, nullptr, ns, count, out);
}

void dot_many(const float* const* xs, const float* const* ys, const int64_t* ns, int64_t count,
              double* out) {
  reduce_many(xs, ys, ns, count, out);
}

void scale_many(float* const* xs, const int64_t* ns, const float* scales, int64_t count) {
  DotFn unused;
  ScaleFn scale;
  pick(unused, scale);
  std::vector<Piece> p = pieces(ns, count, scales);
  int64_t total = 0;
  for (const Piece& pc : p) total += pc.end - pc.begin;
  auto body = [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      const Piece& pc = p[size_t(k)];
      scale(xs[pc.tensor] + pc.begin, pc.end - pc.begin, scales[pc.tensor]);
    }
  };
  if (total < kParallelElems) body(0, int64_t(p.size()));
  else parallel_for(int64_t(p.size()), 2, body);
}

}  // namespace kfac::cpu
