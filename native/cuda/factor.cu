#include "factor.cuh"

#include <cmath>
#include <string>

#include "../core/check.h"
#include "context.cuh"
#include "gemm_lt.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

// Row d of F (row-major [D, D], D = d + 1): F[d][j] = beta·F[d][j] + alpha·Σ_r X[r][j]
// (float64 sums, one thread per column, rows in order, so adjacent threads read adjacent
// columns), and the corner F[d][d] = beta·F[d][d] + alpha·R.
// grid ceil((d + 1) / 256), block 256
__global__ void bias_row_kernel(const float* __restrict__ X, int64_t R, int64_t d, float beta, double alpha,
                                float* F, int64_t ldf) {
  int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j > d) return;
  double acc = 0;
  if (j < d)
    for (int64_t r = 0; r < R; ++r) acc += double(X[r * d + j]);
  else
    acc = double(R);
  float s = float(alpha * acc);
  float* p = F + d * ldf + j;
  *p = beta == 0.f ? s : beta * *p + s;
}

}  // namespace

void factor_update(const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt) {
  // Shapes, devices, aliasing, beta and scale checked in core (native/core/kfac_ops.cpp).
  const int64_t d = x.dim(-1);
  const int64_t R = x.rank() == 1 ? 1 : x.numel() / d;
  const int64_t D = d + (opt.bias ? 1 : 0);
  if (d > 2147483647LL || R > 2147483647LL)
    throw_arg(ErrorCode::Shape, "x", "fewer than 2^31 rows and columns", "shape " + shape_str(x.shape()));
  // A bf16 x (bf16 activations): widened exactly into a float32 copy for the finiteness check
  // and the bias row; the d×d block is a bf16 GEMM with float32 accumulation through cuBLASLt
  // (xᵀx, both triangles; mirrored below like syrk's) unless KFAC_CUBLASLT=0, then syrk on the copy.
  // The copy lives in the context's scratch slot 0 (grown to the largest x seen, then reused: no
  // allocation per layer per step; nothing else this op calls uses slot 0). The float32 path
  // touches no scratch.
  const bool bf16 = x.dtype() == DType::BF16;
  Context& c = Context::get();
  float* widened =
      bf16 ? static_cast<float*>(c.scratch(0, size_t(x.numel() > 0 ? x.numel() : 1) * sizeof(float))) : nullptr;
  const float* xf = bf16 ? widened : x.f32();
  if (bf16 && x.numel() > 0) bf16_to_f32(x.raw(), widened, x.numel());
  if (opt.check_finite && !all_finite(xf, x.numel()))  // the one host wait of this op
    throw_arg(ErrorCode::NotFinite, "x", "finite values", "NaN or Inf");
  if (D == 0) return;
  const double alpha = (1.0 - double(opt.beta)) * opt.scale / double(R);
  const float a32 = float(alpha), beta = opt.beta;
  // Row-major X [R, d] is column-major Xc [d, R]; X̃ᵀX̃'s top-left block is Xc·Xcᵀ.
  // Row-major lower triangle = column-major upper triangle. With beta = 0 neither syrk
  // nor the bias kernel reads F, so stale NaNs in it cannot leak through.
  if (d > 0) {
    const bool lt = bf16 && lt_enabled() &&
                    lt_gemm_bf16(true, false, d, d, R, a32, x.raw(), d, x.raw(), d, beta, F.f32(), D, false);
    if (!lt)
      check(cublasSsyrk(c.blas(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, int(d), int(R), &a32, xf, int(d), &beta,
                        F.f32(), int(D)),
            "cublasSsyrk");
  }
  if (opt.bias) {
    bias_row_kernel<<<blocks_for(D), kThreads, 0, c.stream()>>>(xf, R, d, beta, alpha, F.f32(), D);
    check(cudaGetLastError(), "bias row kernel");
  }
  mirror_lower(F.f32(), D, D);
}

}  // namespace kfac::cuda
