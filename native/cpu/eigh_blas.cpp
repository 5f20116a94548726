// Small BLAS-like helpers for the eigensolvers: column-major GEMM over sgemm, vector
// kernels with an AVX2/FMA path, and the symmetric matrix-vector product.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu_features.h"
#include "eigh_detail.h"
#include "gemm.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define KFAC_EIG_X86 1
#endif

namespace kfac::cpu::eig {

// Column-major C = α op(A) op(B) + β C is row-major Cᵀ = α op(B)ᵀ op(A)ᵀ + β Cᵀ.
template <>
void gemm_cm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  sgemm(tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
}

template <>
void gemm_cm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                     const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                     double* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  parallel_for(N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, M * std::max<int64_t>(K, 1))),
               [&](int64_t j0, int64_t j1) {
    std::vector<double> acc(static_cast<size_t>(M)), bcol(static_cast<size_t>(K));
    for (int64_t j = j0; j < j1; ++j) {
      for (int64_t p = 0; p < K; ++p) bcol[size_t(p)] = tb ? B[j + p * ldb] : B[p + j * ldb];
      std::fill(acc.begin(), acc.end(), 0.0);
      if (!ta) {
        for (int64_t p = 0; p < K; ++p) axpy(M, bcol[size_t(p)], A + p * lda, acc.data());
      } else {
        for (int64_t i = 0; i < M; ++i) acc[size_t(i)] = dot(K, A + i * lda, bcol.data());
      }
      double* c = C + j * ldc;
      if (beta == 0.0)
        for (int64_t i = 0; i < M; ++i) c[i] = alpha * acc[size_t(i)];
      else
        for (int64_t i = 0; i < M; ++i) c[i] = alpha * acc[size_t(i)] + beta * c[i];
    }
  });
}

namespace {

#ifdef KFAC_EIG_X86
__attribute__((target("avx2,fma"))) float dot_avx2(int64_t n, const float* x, const float* y) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
         s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) r += x[i] * y[i];
  return r;
}

__attribute__((target("avx2,fma"))) void axpy_avx2(int64_t n, float a, const float* x, float* y) {
  __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    _mm256_storeu_ps(y + i + 8,
                     _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// One column of the lower-stored symv: y[0:n] += t·a[0:n]; returns Σ a[i]·x[i].
__attribute__((target("avx2,fma"))) float symv_col_avx2(int64_t n, const float* a, float t,
                                                        const float* x, float* y) {
  __m256 vt = _mm256_set1_ps(t), s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + i + 8);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vt, a0, _mm256_loadu_ps(y + i)));
    _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(vt, a1, _mm256_loadu_ps(y + i + 8)));
    s0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(x + i), s0);
    s1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + i + 8), s1);
  }
  __m256 s = _mm256_add_ps(s0, s1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) {
    y[i] += t * a[i];
    r += a[i] * x[i];
  }
  return r;
}

// The same with 16 lanes (AVX-512F).
__attribute__((target("avx512f,avx2,fma"))) float symv_col_avx512(int64_t n, const float* a, float t,
                                                                  const float* x, float* y) {
  __m512 vt = _mm512_set1_ps(t), s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 a0 = _mm512_loadu_ps(a + i), a1 = _mm512_loadu_ps(a + i + 16);
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vt, a0, _mm512_loadu_ps(y + i)));
    _mm512_storeu_ps(y + i + 16, _mm512_fmadd_ps(vt, a1, _mm512_loadu_ps(y + i + 16)));
    s0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(x + i), s0);
    s1 = _mm512_fmadd_ps(a1, _mm512_loadu_ps(x + i + 16), s1);
  }
  if (i + 16 <= n) {
    __m512 a0 = _mm512_loadu_ps(a + i);
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vt, a0, _mm512_loadu_ps(y + i)));
    s0 = _mm512_fmadd_ps(a0, _mm512_loadu_ps(x + i), s0);
    i += 16;
  }
  float r = 0;
  for (; i < n; ++i) {
    y[i] += t * a[i];
    r += a[i] * x[i];
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(s0, s1));
  for (float v : lanes) r += v;
  return r;
}

// AVX-512 where the CPU has it and the kernel choice (setCpuKernel / KFAC_CPU_KERNEL) allows it,
// so that asking for 'avx2' runs — and tests — the AVX2 path on an AVX-512 machine.
bool has_avx512() {
  static const bool ok = cpu_features().avx512f;
  return ok && kernel_isa() == KernelIsa::Avx512;
}
#endif

inline bool use_avx2() {
#ifdef KFAC_EIG_X86
  // Any ISA above the portable one implies AVX2+FMA (the list may grow: avx512, …).
  static const bool avx2 = cpu_features().avx2 && cpu_features().fma;
  return avx2 && kernel_isa() != KernelIsa::Generic;
#else
  return false;
#endif
}

template <class T>
T symv_col_generic(int64_t n, const T* a, T t, const T* x, T* y) {
  T s0 = 0, s1 = 0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    y[i] += t * a[i];
    y[i + 1] += t * a[i + 1];
    s0 += a[i] * x[i];
    s1 += a[i + 1] * x[i + 1];
  }
  for (; i < n; ++i) {
    y[i] += t * a[i];
    s0 += a[i] * x[i];
  }
  return s0 + s1;
}

inline float symv_col(int64_t n, const float* a, float t, const float* x, float* y) {
#ifdef KFAC_EIG_X86
  if (use_avx2()) return has_avx512() ? symv_col_avx512(n, a, t, x, y) : symv_col_avx2(n, a, t, x, y);
#endif
  return symv_col_generic(n, a, t, x, y);
}
inline double symv_col(int64_t n, const double* a, double t, const double* x, double* y) {
  return symv_col_generic(n, a, t, x, y);
}

// Columns [c0, c1) of the lower-stored product into y (which covers rows 0..m).
template <class T>
void symv_cols(int64_t m, int64_t c0, int64_t c1, const T* A, int64_t ld, const T* x, T* y) {
  for (int64_t j = c0; j < c1; ++j) {
    const T* a = A + j + j * ld;
    T s = symv_col(m - j - 1, a + 1, x[j], x + j + 1, y + j + 1);
    y[j] += a[0] * x[j] + s;
  }
}

}  // namespace

float dot(int64_t n, const float* x, const float* y) {
#ifdef KFAC_EIG_X86
  if (use_avx2()) return dot_avx2(n, x, y);
#endif
  float s0 = 0, s1 = 0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    s0 += x[i] * y[i];
    s1 += x[i + 1] * y[i + 1];
  }
  if (i < n) s0 += x[i] * y[i];
  return s0 + s1;
}

double dot(int64_t n, const double* x, const double* y) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i] * y[i];
    s1 += x[i + 1] * y[i + 1];
    s2 += x[i + 2] * y[i + 2];
    s3 += x[i + 3] * y[i + 3];
  }
  for (; i < n; ++i) s0 += x[i] * y[i];
  return (s0 + s1) + (s2 + s3);
}

void axpy(int64_t n, float a, const float* x, float* y) {
#ifdef KFAC_EIG_X86
  if (use_avx2()) return axpy_avx2(n, a, x, y);
#endif
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void axpy(int64_t n, double a, const double* x, double* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// y = A x, A symmetric m×m with its lower triangle stored. Each thread takes a band of
// columns of about equal area and accumulates into its own copy of y.
template <class T>
void symv_lower(int64_t m, const T* A, int64_t ld, const T* x, T* y) {
  std::fill(y, y + m, T(0));
  int nt = std::min<int64_t>(num_threads(), m >= 320 ? 8 : 1);
  if (nt <= 1) {
    symv_cols(m, 0, m, A, ld, x, y);
    return;
  }
  thread_local std::vector<T> part;
  part.assign(size_t(m) * size_t(nt - 1), T(0));
  T* parts = part.data();
  run_team(nt, [&](int tid, int nth, Barrier& bar) {
    // column c where the remaining area (m−c)² is the fraction (nth−k)/nth of m².
    auto edge = [&](int k) -> int64_t {
      if (k <= 0) return 0;
      if (k >= nth) return m;
      double f = std::sqrt(double(nth - k) / nth);
      return std::min<int64_t>(m, int64_t(double(m) * (1.0 - f)));
    };
    T* yy = tid == 0 ? y : parts + size_t(tid - 1) * size_t(m);
    symv_cols(m, edge(tid), edge(tid + 1), A, ld, x, yy);
    bar.wait();
    int64_t r0 = m * tid / nth, r1 = m * (tid + 1) / nth;
    for (int k = 1; k < nth; ++k) {
      const T* p = parts + size_t(k - 1) * size_t(m);
      for (int64_t i = r0; i < r1; ++i) y[i] += p[i];
    }
  });
}

template void symv_lower<float>(int64_t, const float*, int64_t, const float*, float*);
template void symv_lower<double>(int64_t, const double*, int64_t, const double*, double*);

}  // namespace kfac::cpu::eig
