// GEMM with a single row or column of C (M == 1 or N == 1): a matrix-vector product, where
// packing would cost as much as the arithmetic. Row-major; see gemm.h for the contract.
// Optimised even when the build passes no -O flag.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm_skinny.h"

namespace kfac::cpu::gemm {

namespace {

// c[j·incc] = alpha · Σ_p x[p·incx] · Y[p·ysp + j·ysj] + beta · c[j·incc],  j < n, p < k.
// One of ysp, ysj is 1 (Y is a row-major matrix or its transpose). `work` holds max(n, k) floats.
void vec_mat(int64_t n, int64_t k, float alpha, const float* x, int64_t incx, const float* Y,
             int64_t ysp, int64_t ysj, float beta, float* c, int64_t incc, float* work) {
  if (ysj == 1) {
    // Rows of Y are contiguous: accumulate alpha-free sums row by row (axpy form).
    float* acc = work;
    for (int64_t j = 0; j < n; ++j) acc[j] = 0.f;
    for (int64_t p = 0; p < k; ++p) {
      const float xp = x[p * incx];
      const float* y = Y + p * ysp;
      for (int64_t j = 0; j < n; ++j) acc[j] += xp * y[j];
    }
    for (int64_t j = 0; j < n; ++j) {
      float* cj = c + j * incc;
      *cj = beta == 0.f ? alpha * acc[j] : alpha * acc[j] + beta * *cj;
    }
    return;
  }
  // Columns of Y are contiguous: one dot product per output, x made contiguous first.
  const float* xs = x;
  if (incx != 1) {
    for (int64_t p = 0; p < k; ++p) work[p] = x[p * incx];
    xs = work;
  }
  for (int64_t j = 0; j < n; ++j) {
    const float* y = Y + j * ysj;
    float part[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t p = 0;
    for (; p + 8 <= k; p += 8)
      for (int q = 0; q < 8; ++q) part[q] += xs[p + q] * y[p + q];
    float s = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
    for (; p < k; ++p) s += xs[p] * y[p];
    float* cj = c + j * incc;
    *cj = beta == 0.f ? alpha * s : alpha * s + beta * *cj;
  }
}

}  // namespace

bool skinny_applies(int64_t M, int64_t N) { return M == 1 || N == 1; }

int64_t skinny_work_floats(int64_t M, int64_t N, int64_t K) {
  int64_t n = M == 1 ? N : M;
  return n > K ? n : K;
}

void sgemm_skinny(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                  float* work) {
  if (M == 1) {
    // C[1×N] = alpha · op(A)[0, :] · op(B) + beta · C
    vec_mat(N, K, alpha, A, ta ? lda : 1, B, tb ? 1 : ldb, tb ? ldb : 1, beta, C, 1, work);
  } else {
    // C[M×1] = alpha · op(A) · op(B)[:, 0] + beta · C, i.e. Cᵀ = op(B)[:, 0]ᵀ · op(A)ᵀ
    vec_mat(M, K, alpha, B, tb ? 1 : ldb, A, ta ? lda : 1, ta ? 1 : lda, beta, C, ldc, work);
  }
}

}  // namespace kfac::cpu::gemm
