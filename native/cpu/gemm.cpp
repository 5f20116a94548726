// Placeholder blocked GEMM: correct for every case, not yet fast.
#include "gemm.h"

#include <algorithm>
#include <vector>

#include "threadpool.h"

namespace kfac::cpu {

namespace {

inline float at(const float* X, int64_t ld, bool trans, int64_t i, int64_t j) {
  return trans ? X[j * ld + i] : X[i * ld + j];
}

void gemm_rows(bool ta, bool tb, int64_t m0, int64_t m1, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc) {
  std::vector<float> acc(static_cast<size_t>(N));
  for (int64_t i = m0; i < m1; ++i) {
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t p = 0; p < K; ++p) {
      float a = at(A, lda, ta, i, p);
      if (!tb) {
        const float* b = B + p * ldb;
        for (int64_t j = 0; j < N; ++j) acc[size_t(j)] += a * b[j];
      } else {
        for (int64_t j = 0; j < N; ++j) acc[size_t(j)] += a * B[j * ldb + p];
      }
    }
    float* c = C + i * ldc;
    if (beta == 0.f)
      for (int64_t j = 0; j < N; ++j) c[j] = alpha * acc[size_t(j)];
    else
      for (int64_t j = 0; j < N; ++j) c[j] = alpha * acc[size_t(j)] + beta * c[j];
  }
}

}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * std::max<int64_t>(K, 1)));
  parallel_for(M, grain, [&](int64_t b, int64_t e) {
    gemm_rows(transA, transB, b, e, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  });
}

void sgemm_strided_batched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N,
                           int64_t K, float alpha, const float* A, int64_t lda, int64_t strideA,
                           const float* B, int64_t ldb, int64_t strideB, float beta, float* C,
                           int64_t ldc, int64_t strideC) {
  for (int64_t i = 0; i < batch; ++i)
    sgemm(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
          C + i * strideC, ldc);
}

}  // namespace kfac::cpu
