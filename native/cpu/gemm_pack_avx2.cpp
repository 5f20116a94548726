// AVX2 packing of a transposed B for the GEMM (panel layout in gemm_kernels.h): B is stored
// N×K and each k-major panel row holds NR = 16 consecutive columns of op(B) = Bᵀ, so 8×8
// blocks are transposed in registers instead of being copied one float at a time.
// Optimised even when the build passes no -O flag.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define KFAC_AVX2 __attribute__((target("avx2,fma")))

namespace kfac::cpu::gemm {

namespace {

inline KFAC_AVX2 __m256i lane_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n > 8 ? 8 : n)), idx);
}

// out[j][i] = r[i][j] for an 8×8 block (r: 8 rows of 8 floats).
KFAC_AVX2 void transpose8(const __m256 r[8], __m256 out[8]) {
  __m256 t[8], u[8];
  for (int m = 0; m < 4; ++m) {
    t[2 * m] = _mm256_unpacklo_ps(r[2 * m], r[2 * m + 1]);
    t[2 * m + 1] = _mm256_unpackhi_ps(r[2 * m], r[2 * m + 1]);
  }
  // u[4h + c], 128-bit lane L: rows 4h..4h+3 of column 4L + c
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    out[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    out[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

}  // namespace

// Packs op(B)[k0:k0+kc, j0:j0+nc] into kc×16 panels (see PackB). Not transposed: the portable
// row copy is already as fast as memory allows.
KFAC_AVX2 void pack_b_avx2(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc,
                           int64_t j0, int64_t nc, int nr_panel, float* out) {
  constexpr int64_t NR = 16;
  if (!transB || nr_panel != NR) {
    pack_b_portable(transB, B, ldb, k0, kc, j0, nc, nr_panel, out);
    return;
  }
  for (int64_t j = 0; j < nc; j += NR) {
    float* dst = out + (j / NR) * kc * NR;
    for (int h = 0; h < 2; ++h) {
      const int64_t cols = nc - j - 8 * h;  // valid columns of op(B) in this half (may be <= 0)
      const float* src = B + (j0 + j + 8 * h) * ldb + k0;
      for (int64_t p = 0; p < kc; p += 8) {
        const __m256i mk = lane_mask(kc - p);
        __m256 r[8], t[8];
        for (int i = 0; i < 8; ++i)
          r[i] = i < cols ? _mm256_maskload_ps(src + i * ldb + p, mk) : _mm256_setzero_ps();
        transpose8(r, t);
        const int64_t rows = kc - p < 8 ? kc - p : 8;
        for (int64_t i = 0; i < rows; ++i) _mm256_store_ps(dst + (p + i) * NR + 8 * h, t[i]);
      }
    }
  }
}

}  // namespace kfac::cpu::gemm

#endif
