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

void check_state(const Tensor& param, const Tensor& t, const char* name) {
  check_device_tensor(t, name);
  check_same_shape(param, "param", t, name);
  check_no_alias(param, "param", t, name);
}

void check_hyper(double v, const char* name, double lo, double hi, bool hi_open) {
  if (!std::isfinite(v) || v < lo || v > hi || (hi_open && v == hi))
    throw_arg(ErrorCode::InvalidArgument, name, "a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + (hi_open ? ")" : "]"),
              std::to_string(v));
}

}  // namespace

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor* max_sq, const cpu::AdamWParams& p) {
  check_device_tensor(param, "param");
  check_state(param, grad, "grad");
  check_state(param, exp_avg, "expAvg");
  check_state(param, exp_avg_sq, "expAvgSq");
  check_no_alias(grad, "grad", exp_avg, "expAvg");
  check_no_alias(grad, "grad", exp_avg_sq, "expAvgSq");
  check_no_alias(exp_avg, "expAvg", exp_avg_sq, "expAvgSq");
  if (p.amsgrad) {
    if (!max_sq) throw_arg(ErrorCode::InvalidArgument, "maxExpAvgSq", "a tensor when amsgrad is on", "none");
    check_state(param, *max_sq, "maxExpAvgSq");
  }
  check_hyper(p.lr, "lr", 0, 1e30, false);
  check_hyper(p.beta1, "beta1", 0, 1, true);
  check_hyper(p.beta2, "beta2", 0, 1, true);
  check_hyper(p.eps, "eps", 0, 1e30, false);
  check_hyper(p.weight_decay, "weightDecay", 0, 1e30, false);
  if (p.step < 1) throw_arg(ErrorCode::InvalidArgument, "step", "an integer >= 1", std::to_string(p.step));
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
  c.synchronize();
}

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor* buf, const cpu::SgdParams& p) {
  check_device_tensor(param, "param");
  check_state(param, grad, "grad");
  check_hyper(p.lr, "lr", 0, 1e30, false);
  check_hyper(p.momentum, "momentum", 0, 1e30, false);
  check_hyper(p.dampening, "dampening", 0, 1, false);
  check_hyper(p.weight_decay, "weightDecay", 0, 1e30, false);
  if (p.momentum != 0.0) {
    if (!buf) throw_arg(ErrorCode::InvalidArgument, "momentumBuffer", "a tensor when momentum is not 0", "none");
    check_state(param, *buf, "momentumBuffer");
    check_no_alias(grad, "grad", *buf, "momentumBuffer");
  }
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
  c.synchronize();
}

}  // namespace kfac::cuda
