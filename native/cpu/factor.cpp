// K-FAC factor update: a symmetric rank-R update built on sgemm blocks (so it runs at
// the speed of the GEMM), the bias row from column sums, then a blocked mirror.
// Optimised even when the build passes no -O flag (binding.gyp's cflags! strips them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "factor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <vector>

#include "gemm.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

// Diagonal blocks at most this wide are computed as one full GEMM (the few redundant
// flops above the diagonal cost less than smaller, less efficient GEMM calls).
constexpr int64_t kSyrkBase = 128;

// Rows per slab of syrk_lower_t: about a sixth of n in multiples of 42 (whole register
// tiles for both 14- and 6-row micro-kernels), or all of n when it is small. Fewer, larger
// GEMMs repack X less often; the price is the slab's triangle above the diagonal (about
// mb/(2n) of the work). Overridable for tuning with KFAC_SYRK_SLAB.
int64_t slab_rows(int64_t n) {
  static const int64_t forced = [] {
    const char* s = std::getenv("KFAC_SYRK_SLAB");
    return s ? std::atoll(s) : 0LL;
  }();
  if (forced > 0) return forced;
  if (n <= 96) return n;
  return std::max<int64_t>(42, (n / 6 + 21) / 42 * 42);
}

}  // namespace

// Splits n at a multiple of 32 near its middle.
static int64_t split_point(int64_t n) {
  int64_t h = (n / 2 + 31) / 32 * 32;
  return std::min(std::max<int64_t>(h, 32), n - 1);
}

// C[n×n] (lower) ← beta·C + alpha·XᵀX, X[K×n], in row slabs: slab [i0, i1) is one GEMM
// C[i0:i1, 0:c1] = X[:, i0:i1]ᵀ X[:, 0:c1] with c1 = i1 rounded up to 32 columns (the
// few columns past the diagonal land in the scratch upper triangle). The pool's members
// take slabs largest first from a shared counter, each running its GEMMs on one thread:
// no barrier between slabs, and a member slowed by another process only takes fewer.
void syrk_lower_t(int64_t n, int64_t K, float alpha, const float* X, int64_t ldx, float beta,
                  float* C, int64_t ldc) {
  if (n <= 0) return;
  const int64_t mb = slab_rows(n);
  const int64_t slabs = (n + mb - 1) / mb;
  if (slabs == 1 || num_threads() == 1 || 2.0 * double(n) * double(n) * double(K) < 4e6) {
    for (int64_t s = 0; s < slabs; ++s) {
      int64_t i0 = s * mb, i1 = std::min(n, i0 + mb), c1 = std::min(n, (i1 + 31) / 32 * 32);
      sgemm(true, false, i1 - i0, c1, K, alpha, X + i0, ldx, X, ldx, beta, C + i0 * ldc, ldc);
    }
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic<int> failed{0};
  std::exception_ptr err;
  run_team(num_threads(), [&](int, int, Barrier&) {
    try {
      for (int64_t t; (t = next.fetch_add(1)) < slabs && !failed.load();) {
        int64_t s = slabs - 1 - t;  // largest (lowest) slab first
        int64_t i0 = s * mb, i1 = std::min(n, i0 + mb), c1 = std::min(n, (i1 + 31) / 32 * 32);
        sgemm(true, false, i1 - i0, c1, K, alpha, X + i0, ldx, X, ldx, beta, C + i0 * ldc, ldc);
      }
    } catch (...) {
      if (failed.exchange(1) == 0) err = std::current_exception();
    }
  });
  if (err) std::rethrow_exception(err);
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
  syrk_lower_t(d, R, alpha, X, ldx, beta, F, ldf);
  if (bias) {
    // Row d of X̃ᵀX̃: the column sums of X (float64, each column summed by one thread in
    // row order, so the result does not depend on the thread count), then R.
    float* row = F + d * ldf;
    parallel_for(d, 64, [&](int64_t j0, int64_t j1) {
      std::vector<double> acc(size_t(j1 - j0), 0.0);
      for (int64_t r = 0; r < R; ++r) {
        const float* x = X + r * ldx + j0;
        for (int64_t j = 0; j < j1 - j0; ++j) acc[size_t(j)] += double(x[j]);
      }
      for (int64_t j = j0; j < j1; ++j) {
        float s = float(double(alpha) * acc[size_t(j - j0)]);
        row[j] = beta == 0.f ? s : beta * row[j] + s;
      }
    });
    float corner = float(double(alpha) * double(R));
    row[d] = beta == 0.f ? corner : beta * row[d] + corner;
  }
  mirror_lower(F, D, ldf);
}

}  // namespace kfac::cpu
