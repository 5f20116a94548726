// Single-precision GEMM on the CPU, row-major:
//   C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C
// op(A) = A (stored M×K, leading dimension lda) or Aᵀ (A stored K×M) when transA;
// likewise for B (K×N, or N×K when transB).
// beta == 0 writes C without reading it, so NaN or Inf already in C never propagates.
// K == 0 (or alpha == 0) scales C by beta. Leading dimensions are in elements.
#pragma once
#include <cstdint>

namespace kfac::cpu {

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);

// `batch` independent GEMMs; matrix i starts at A + i·strideA (strides in elements,
// 0 broadcasts one matrix to every batch).
void sgemm_strided_batched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N,
                           int64_t K, float alpha, const float* A, int64_t lda, int64_t strideA,
                           const float* B, int64_t ldb, int64_t strideB, float beta, float* C,
                           int64_t ldc, int64_t strideC);

}  // namespace kfac::cpu
