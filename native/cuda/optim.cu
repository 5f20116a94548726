#include "optim.cuh"

#include "../core/check.h"
#include "context.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

// One thread per element (grid-stride): the CPU's update, element by element (optim_update.h).
__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, float* max_sq,
                             int64_t n, optim_update::Adam s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    optim_update::adamw(i, param, grad, exp_avg, exp_avg_sq, max_sq, s);
}

__global__ void sgd_kernel(float* param, const float* grad, float* buf, int64_t n, optim_update::Sgd s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    optim_update::sgd(i, param, grad, buf, s);
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor* max_sq, const cpu::AdamWParams& p) {
  // Shapes, devices, aliasing and hyperparameter ranges checked in core (native/core/optim_ops.cpp).
  const int64_t n = param.numel();
  if (n == 0) return;
  Context& c = Context::get();
  adamw_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(param.f32(), grad.f32(), exp_avg.f32(), exp_avg_sq.f32(),
                                                           p.amsgrad ? max_sq->f32() : nullptr, n, cpu::adam_scalars(p));
  check(cudaGetLastError(), "adamw kernel");
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor* buf, const cpu::SgdParams& p) {
  // Shapes, devices, aliasing and hyperparameter ranges checked in core (native/core/optim_ops.cpp).
  const int64_t n = param.numel();
  if (n == 0) return;
  Context& c = Context::get();
  sgd_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(param.f32(), grad.f32(), p.momentum != 0.0 ? buf->f32() : nullptr,
                                                         n, cpu::sgd_scalars(p));
  check(cudaGetLastError(), "sgd kernel");
}

}  // namespace kfac::cuda
