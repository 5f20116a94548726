// AVX-512F packing of a transposed B for the GEMM (panel layout in gemm_kernels.h): B is stored
// N×K and each k-major panel row holds NR = 32 consecutive columns of op(B) = Bᵀ, so 16×16
// blocks are transposed in registers instead of being copied one float at a time.
// Optimised even when the build passes no -O flag.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

// GCC 12 reports the intrinsics' own _mm512_undefined_ps() as uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#define KFAC_AVX512 __attribute__((target("avx512f")))

namespace kfac::cpu::gemm {

namespace {

inline KFAC_AVX512 __mmask16 lane_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

// out[j][i] = r[i][j] for a 16×16 block (r: 16 rows of 16 floats).
KFAC_AVX512 void transpose16(const __m512 r[16], __m512 out[16]) {
  __m512 a[16], b[16];
  for (int m = 0; m < 8; ++m) {
    a[2 * m] = _mm512_unpacklo_ps(r[2 * m], r[2 * m + 1]);
    a[2 * m + 1] = _mm512_unpackhi_ps(r[2 * m], r[2 * m + 1]);
  }
  // b[4n + c], 128-bit lane L: rows 4n..4n+3 of column 4L + c
  for (int n = 0; n < 4; ++n) {
    b[4 * n + 0] = _mm512_shuffle_ps(a[4 * n], a[4 * n + 2], 0x44);
    b[4 * n + 1] = _mm512_shuffle_ps(a[4 * n], a[4 * n + 2], 0xEE);
    b[4 * n + 2] = _mm512_shuffle_ps(a[4 * n + 1], a[4 * n + 3], 0x44);
    b[4 * n + 3] = _mm512_shuffle_ps(a[4 * n + 1], a[4 * n + 3], 0xEE);
  }
  // Column 4L + c gathers lane L of b[c], b[4 + c], b[8 + c], b[12 + c].
  for (int c = 0; c < 4; ++c) {
    const __m512 d0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88);
    const __m512 d1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xDD);
    const __m512 d2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88);
    const __m512 d3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xDD);
    out[c] = _mm512_shuffle_f32x4(d0, d2, 0x88);
    out[8 + c] = _mm512_shuffle_f32x4(d0, d2, 0xDD);
    out[4 + c] = _mm512_shuffle_f32x4(d1, d3, 0x88);
    out[12 + c] = _mm512_shuffle_f32x4(d1, d3, 0xDD);
  }
}

}  // namespace

// Packs op(B)[k0:k0+kc, j0:j0+nc] into kc×32 panels (see PackB). Not transposed: the portable
// row copy is already as fast as memory allows.
KFAC_AVX512 void pack_b_avx512(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc,
                               int64_t j0, int64_t nc, int nr_panel, float* out) {
  constexpr int64_t NR = 32;
  if (!transB || nr_panel != NR) {
    pack_b_portable(transB, B, ldb, k0, kc, j0, nc, nr_panel, out);
    return;
  }
  for (int64_t j = 0; j < nc; j += NR) {
    float* dst = out + (j / NR) * kc * NR;
    for (int h = 0; h < 2; ++h) {
      const int64_t cols = nc - j - 16 * h;  // valid columns of op(B) in this half (may be <= 0)
      const float* src = B + (j0 + j + 16 * h) * ldb + k0;
      for (int64_t p = 0; p < kc; p += 16) {
        const __mmask16 mk = lane_mask(kc - p);
        __m512 r[16], t[16];
        for (int i = 0; i < 16; ++i)
          r[i] = i < cols ? _mm512_maskz_loadu_ps(mk, src + i * ldb + p) : _mm512_setzero_ps();
        transpose16(r, t);
        const int64_t rows = kc - p < 16 ? kc - p : 16;
        for (int64_t i = 0; i < rows; ++i) _mm512_store_ps(dst + (p + i) * NR + 16 * h, t[i]);
      }
    }
  }
}

}  // namespace kfac::cpu::gemm

#endif
