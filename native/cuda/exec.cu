#include <string>

#include "exec.cuh"
#include "gemm_lt.cuh"

namespace kfac::cuda {

namespace {
int to_int(int64_t v, const char* what) {
  if (v < 0 || v > 2147483647LL)
    throw_arg(ErrorCode::Shape, what, "a dimension below 2^31 (cuBLAS int API)", std::to_string(v));
  return int(v);
}
}  // namespace

namespace {
// cublasGemmEx with bf16 A and B, float32 compute, C of type ctype (float32 or bf16).
void gemm_ex_bf16(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                  const uint16_t* B, int64_t ldb, float beta, void* C, cudaDataType_t ctype, int64_t ldc) {
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
  cublasOperation_t oa = tA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasGemmEx(Context::get().blas(), ob, oa, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B,
                     CUDA_R_16BF, to_int(ldb, "ldb"), A, CUDA_R_16BF, to_int(lda, "lda"), &beta, C, ctype,
                     to_int(ldc, "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (bf16)");
}
}  // namespace

void Exec::gemm_bf16(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                     const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta·C, as sgemm does
    cuda::sgemm(false, false, M, N, 0, alpha, nullptr, 1, nullptr, 1, beta, C, ldc);
    return;
  }
  if (lt_enabled() && lt_gemm_bf16(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, false)) return;
  gemm_ex_bf16(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, CUDA_R_32F, ldc);
}

void Exec::gemm_bf16_bf16c(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                           int64_t lda, const uint16_t* B, int64_t ldb, float beta, uint16_t* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  // K = 0 never reaches here (the linear adapter writes its empty products itself).
  if (lt_enabled() && lt_gemm_bf16(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, true)) return;
  gemm_ex_bf16(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, CUDA_R_16BF, ldc);
}

}  // namespace kfac::cuda
