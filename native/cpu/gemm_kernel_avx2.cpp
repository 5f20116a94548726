// AVX2+FMA micro-kernel of the single-precision GEMM (see gemm_kernels.h for the panel layouts).
// Tile: C[6×16] row-major, two ymm per row of C (12 accumulators), op(A) values broadcast,
// one k-major row of the B panel (16 floats) loaded per step of k.
// Only the functions marked KFAC_AVX2 use the ISA; the driver calls them after checking
// the CPU and OS support AVX2 and FMA.
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KFAC_AVX2 __attribute__((target("avx2,fma")))

namespace kfac::cpu::gemm {

namespace {

constexpr int MR = 6, NR = 16, KCS = 512;

inline KFAC_AVX2 __m256i lane_mask(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

// C[R×nr] = alpha · A[R×kc] · B[kc×16] + beta · C, R <= 6 rows, nr <= 16 columns.
template <int R, bool KMAJ>
KFAC_AVX2 void tile(int nr, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc,
                    float alpha, float beta) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(pb + p * NR);
    const __m256 b1 = _mm256_load_ps(pb + p * NR + 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_broadcast_ss(KMAJ ? pa + p * MR + i : pa + i * KCS + p);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (nr == NR) {
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      float* ci = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
      if (beta != 0.f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
      }
      _mm256_storeu_ps(ci, r0);
      _mm256_storeu_ps(ci + 8, r1);
    }
    return;
  }
  const __m256i m0 = lane_mask(nr), m1 = lane_mask(nr - 8);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
    if (beta != 0.f) {
      r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci, m0), r0);
      r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(ci + 8, m1), r1);
    }
    _mm256_maskstore_ps(ci, m0, r0);
    _mm256_maskstore_ps(ci + 8, m1, r1);
  }
}

using TileFn = void (*)(int, int64_t, const float*, const float*, float*, int64_t, float, float);

template <bool KMAJ>
constexpr TileFn kTiles[MR + 1] = {nullptr,       tile<1, KMAJ>, tile<2, KMAJ>, tile<3, KMAJ>,
                                   tile<4, KMAJ>, tile<5, KMAJ>, tile<6, KMAJ>};

void kernel(APack layout, int mr, int nr, int64_t kc, const float* pa, const float* pb, float* c,
            int64_t ldc, float alpha, float beta) {
  if (layout == APack::KMajor)
    kTiles<true>[mr](nr, kc, pa, pb, c, ldc, alpha, beta);
  else
    kTiles<false>[mr](nr, kc, pa, pb, c, ldc, alpha, beta);
}

}  // namespace

const KernelSet& kernels_avx2() {
  static const KernelSet k{"avx2", MR, NR, KCS, 256, 72, 4096, kernel, pack_b_avx2};
  return k;
}

}  // namespace kfac::cpu::gemm

#else

namespace kfac::cpu::gemm {
const KernelSet& kernels_avx2() { return kernels_generic(); }
}  // namespace kfac::cpu::gemm

#endif
