#include <string>

#include "exec.cuh"

namespace kfac::cuda {

namespace {
int to_int(int64_t v, const char* what) {
  if (v < 0 || v > 2147483647LL)
    throw_arg(ErrorCode::Shape, what, "a dimension below 2^31 (cuBLAS int API)", std::to_string(v));
  return int(v);
}
}  // namespace

void Exec::gemm_bf16(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
                     const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = beta·C, as sgemm does
    cuda::sgemm(false, false, M, N, 0, alpha, nullptr, 1, nullptr, 1, beta, C, ldc);
    return;
  }
  // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ.
  cublasOperation_t oa = tA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  check(cublasGemmEx(Context::get().blas(), ob, oa, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B,
                     CUDA_R_16BF, to_int(ldb, "ldb"), A, CUDA_R_16BF, to_int(lda, "lda"), &beta, C, CUDA_R_32F,
                     to_int(ldc, "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (bf16)");
}

}  // namespace kfac::cuda
