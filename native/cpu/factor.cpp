// K-FAC factor update: the packed symmetric rank-R update of syrk.cpp on the lower triangle
// (the implicit bias column included), then a blocked mirror; and the X·Xᵀ variant Cholesky
// uses, built on sgemm blocks.
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

// C[n×n]: C[i][j] = C[j][i] for j > i, in 32×32 tiles (one tile row per task).
void mirror_lower(float* C, int64_t n, int64_t ldc) {
  constexpr int64_t T = 32;
  int64_t tiles = (n + T - 1) / T;
  parallel_for(tiles, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, n)), [&](int64_t b, int64_t e) {
    for (int64_t ti = b; ti < e; ++ti) {
      int64_t i0 = ti * T, i1 = std::min(n, i0 + T);
      // Destination rows i0..i1 of the upper triangle read columns i0..i1 of the lower one.
      for (int64_t j0 = i0; j0 < n; j0 += T) {
        int64_t j1 = std::min(n, j0 + T);
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = std::max(j0, i + 1); j < j1; ++j) C[i * ldc + j] = C[j * ldc + i];
      }
    }
  });
}

// X[R×d], F[D×D] with D = d + bias.
void factor_update(const float* X, int64_t R, int64_t d, int64_t ldx, bool bias, float beta,
                   float alpha, float* F, int64_t ldf) {
  int64_t D = d + (bias ? 1 : 0);
  if (D == 0) return;
  // The bias row and corner (column sums of X, then R) come out of the same packed product.
  syrk_lower_t(d, R, alpha, X, ldx, beta, F, ldf, bias);
  mirror_lower(F, D, ldf);
}

}  // namespace kfac::cpu
