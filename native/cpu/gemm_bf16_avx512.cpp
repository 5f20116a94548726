// AVX512-BF16 kernel of gemm_bf16: C tile 14×32 (28 zmm accumulators). op(B) comes packed in
// VNNI panels of 32 columns (pack_vnni32: each k pair of a column side by side, zero padded);
// per k pair, two panel rows are loaded and each row of A contributes its (k, k+1) pair,
// broadcast, to vdpbf16ps (16 lanes × 2 products each). The last pair of an odd K is read
// as one element (never past a row of A); edge columns use masked stores.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
// GCC 12's intrinsic headers build some shuffles from _mm512_undefined_ps(), which its
// uninitialised-value analysis reports once inlined here; those lanes are never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "bf16.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && (!defined(__GNUC__) || defined(__clang__) || __GNUC__ >= 10)
#include <immintrin.h>

#define KFAC_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

namespace kfac::cpu::bf16k {

namespace {

inline KFAC_BF16 __mmask16 lanes(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u); }

inline uint32_t pair_at(const uint16_t* a, bool whole) {
  uint32_t v = a[0];
  if (whole) v |= uint32_t(a[1]) << 16;
  return v;
}

template <int R>
KFAC_BF16 void tile(int64_t nc, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* bp, float* C, int64_t ldc,
                    bool accumulate) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  const int64_t full = K / 2, Kp = (K + 1) / 2;
  for (int64_t kp = 0; kp < Kp; ++kp) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + kp * 64);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + kp * 64 + 32);
    const bool whole = kp < full;
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(pair_at(A + r * lda + 2 * kp, whole)));
      c0[r] = _mm512_dpbf16_ps(c0[r], a, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], a, b1);
    }
  }
  const __mmask16 m0 = lanes(nc), m1 = lanes(nc - 16);
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r) {
    float* c = C + r * ldc;
    if (accumulate) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, c));
      c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, c + 16));
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}

template <int R>
KFAC_BF16 void rows(int64_t i, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* Bp, float* C,
                    int64_t ldc, bool accumulate, int64_t p) {
  const int64_t Kp = (K + 1) / 2;
  tile<R>(N - p * 32, K, A + i * lda, lda, Bp + p * Kp * 64, C + i * ldc + p * 32, ldc, accumulate);
}

}  // namespace

bool avx512bf16_compiled() { return true; }

KFAC_BF16 void avx512bf16(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                          const uint16_t* Bp, float* C, int64_t ldc, bool accumulate) {
  constexpr int MR = 14;
  const int64_t panels = (N + 31) / 32;
  for (int64_t p = 0; p < panels; ++p) {
    int64_t i = m0;
    for (; i + MR <= m1; i += MR) rows<MR>(i, N, K, A, lda, Bp, C, ldc, accumulate, p);
    switch (m1 - i) {
      case 13: rows<13>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 12: rows<12>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 11: rows<11>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 10: rows<10>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 9: rows<9>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 8: rows<8>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 7: rows<7>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 6: rows<6>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 5: rows<5>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 4: rows<4>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 3: rows<3>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 2: rows<2>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      case 1: rows<1>(i, N, K, A, lda, Bp, C, ldc, accumulate, p); break;
      default: break;
    }
  }
}

}  // namespace kfac::cpu::bf16k

#else

namespace kfac::cpu::bf16k {
bool avx512bf16_compiled() { return false; }
void avx512bf16(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* Bp,
                float* C, int64_t ldc, bool accumulate) {
  // Never called: bf16_kernel_supported(Avx512Bf16) is false in this build.
  (void)m0, (void)m1, (void)N, (void)K, (void)A, (void)lda, (void)Bp, (void)C, (void)ldc, (void)accumulate;
}
}  // namespace kfac::cpu::bf16k

#endif
