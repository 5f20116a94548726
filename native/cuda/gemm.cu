#include "gemm.cuh"

#include <string>

#include "context.cuh"
#include "gemm_lt.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > 2147483647LL)
    throw_arg(ErrorCode::Shape, what, "a dimension below 2^31 (cuBLAS int API)", std::to_string(v));
  return int(v);
}

}  // namespace

void sgemm(bool tA, bool tB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, GemmMath math) {
  if (M <= 0 || N <= 0) return;
  Context& c = Context::get();
  cublasOperation_t oa = tA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (K <= 0) {  // C = beta·C (in place: geam with C as A, and B weighted by 0)
    const float zero = 0.f;
    check(cublasSgeam(c.blas(), CUBLAS_OP_N, CUBLAS_OP_N, to_int(N, "N"), to_int(M, "M"), &beta, C, to_int(ldc, "ldc"),
                      &zero, C, to_int(ldc, "ldc"), C, to_int(ldc, "ldc")),
          "cublasSgeam");
    return;
  }
  if (math == GemmMath::F32) {
    check(cublasSgemm(c.blas(), ob, oa, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B, to_int(ldb, "ldb"), A,
                      to_int(lda, "lda"), &beta, C, to_int(ldc, "ldc")),
          "cublasSgemm");
  } else {
    check(cublasGemmEx(c.blas(), ob, oa, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, B, CUDA_R_32F,
                       to_int(ldb, "ldb"), A, CUDA_R_32F, to_int(lda, "lda"), &beta, C, CUDA_R_32F, to_int(ldc, "ldc"),
                       CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx (tf32)");
  }
}

void matmul(const Tensor& a, const Tensor& b, const Tensor& C, const ops::MatmulOptions& opt) {
  // Shapes, dtypes, devices and aliasing checked in core (native/core/ops.cpp). a, b: [M, K]
  // or [B, M, K] (a 2-D operand is shared by every batch); C [M, N] or [B, M, N].
  const Shape& cs = C.shape();
  const int64_t batch = cs.size() == 3 ? cs[0] : 1, M = cs[cs.size() - 2], N = cs[cs.size() - 1];
  const int64_t ar = a.dim(-2), ac = a.dim(-1), br = b.dim(-2), bc = b.dim(-1);
  const int64_t K = opt.transA ? ar : ac;
  const int64_t sa = a.rank() == 3 ? ar * ac : 0, sb = b.rank() == 3 ? br * bc : 0;
  if (M == 0 || N == 0 || batch == 0) return;
  const bool bf16 = a.dtype() == DType::BF16;
  Context& c = Context::get();
  for (int64_t i = 0; i < batch; ++i) {
    float* Ci = C.f32() + i * M * N;
    if (!bf16 || K == 0) {
      sgemm(opt.transA, opt.transB, M, N, K, opt.alpha, static_cast<const float*>(a.raw()) + i * sa, ac,
            static_cast<const float*>(b.raw()) + i * sb, bc, opt.beta, Ci, N, opt.tf32 ? GemmMath::TF32 : GemmMath::F32);
      continue;
    }
    cublasOperation_t oa = opt.transA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = opt.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
    float alpha = opt.alpha, beta = opt.beta;
    const uint16_t* ap = static_cast<const uint16_t*>(a.raw()) + i * sa;
    const uint16_t* bp = static_cast<const uint16_t*>(b.raw()) + i * sb;
    if (lt_enabled() && lt_gemm_bf16(opt.transA, opt.transB, M, N, K, alpha, ap, ac, bp, bc, beta, Ci, N, false)) continue;
    check(cublasGemmEx(c.blas(), ob, oa, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, bp, CUDA_R_16BF,
                       to_int(bc, "ldb"), ap, CUDA_R_16BF, to_int(ac, "lda"), &beta, Ci, CUDA_R_32F, to_int(N, "ldc"),
                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx (bf16)");
  }
}

}  // namespace kfac::cuda
