// AVX512-BF16 kernel of gemm_bf16_nt: each C element is a dot product along k of a row of A and
// a row of B, both contiguous; vdpbf16ps multiplies 32 bf16 pairs and adds them into 16 float
// lanes. A tile is 4 rows of A × 4 rows of B (16 accumulators); B is walked in panels of 64
// rows so a panel stays in L2 across the rows of A. Tails of k use masked loads (nothing past
// a row is read); tails of M and N use smaller tiles.
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

inline KFAC_BF16 __mmask32 kmask(int64_t n) { return n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << n) - 1u); }

inline KFAC_BF16 __m512bh load(const uint16_t* p, __mmask32 m) { return (__m512bh)_mm512_maskz_loadu_epi16(m, p); }

inline KFAC_BF16 float hsum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0x4E));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));
  return _mm512_cvtss_f32(v);
}

template <int R, int S>
KFAC_BF16 void tile(int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float* C, int64_t ldc,
                    bool accumulate) {
  __m512 acc[R][S];
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    const __mmask32 m = kmask(K - k);
    __m512bh a[R], b[S];
    for (int r = 0; r < R; ++r) a[r] = load(A + r * lda + k, m);
    for (int s = 0; s < S; ++s) b[s] = load(B + s * ldb + k, m);
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s) acc[r][s] = _mm512_dpbf16_ps(acc[r][s], a[r], b[s]);
  }
  for (int r = 0; r < R; ++r)
    for (int s = 0; s < S; ++s) {
      float v = hsum(acc[r][s]);
      C[r * ldc + s] = accumulate ? C[r * ldc + s] + v : v;
    }
}

template <int R>
KFAC_BF16 void row_block(int64_t n0, int64_t n1, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                         int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  int64_t j = n0;
  for (; j + 4 <= n1; j += 4) tile<R, 4>(K, A, lda, B + j * ldb, ldb, C + j, ldc, accumulate);
  for (; j < n1; ++j) tile<R, 1>(K, A, lda, B + j * ldb, ldb, C + j, ldc, accumulate);
}

}  // namespace

bool avx512bf16_compiled() { return true; }

KFAC_BF16 void avx512bf16(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda,
                          const uint16_t* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  constexpr int64_t NB = 64;
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    const int64_t n1 = n0 + NB < N ? n0 + NB : N;
    int64_t i = m0;
    for (; i + 4 <= m1; i += 4) row_block<4>(n0, n1, K, A + i * lda, lda, B, ldb, C + i * ldc, ldc, accumulate);
    for (; i < m1; ++i) row_block<1>(n0, n1, K, A + i * lda, lda, B, ldb, C + i * ldc, ldc, accumulate);
  }
}

}  // namespace kfac::cpu::bf16k

#else

namespace kfac::cpu::bf16k {
bool avx512bf16_compiled() { return false; }
void avx512bf16(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  portable(m0, m1, N, K, A, lda, B, ldb, C, ldc, accumulate);
}
}  // namespace kfac::cpu::bf16k

#endif
