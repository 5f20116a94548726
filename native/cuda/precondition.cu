#include "precondition.cuh"

#include <algorithm>
#include <cmath>
#include <string>

#include "../core/check.h"
#include "context.cuh"
#include "gemm.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

__global__ void to_f64_kernel(const float* x, double* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = double(x[i]);
}

__global__ void to_f32_kernel(const double* x, float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = float(x[i]);
}

__global__ void identity_f64_kernel(double* A, int64_t n) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n * n; k += int64_t(gridDim.x) * blockDim.x)
    A[k] = (k / n == k % n) ? 1.0 : 0.0;
}

__global__ void add_diag_f64_kernel(double* A, int64_t n, double delta) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    A[i * n + i] += delta;
}


// T[dout, Da] = [∇W | ∇b] · B[Da, Da]
void right_multiply(const float* gW, const float* gb, int64_t dout, int64_t din, const float* B, int64_t Da, float* T) {
  sgemm(false, false, dout, Da, din, 1.f, gW, din, B, Da, 0.f, T, Da);
  if (gb) sgemm(false, false, dout, Da, 1, 1.f, gb, 1, B + din * Da, Da, 1.f, T, Da);
}

}  // namespace

void precondition_inverse(const Tensor& gW, const Tensor* gb, const Tensor& Ainv, const Tensor& Ginv,
                          const Tensor& PW, const Tensor* Pb) {
  const int64_t dout = gW.dim(0), din = gW.dim(1), Da = din + (gb ? 1 : 0);  // checked in core
  if (dout == 0 || Da == 0) return;
  Context& c = Context::get();
  float* T1 = static_cast<float*>(c.scratch(0, size_t(dout * Da) * sizeof(float)));
  right_multiply(gW.f32(), gb ? gb->f32() : nullptr, dout, din, Ainv.f32(), Da, T1);
  sgemm(false, false, dout, din, dout, 1.f, Ginv.f32(), dout, T1, Da, 0.f, PW.f32(), din);
  if (gb) sgemm(false, false, dout, 1, dout, 1.f, Ginv.f32(), dout, T1 + din, Da, 0.f, Pb->f32(), 1);
}

namespace {

// out[n, n] = (A + δI)⁻¹ with A and out on the device (out may be A). 0: float32 ok,
// 1: float64 needed, -1: not positive definite in float64 either.
int inverse_device(const float* A, int64_t n, float delta, float* out) {
  Context& c = Context::get();
  const int N = int(n);
  const size_t nn = size_t(n) * size_t(n);
  int* info = static_cast<int*>(c.scratch(2, sizeof(int)));
  DeviceBuffer M(nn * sizeof(float));
  copy_device(M.as<float>(), A, nn * sizeof(float));
  add_diagonal(M.as<float>(), n, delta);
  int lwork = 0;
  check(cusolverDnSpotrf_bufferSize(c.solver(), CUBLAS_FILL_MODE_UPPER, N, M.as<float>(), N, &lwork),
        "cusolverDnSpotrf_bufferSize");
  DeviceBuffer work(size_t(std::max(lwork, 1)) * sizeof(float));
  // Column-major upper triangle = row-major lower triangle (the one the CPU reads).
  check(cusolverDnSpotrf(c.solver(), CUBLAS_FILL_MODE_UPPER, N, M.as<float>(), N, work.as<float>(), lwork, info),
        "cusolverDnSpotrf");
  int h = 0;
  copy_to_host(&h, info, sizeof h);
  if (h == 0) {
    DeviceBuffer X(nn * sizeof(float));
    set_identity(X.as<float>(), n);
    check(cusolverDnSpotrs(c.solver(), CUBLAS_FILL_MODE_UPPER, N, N, M.as<float>(), N, X.as<float>(), N, info),
          "cusolverDnSpotrs");
    copy_to_host(&h, info, sizeof h);
    if (h == 0 && all_finite(X.as<float>(), int64_t(nn))) {
      copy_device(out, X.as<float>(), nn * sizeof(float));
      return 0;
    }
  }
  DeviceBuffer Md(nn * sizeof(double)), Xd(nn * sizeof(double));
  to_f64_kernel<<<blocks_for(int64_t(nn)), kThreads, 0, c.stream()>>>(A, Md.as<double>(), int64_t(nn));
  add_diag_f64_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(Md.as<double>(), n, double(delta));
  identity_f64_kernel<<<blocks_for(int64_t(nn)), kThreads, 0, c.stream()>>>(Xd.as<double>(), n);
  check(cudaGetLastError(), "float64 setup kernels");
  check(cusolverDnDpotrf_bufferSize(c.solver(), CUBLAS_FILL_MODE_UPPER, N, Md.as<double>(), N, &lwork),
        "cusolverDnDpotrf_bufferSize");
  DeviceBuffer workd(size_t(std::max(lwork, 1)) * sizeof(double));
  check(cusolverDnDpotrf(c.solver(), CUBLAS_FILL_MODE_UPPER, N, Md.as<double>(), N, workd.as<double>(), lwork, info),
        "cusolverDnDpotrf");
  copy_to_host(&h, info, sizeof h);
  if (h != 0) return -1;
  check(cusolverDnDpotrs(c.solver(), CUBLAS_FILL_MODE_UPPER, N, N, Md.as<double>(), N, Xd.as<double>(), N, info),
        "cusolverDnDpotrs");
  copy_to_host(&h, info, sizeof h);
  if (h != 0) return -1;
  to_f32_kernel<<<blocks_for(int64_t(nn)), kThreads, 0, c.stream()>>>(Xd.as<double>(), out, int64_t(nn));
  check(cudaGetLastError(), "float32 conversion kernel");
  return all_finite(out, int64_t(nn)) ? 1 : -1;
}

int inverse_or_throw(const float* A, int64_t n, float delta, float* out, const char* name) {
  if (n > 46340) throw_arg(ErrorCode::Shape, name, "n below 46341 (cuSOLVER int API)", std::to_string(n));
  int s = inverse_device(A, n, delta, out);
  if (s < 0)
    throw_arg(ErrorCode::Numerical, name, "a positive definite matrix after damping",
              "a failed Cholesky factorisation in float32 and float64");
  return s;
}

}  // namespace

ops::PiDampingResult pi_damping(const Tensor& A, const Tensor& G, float lambda) {
  // π = sqrt((tr A / Da) / (tr G / dout)), 1 when either trace is not positive (cpu::pi_damping).
  const int64_t Da = A.dim(0), dout = G.dim(0);
  ops::PiDampingResult r;
  const double ta = Da ? trace(A.f32(), Da) / double(Da) : 0.0, tg = dout ? trace(G.f32(), dout) / double(dout) : 0.0;
  double pi = (ta > 0.0 && tg > 0.0) ? std::sqrt(ta / tg) : 1.0;
  if (!std::isfinite(pi) || pi <= 0.0) pi = 1.0;
  const double s = std::sqrt(double(lambda));
  r.pi = pi;
  r.damp_A = pi * s;
  r.damp_G = s / pi;
  return r;
}

bool damped_inverse(const Tensor& a, float delta, const Tensor& out) {
  const int64_t n = a.dim(0);  // shapes, aliasing and damping checked in core
  if (n == 0) return false;
  if (!all_finite(a.f32(), n * n)) throw_arg(ErrorCode::NotFinite, "a", "finite values", "NaN or Inf");
  bool f64 = inverse_or_throw(a.f32(), n, delta, out.f32(), "a") == 1;
  return f64;
}

ops::PiDampingResult precondition_inverse_factors(const Tensor& gW, const Tensor* gb, const Tensor& A,
                                                  const Tensor& G, float lambda, const Tensor& PW,
                                                  const Tensor* Pb) {
  const int64_t dout = gW.dim(0), din = gW.dim(1), Da = din + (gb ? 1 : 0);  // checked in core
  if (!all_finite(A.f32(), A.numel())) throw_arg(ErrorCode::NotFinite, "A", "finite values", "NaN or Inf");
  if (!all_finite(G.f32(), G.numel())) throw_arg(ErrorCode::NotFinite, "G", "finite values", "NaN or Inf");
  ops::PiDampingResult r = pi_damping(A, G, lambda);
  if (dout == 0 || Da == 0) return r;
  DeviceBuffer Ainv(size_t(Da * Da) * sizeof(float)), Ginv(size_t(dout * dout) * sizeof(float));
  r.used_f64 = inverse_or_throw(A.f32(), Da, float(r.damp_A), Ainv.as<float>(), "A") == 1;
  r.used_f64 = inverse_or_throw(G.f32(), dout, float(r.damp_G), Ginv.as<float>(), "G") == 1 || r.used_f64;
  Context& c = Context::get();
  float* T1 = static_cast<float*>(c.scratch(0, size_t(dout * Da) * sizeof(float)));
  right_multiply(gW.f32(), gb ? gb->f32() : nullptr, dout, din, Ainv.as<float>(), Da, T1);
  sgemm(false, false, dout, din, dout, 1.f, Ginv.as<float>(), dout, T1, Da, 0.f, PW.f32(), din);
  if (gb) sgemm(false, false, dout, 1, dout, 1.f, Ginv.as<float>(), dout, T1 + din, Da, 0.f, Pb->f32(), 1);
  return r;
}

}  // namespace kfac::cuda
