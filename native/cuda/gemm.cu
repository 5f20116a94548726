#include "gemm.cuh"

#include <string>

#include "../core/check.h"
#include "context.cuh"
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

Tensor matmul(const Tensor& a, const Tensor& b, const Tensor* out, const ops::MatmulOptions& opt, bool tf32) {
  check_defined(a, "a");
  check_defined(b, "b");
  const DType dt = a.dtype();
  if (dt != DType::F32 && dt != DType::BF16) throw_arg(ErrorCode::DType, "a", "float32 or bfloat16", dtype_name(dt));
  check_device_tensor(a, "a", dt);
  check_device_tensor(b, "b", dt);
  check_rank(a, "a", 2, 2);
  check_rank(b, "b", 2, 2);
  check_finite_scalar(opt.alpha, "alpha");
  check_finite_scalar(opt.beta, "beta");
  const int64_t M = opt.transA ? a.dim(1) : a.dim(0), K = opt.transA ? a.dim(0) : a.dim(1);
  const int64_t Kb = opt.transB ? b.dim(1) : b.dim(0), N = opt.transB ? b.dim(0) : b.dim(1);
  if (K != Kb)
    throw_arg(ErrorCode::Shape, "b", "an inner dimension of " + std::to_string(K), "shape " + shape_str(b.shape()));
  Tensor C;
  if (out) {
    check_device_tensor(*out, "out");
    check_shape(*out, "out", {M, N});
    check_no_alias(a, "a", *out, "out");
    check_no_alias(b, "b", *out, "out");
    C = *out;
  } else {
    if (opt.beta != 0.f) throw_arg(ErrorCode::InvalidArgument, "beta", "0 when no out tensor is given", std::to_string(opt.beta));
    C = Tensor::empty({M, N}, DType::F32, Device::CUDA);
  }
  if (M == 0 || N == 0) return C;
  if (dt == DType::F32) {
    sgemm(opt.transA, opt.transB, M, N, K, opt.alpha, static_cast<const float*>(a.raw()), a.dim(1),
          static_cast<const float*>(b.raw()), b.dim(1), opt.beta, C.f32(), N, tf32 ? GemmMath::TF32 : GemmMath::F32);
    return C;
  }
  if (K == 0) {
    sgemm(false, false, M, N, 0, opt.alpha, nullptr, 1, nullptr, 1, opt.beta, C.f32(), N);
    return C;
  }
  Context& c = Context::get();
  cublasOperation_t oa = opt.transA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = opt.transB ? CUBLAS_OP_T : CUBLAS_OP_N;
  float alpha = opt.alpha, beta = opt.beta;
  check(cublasGemmEx(c.blas(), ob, oa, to_int(N, "N"), to_int(M, "M"), to_int(K, "K"), &alpha, b.raw(), CUDA_R_16BF,
                     to_int(b.dim(1), "ldb"), a.raw(), CUDA_R_16BF, to_int(a.dim(1), "lda"), &beta, C.raw(), CUDA_R_32F,
                     to_int(N, "ldc"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (bf16)");
  return C;
}

}  // namespace kfac::cuda
