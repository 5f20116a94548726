#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's intrinsic headers build some conversions from an undefined vector, which its
// uninitialised-value analysis reports once inlined here; those lanes are never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "nn_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_features.h"
#include "threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KFAC_NORM_AVX512 1
#endif

namespace kfac::cpu {

namespace {
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)); }

// Parameter gradients are computed before dx, so dx may alias dout or x.
// Parameter gradients: each thread owns a range of columns and walks every row in order,
// accumulating in double, so the result does not depend on the thread count.
// Σ_c f(c) over [0, C) in double with eight independent partial sums (lane c mod 8), added
// in a fixed tree: no chain of dependent additions (the row sums run at the adder's
// throughput, not its latency), and the same result for every thread count.
template <class F>
double row_sum(int64_t C, F&& f) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= C; c += 8)
    for (int j = 0; j < 8; ++j) a[j] += f(c + j);
  for (int j = 0; c < C; ++c, ++j) a[j] += f(c);
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// The two row sums of a norm's input gradient, in double: Σ_c g·w and Σ_c g·w·x̂ with
// x̂ = (x − m)·r (m = 0 for RMSNorm).
struct GradSums {
  double gw, gwx;
};

GradSums grad_sums_portable(const float* g, const float* w, const float* x, float m, float r, int64_t C) {
  return {row_sum(C, [=](int64_t c) { return double(g[c]) * w[c]; }),
          row_sum(C, [=](int64_t c) { return double(g[c]) * w[c] * double((x[c] - m) * r); })};
}

#ifdef KFAC_NORM_AVX512
// Sixteen columns per step, widened to two vectors of eight doubles; masked loads for the tail
// (nothing read past the row).
__attribute__((target("avx512f"))) inline __m256 upper8(__m512 v) {
  return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

__attribute__((target("avx512f"))) GradSums grad_sums_avx512(const float* g, const float* w, const float* x, float m,
                                                             float r, int64_t C) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd(), t0 = _mm512_setzero_pd(), t1 = _mm512_setzero_pd();
  const __m512 vm = _mm512_set1_ps(m), vr = _mm512_set1_ps(r);
  for (int64_t c = 0; c < C; c += 16) {
    const int64_t left = C - c;
    const __mmask16 k = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512 gv = _mm512_maskz_loadu_ps(k, g + c), wv = _mm512_maskz_loadu_ps(k, w + c);
    const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), vm), vr);
    const __m512d gw0 = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(gv)), _mm512_cvtps_pd(_mm512_castps512_ps256(wv)));
    const __m512d gw1 = _mm512_mul_pd(_mm512_cvtps_pd(upper8(gv)), _mm512_cvtps_pd(upper8(wv)));
    s0 = _mm512_add_pd(s0, gw0);
    s1 = _mm512_add_pd(s1, gw1);
    t0 = _mm512_add_pd(t0, _mm512_mul_pd(gw0, _mm512_cvtps_pd(_mm512_castps512_ps256(xh))));
    t1 = _mm512_add_pd(t1, _mm512_mul_pd(gw1, _mm512_cvtps_pd(upper8(xh))));
  }
  return {_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)), _mm512_reduce_add_pd(_mm512_add_pd(t0, t1))};
}
#endif

// The AVX-512 path when the dispatch allows it (the sums differ from the portable ones only
// in the order of additions); the same for every thread count either way.
GradSums grad_sums(const float* g, const float* w, const float* x, float m, float r, int64_t C) {
#ifdef KFAC_NORM_AVX512
  if (kernel_isa_at_least(KernelIsa::Avx512)) return grad_sums_avx512(g, w, x, m, r, C);
#endif
  return grad_sums_portable(g, w, x, m, r, C);
}

template <class F>
void column_reduce(int64_t N, int64_t C, F&& per_row) {
  parallel_for(C, std::max<int64_t>(16, 32768 / std::max<int64_t>(N, 1)), [&](int64_t s, int64_t e) {
    std::vector<double> acc0(size_t(e - s), 0.0), acc1(size_t(e - s), 0.0);
    for (int64_t n = 0; n < N; ++n) per_row(n, s, e, acc0.data(), acc1.data());
    per_row(-1, s, e, acc0.data(), acc1.data());  // n = −1: flush
  });
}

// The row a norm reads: x's, or (fused residual add) x + res written to sum's row first.
const float* norm_input(const float* x, const float* res, float* sum, int64_t n, int64_t C) {
  const float* xr = x + n * C;
  if (!res) return xr;
  const float* rr = res + n * C;
  float* sr = sum + n * C;
  for (int64_t c = 0; c < C; ++c) sr[c] = xr[c] + rr[c];
  return sr;
}
}  // namespace

void layernorm_forward(const float* x, const float* w, const float* b, float eps, float* out,
                       float* mean, float* rstd, int64_t N, int64_t C, const float* res, float* sum) {
  parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n) {
      const float* xr = norm_input(x, res, sum, n, C);
      double m = row_sum(C, [=](int64_t c) { return double(xr[c]); });
      m = C > 0 ? m / double(C) : 0.0;
      double v = row_sum(C, [=](int64_t c) {
        const double d = xr[c] - m;
        return d * d;
      });
      v = C > 0 ? v / double(C) : 0.0;
      float r = float(1.0 / std::sqrt(v + double(eps)));
      float mf = float(m);
      float* o = out + n * C;
      for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - mf) * r * w[c] + (b ? b[c] : 0.f);
      mean[n] = mf;
      rstd[n] = r;
    }
  });
}

void layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                        const float* dout, float* dx, float* dw, float* db, int64_t N, int64_t C) {
  if (dw || db) {
    column_reduce(N, C, [=](int64_t n, int64_t s, int64_t e, double* aw, double* ab) {
      if (n < 0) {
        for (int64_t c = s; c < e; ++c) {
          if (dw) dw[c] += float(aw[c - s]);
          if (db) db[c] += float(ab[c - s]);
        }
        return;
      }
      const float* xr = x + n * C;
      const float* g = dout + n * C;
      float m = mean[n], r = rstd[n];
      for (int64_t c = s; c < e; ++c) {
        aw[c - s] += double(g[c]) * double((xr[c] - m) * r);
        ab[c - s] += g[c];
      }
    });
  }
  if (dx) {
    parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) {
        const float* xr = x + n * C;
        const float* g = dout + n * C;
        float m = mean[n], r = rstd[n];
        const GradSums sums = grad_sums(g, w, xr, m, r, C);  // Σ dxhat, Σ dxhat·xhat
        float a = float(sums.gw / double(C)), bb = float(sums.gwx / double(C));
        float* d = dx + n * C;
        for (int64_t c = 0; c < C; ++c) {
          float xh = (xr[c] - m) * r;
          d[c] = r * (g[c] * w[c] - a - xh * bb);
        }
      }
    });
  }
}

void rmsnorm_forward(const float* x, const float* w, float eps, float* out, float* rstd, int64_t N,
                     int64_t C, const float* res, float* sum) {
  parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n) {
      const float* xr = norm_input(x, res, sum, n, C);
      const double ss = row_sum(C, [=](int64_t c) { return double(xr[c]) * xr[c]; });
      double ms = C > 0 ? ss / double(C) : 0.0;
      float r = float(1.0 / std::sqrt(ms + double(eps)));
      float* o = out + n * C;
      for (int64_t c = 0; c < C; ++c) o[c] = xr[c] * r * w[c];
      rstd[n] = r;
    }
  });
}

void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dout, float* dx,
                      float* dw, int64_t N, int64_t C) {
  if (dw) {
    column_reduce(N, C, [=](int64_t n, int64_t s, int64_t e, double* aw, double*) {
      if (n < 0) {
        for (int64_t c = s; c < e; ++c) dw[c] += float(aw[c - s]);
        return;
      }
      const float* xr = x + n * C;
      const float* g = dout + n * C;
      float r = rstd[n];
      for (int64_t c = s; c < e; ++c) aw[c - s] += double(g[c]) * double(xr[c] * r);
    });
  }
  if (dx) {
    parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) {
        const float* xr = x + n * C;
        const float* g = dout + n * C;
        float r = rstd[n];
        const double sgx = grad_sums(g, w, xr, 0.f, r, C).gwx;  // Σ dxhat·xhat
        float bb = float(sgx / double(C));
        float* d = dx + n * C;
        for (int64_t c = 0; c < C; ++c) d[c] = r * (g[c] * w[c] - xr[c] * r * bb);
      }
    });
  }
}

}  // namespace kfac::cpu
