// Matrix-vector special case of the single-precision GEMM (M == 1 or N == 1), row-major.
#pragma once
#include <cstdint>

namespace kfac::cpu::gemm {

// Whether sgemm takes the matrix-vector path for this shape.
bool skinny_applies(int64_t M, int64_t N);
// Floats of scratch sgemm_skinny needs.
int64_t skinny_work_floats(int64_t M, int64_t N, int64_t K);
// Same contract as sgemm (K >= 1, alpha != 0), for M == 1 or N == 1; single-threaded.
void sgemm_skinny(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                  float* work);

}  // namespace kfac::cpu::gemm
