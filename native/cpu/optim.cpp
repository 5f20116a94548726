#include "optim.h"

#include <cmath>

#include "threadpool.h"

namespace kfac::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;
}

// torch.optim.AdamW, single-tensor path:
//   param *= 1 - lr·wd
//   m = lerp(m, g, 1 − β1);  v = β2·v + (1 − β2)·g²
//   denom = sqrt(v or max(vmax, v)) / sqrt(1 − β2^t) + eps
//   param -= (lr / (1 − β1^t)) · m / denom
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                float* max_exp_avg_sq, int64_t n, const AdamWParams& p) {
  const float decay = float(1.0 - p.lr * p.weight_decay);
  const float w1 = float(1.0 - p.beta1);
  const float b2 = float(p.beta2);
  const float w2 = float(1.0 - p.beta2);
  const double bc1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  const float step_size = float(p.lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float eps = float(p.eps);
  const bool ams = p.amsgrad, maximize = p.maximize;
  const bool do_decay = p.weight_decay != 0.0;
  parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float g = maximize ? -grad[i] : grad[i];
      float x = param[i];
      if (do_decay) x *= decay;
      float m = exp_avg[i];
      // torch's lerp: start + w·(end − start) for w < 0.5, else end − (end − start)·(1 − w)
      m = w1 < 0.5f ? m + w1 * (g - m) : g - (g - m) * (1.f - w1);
      float v = exp_avg_sq[i] * b2 + w2 * g * g;  // addcmul: self + value·t1·t2
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      float vv = v;
      if (ams) {
        vv = std::fmax(max_exp_avg_sq[i], v);
        max_exp_avg_sq[i] = vv;
      }
      float denom = std::sqrt(vv) / bc2_sqrt + eps;
      param[i] = x + (-step_size) * m / denom;  // addcdiv: self + value·t1 / t2
    }
  });
}

// torch.optim.SGD, single-tensor path:
//   d = g (+ wd·param);  buf = d on the first step, else momentum·buf + (1 − dampening)·d
//   d = nesterov ? d + momentum·buf : buf;  param -= lr·d
void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n, const SgdParams& p) {
  const float wd = float(p.weight_decay);
  const float mom = float(p.momentum);
  const float damp = float(1.0 - p.dampening);
  const float lr = float(p.lr);
  const bool use_mom = p.momentum != 0.0, first = p.first_step, nesterov = p.nesterov;
  const bool maximize = p.maximize, do_wd = p.weight_decay != 0.0;
  parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float d = maximize ? -grad[i] : grad[i];
      if (do_wd) d = d + wd * param[i];
      if (use_mom) {
        float buf = first ? d : momentum_buf[i] * mom + damp * d;
        momentum_buf[i] = buf;
        d = nesterov ? d + mom * buf : buf;
      }
      param[i] = param[i] + (-lr) * d;
    }
  });
}

}  // namespace kfac::cpu
