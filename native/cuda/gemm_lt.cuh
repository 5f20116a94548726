// bf16 GEMMs through cuBLASLt: bf16 A and B, float32 accumulation (CUBLAS_COMPUTE_32F, tensor
// cores), float32 or bf16 C/D, a workspace, and the heuristic's algorithm cached per shape.
// `KFAC_CUBLASLT=0` in the environment turns it off: callers then take the cublasGemmEx path,
// which stays the reference the GPU parity checks compare against.
#pragma once
#include <cstdint>

namespace kfac::cuda {

// Whether the Lt path is on (read once from KFAC_CUBLASLT; anything but "0" is on), and a
// switch for tests and the parity scripts (the `cuda.cublasLt(on)` hook of the addon).
bool lt_enabled();
void set_lt_enabled(bool on);

// Since the process started: bf16 GEMMs cuBLASLt ran (`calls`), and those it declined (no
// algorithm for the shape and alignment, or NOT_SUPPORTED / INVALID_VALUE from the matmul:
// `fallbacks`, which the caller ran through cublasGemmEx or syrk instead). Parity checks only.
struct LtCounts {
  uint64_t calls = 0, fallbacks = 0;
};
LtCounts lt_counts();

// Row-major C[M, N] = alpha·op(A)·op(B) + beta·C; A and B bf16 (raw 16-bit), C float32 or, with
// c_bf16, bf16 (then the float32 result, beta·C included, is rounded once). Returns false when
// cuBLASLt offers no algorithm for the shape and the operands' alignment, or the matmul reports
// NOT_SUPPORTED / INVALID_VALUE (the caller falls back); other errors throw. K ≥ 1.
bool lt_gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                  const void* B, int64_t ldb, float beta, void* C, int64_t ldc, bool c_bf16);

}  // namespace kfac::cuda
