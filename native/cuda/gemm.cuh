// GEMM through cuBLAS, row-major: float32, opt-in TF32 tensor cores, and bf16 storage
// with float32 accumulation (cublasGemmEx). cuBLAS is column-major, so a row-major
// C = op(A)·op(B) is computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
#pragma once
#include <cstdint>

#include "../core/ops.h"
#include "../core/tensor.h"

namespace kfac::cuda {

enum class GemmMath { F32, TF32 };

// C[M, N] = alpha·op(A)·op(B) + beta·C; op(A) [M, K], op(B) [K, N]; row-major with
// leading dimensions lda, ldb, ldc. C is overwritten (read when beta ≠ 0).
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           GemmMath math = GemmMath::F32);

// The matmul kernel of the op table: C = alpha·op(a)·op(b) + beta·C, a and b float32 (TF32
// when opt.tf32) or both bfloat16 (float32 accumulation), 2-D or batched; checked in core.
void matmul(const Tensor& a, const Tensor& b, const Tensor& C, const ops::MatmulOptions& opt);

}  // namespace kfac::cuda
