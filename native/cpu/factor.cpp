// K-FAC factor update: the packed symmetric rank-R update of syrk.cpp (the implicit bias column
// and the mirror onto the upper triangle included); the X·Xᵀ variant and the blocked mirror
// Cholesky uses, built on sgemm blocks.
// Optimised even when the build passes no -O flag (binding.gyp's cflags! strips them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "factor.h"

#include <algorithm>

#include "gemm.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

// Diagonal blocks at most this wide are computed as one full GEMM (the few redundant
// flops above the diagonal cost less than smaller, less efficient GEMM calls).
constexpr int64_t kSyrkBase = 128;

}  // namespace

// Splits n at a multiple of 32 near its middle.
static int64_t split_point(int64_t n) {
  int64_t h = (n / 2 + 31) / 32 * 32;
  return std::min(std::max<int64_t>(h, 32), n - 1);
}

// C[n×n] (lower) ← beta·C + alpha·X·Xᵀ, X[n×K].
void syrk_lower_n(int64_t n, int64_t K, float alpha, const float* X, int64_t ldx, float beta,
                  float* C, int64_t ldc) {
  if (n <= 0) return;
  if (n <= kSyrkBase) {
    sgemm(false, true, n, n, K, alpha, X, ldx, X, ldx, beta, C, ldc);
    return;
  }
  int64_t n1 = split_point(n), n2 = n - n1;
  syrk_lower_n(n1, K, alpha, X, ldx, beta, C, ldc);
  sgemm(false, true, n2, n1, K, alpha, X + n1 * ldx, ldx, X, ldx, beta, C + n1 * ldc, ldc);
  syrk_lower_n(n2, K, alpha, X + n1 * ldx, ldx, beta, C + n1 * ldc + n1, ldc);
}

// C[n×n]: C[i][j] = C[j][i] for j > i, in 16×16 blocks that go through a local buffer: each
// cache line of the block's source rows is read once and each line of its destination rows is
// written once, so rows a power-of-two stride apart (which share cache sets) never have to stay
// resident together. Block rows are paired (t, last − t) so every task has the same work.
void mirror_lower(float* C, int64_t n, int64_t ldc) {
  constexpr int64_t B = 16;
  const int64_t nb = (n + B - 1) / B;
  auto block_row = [&](int64_t bi) {
    const int64_t i0 = bi * B, ni = std::min(B, n - i0);
    alignas(64) float t[B][B];
    for (int64_t j0 = i0; j0 < n; j0 += B) {
      const int64_t nj = std::min(B, n - j0);
      for (int64_t jj = 0; jj < nj; ++jj) {
        const float* src = C + (j0 + jj) * ldc + i0;
        for (int64_t ii = 0; ii < ni; ++ii) t[ii][jj] = src[ii];
      }
      for (int64_t ii = 0; ii < ni; ++ii) {
        float* dst = C + (i0 + ii) * ldc + j0;
        // On the diagonal block only j > i; elsewhere the whole row of the block.
        for (int64_t jj = j0 == i0 ? ii + 1 : 0; jj < nj; ++jj) dst[jj] = t[ii][jj];
      }
    }
  };
  const int64_t pairs = (nb + 1) / 2;
  parallel_for(pairs, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      block_row(t);
      if (nb - 1 - t != t) block_row(nb - 1 - t);
    }
  });
}

// X[R×d], F[D×D] with D = d + bias.
void factor_update(const float* X, int64_t R, int64_t d, int64_t ldx, bool bias, float beta,
                   float alpha, float* F, int64_t ldf) {
  int64_t D = d + (bias ? 1 : 0);
  if (D == 0) return;
  // The bias row and corner (column sums of X, then R) come out of the same packed product;
  // each block of the lower triangle is mirrored by the thread that computed it, while hot.
  syrk_lower_t(d, R, alpha, X, ldx, beta, F, ldf, bias, true);
}

}  // namespace kfac::cpu
