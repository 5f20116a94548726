#include "optim.cuh"

#include <cmath>
#include <string>

#include "../core/check.h"
#include "context.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

struct AdamScalars {
  float decay, w1, b2, w2, step_size, bc2_sqrt, eps;
  bool ams, maximize, do_decay;
};

__global__ void adamw_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, float* max_sq,
                             int64_t n, AdamScalars s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float g = s.maximize ? -grad[i] : grad[i];
    float x = param[i];
    if (s.do_decay) x *= s.decay;
    float m = exp_avg[i];
    m = s.w1 < 0.5f ? m + s.w1 * (g - m) : g - (g - m) * (1.f - s.w1);
    float v = exp_avg_sq[i] * s.b2 + s.w2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    float vv = v;
    if (s.ams) {
      vv = fmaxf(max_sq[i], v);
      max_sq[i] = vv;
    }
    float denom = sqrtf(vv) / s.bc2_sqrt + s.eps;
    param[i] = x + (-s.step_size) * m / denom;
  }
}

struct SgdScalars {
  float wd, mom, damp, lr;
  bool use_mom, first, nesterov, maximize, do_wd;
};

__global__ void sgd_kernel(float* param, const float* grad, float* buf_, int64_t n, SgdScalars s) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float d = s.maximize ? -grad[i] : grad[i];
    if (s.do_wd) d = d + s.wd * param[i];
    if (s.use_mom) {
      float buf = s.first ? d : buf_[i] * s.mom + s.damp * d;
      buf_[i] = buf;
      d = s.nesterov ? d + s.mom * buf : buf;
    }
    param[i] = param[i] + (-s.lr) * d;
  }
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor* max_sq, const cpu::AdamWParams& p) {
  // Shapes, devices, aliasing and hyperparameter ranges checked in core (native/core/optim_ops.cpp).
  const int64_t n = param.numel();
  if (n == 0) return;
  AdamScalars s;
  s.decay = float(1.0 - p.lr * p.weight_decay);
  s.w1 = float(1.0 - p.beta1);
  s.b2 = float(p.beta2);
  s.w2 = float(1.0 - p.beta2);
  const double bc1 = 1.0 - std::pow(p.beta1, double(p.step)), bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  s.step_size = float(p.lr / bc1);
  s.bc2_sqrt = float(std::sqrt(bc2));
  s.eps = float(p.eps);
  s.ams = p.amsgrad;
  s.maximize = p.maximize;
  s.do_decay = p.weight_decay != 0.0;
  Context& c = Context::get();
  adamw_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(param.f32(), grad.f32(), exp_avg.f32(), exp_avg_sq.f32(),
                                                           p.amsgrad ? max_sq->f32() : nullptr, n, s);
  check(cudaGetLastError(), "adamw kernel");
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor* buf, const cpu::SgdParams& p) {
  // Shapes, devices, aliasing and hyperparameter ranges checked in core (native/core/optim_ops.cpp).
  const int64_t n = param.numel();
  if (n == 0) return;
  SgdScalars s;
  s.wd = float(p.weight_decay);
  s.mom = float(p.momentum);
  s.damp = float(1.0 - p.dampening);
  s.lr = float(p.lr);
  s.use_mom = p.momentum != 0.0;
  s.first = p.first_step;
  s.nesterov = p.nesterov;
  s.maximize = p.maximize;
  s.do_wd = p.weight_decay != 0.0;
  Context& c = Context::get();
  sgd_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(param.f32(), grad.f32(), s.use_mom ? buf->f32() : nullptr, n, s);
  check(cudaGetLastError(), "sgd kernel");
}

}  // namespace kfac::cuda
