// The elementwise AdamW and SGD updates, one element at a time, as torch.optim's single-tensor
// algorithms take them (same operation order, float32 arithmetic, scalars prepared in float64 by
// the caller). Plain C++ that nvcc also compiles as device code: the CPU loop
// (native/cpu/optim.cpp) and the CUDA kernel (native/cuda/optim.cu, compiled without FMA
// contraction) run this code, so the device's arithmetic is the CPU's.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define KFAC_OPT_HD __host__ __device__ inline
#else
#define KFAC_OPT_HD inline
#endif

namespace kfac::optim_update {

// AdamW's scalars for one step (cpu::adam_scalars prepares them from the parameters).
struct Adam {
  float decay, w1, b2, w2, step_size, bc2_sqrt, eps;
  bool ams, maximize, do_decay;
};

//   param *= 1 − lr·wd;  m = lerp(m, g, 1 − β1);  v = β2·v + (1 − β2)·g²
//   denom = sqrt(v or max(vmax, v)) / sqrt(1 − β2^t) + eps;  param −= (lr / (1 − β1^t))·m / denom
KFAC_OPT_HD void adamw(int64_t i, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                       float* max_exp_avg_sq, const Adam& s) {
  float g = s.maximize ? -grad[i] : grad[i];
  float x = param[i];
  if (s.do_decay) x *= s.decay;
  float m = exp_avg[i];
  // torch's lerp: start + w·(end − start) for w < 0.5, else end − (end − start)·(1 − w)
  m = s.w1 < 0.5f ? m + s.w1 * (g - m) : g - (g - m) * (1.f - s.w1);
  float v = exp_avg_sq[i] * s.b2 + s.w2 * g * g;  // addcmul: self + value·t1·t2
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  float vv = v;
  if (s.ams) {
    vv = fmaxf(max_exp_avg_sq[i], v);
    max_exp_avg_sq[i] = vv;
  }
  float denom = sqrtf(vv) / s.bc2_sqrt + s.eps;
  param[i] = x + (-s.step_size) * m / denom;  // addcdiv: self + value·t1 / t2
}

// SGD's scalars for one step (cpu::sgd_scalars).
struct Sgd {
  float wd, mom, damp, lr;
  bool use_mom, first, nesterov, maximize, do_wd;
};

//   d = g (+ wd·param);  buf = d on the first step, else momentum·buf + (1 − dampening)·d
//   d = nesterov ? d + momentum·buf : buf;  param −= lr·d
KFAC_OPT_HD void sgd(int64_t i, float* param, const float* grad, float* momentum_buf, const Sgd& s) {
  float d = s.maximize ? -grad[i] : grad[i];
  if (s.do_wd) d = d + s.wd * param[i];
  if (s.use_mom) {
    float buf = s.first ? d : momentum_buf[i] * s.mom + s.damp * d;
    momentum_buf[i] = buf;
    d = s.nesterov ? d + s.mom * buf : buf;
  }
  param[i] = param[i] + (-s.lr) * d;
}

}  // namespace kfac::optim_update
