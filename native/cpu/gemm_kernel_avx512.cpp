// AVX-512F micro-kernel of the single-precision GEMM (see gemm_kernels.h for the panel layouts).
// Tile: C[14×32] row-major, two zmm per row of C (28 accumulators), op(A) values broadcast,
// one k-major row of the B panel (32 floats) loaded per step of k.
// Only the functions marked KFAC_AVX512 use the ISA; the driver calls them after checking
// the CPU and OS support AVX-512F.
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KFAC_AVX512 __attribute__((target("avx512f")))

namespace kfac::cpu::gemm {

namespace {

constexpr int MR = 14, NR = 32, KCS = 512;

inline KFAC_AVX512 __mmask16 lane_mask(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// C[R×nr] = alpha · A[R×kc] · B[kc×32] + beta · C, R <= 14 rows, nr <= 32 columns.
template <int R, bool KMAJ>
KFAC_AVX512 void tile(int nr, int64_t kc, const float* pa, const float* pb, float* c,
                      int64_t ldc, float alpha, float beta) {
  // Start fetching the C tile now; it is only read after the k loop.
  if (beta != 0.f) {
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
  }
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_load_ps(pb + p * NR);
    const __m512 b1 = _mm512_load_ps(pb + p * NR + 16);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(KMAJ ? pa[p * MR + i] : pa[i * KCS + p]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (nr == NR) {
    if (beta == 0.f) {
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, c0[i]));
        _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, c1[i]));
      }
    } else {
      const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        float* ci = c + i * ldc;
        _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, c0[i])));
        _mm512_storeu_ps(ci + 16,
                         _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), _mm512_mul_ps(va, c1[i])));
      }
    }
    return;
  }
  const __mmask16 m0 = lane_mask(nr), m1 = lane_mask(nr - 16);
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, c0[i]), r1 = _mm512_mul_ps(va, c1[i]);
    if (beta != 0.f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

using TileFn = void (*)(int, int64_t, const float*, const float*, float*, int64_t, float, float);

template <bool KMAJ>
constexpr TileFn kTiles[MR + 1] = {
    nullptr,          tile<1, KMAJ>,  tile<2, KMAJ>,  tile<3, KMAJ>,  tile<4, KMAJ>,
    tile<5, KMAJ>,    tile<6, KMAJ>,  tile<7, KMAJ>,  tile<8, KMAJ>,  tile<9, KMAJ>,
    tile<10, KMAJ>,   tile<11, KMAJ>, tile<12, KMAJ>, tile<13, KMAJ>, tile<14, KMAJ>};

void kernel(APack layout, int mr, int nr, int64_t kc, const float* pa, const float* pb, float* c,
            int64_t ldc, float alpha, float beta) {
  if (layout == APack::KMajor)
    kTiles<true>[mr](nr, kc, pa, pb, c, ldc, alpha, beta);
  else
    kTiles<false>[mr](nr, kc, pa, pb, c, ldc, alpha, beta);
}

}  // namespace

const KernelSet& kernels_avx512() {
  static const KernelSet k{"avx512", MR, NR, KCS, 384, 168, 4096, kernel, pack_b_avx512};
  return k;
}

}  // namespace kfac::cpu::gemm

#else

namespace kfac::cpu::gemm {
const KernelSet& kernels_avx512() { return kernels_generic(); }
}  // namespace kfac::cpu::gemm

#endif
