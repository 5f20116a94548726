#include "optim.h"

#include <cmath>

#include "threadpool.h"

namespace kfac::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;
}

optim_update::Adam adam_scalars(const AdamWParams& p) {
  optim_update::Adam s;
  s.decay = float(1.0 - p.lr * p.weight_decay);
  s.w1 = float(1.0 - p.beta1);
  s.b2 = float(p.beta2);
  s.w2 = float(1.0 - p.beta2);
  const double bc1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  s.step_size = float(p.lr / bc1);
  s.bc2_sqrt = float(std::sqrt(bc2));
  s.eps = float(p.eps);
  s.ams = p.amsgrad;
  s.maximize = p.maximize;
  s.do_decay = p.weight_decay != 0.0;
  return s;
}

optim_update::Sgd sgd_scalars(const SgdParams& p) {
  optim_update::Sgd s;
  s.wd = float(p.weight_decay);
  s.mom = float(p.momentum);
  s.damp = float(1.0 - p.dampening);
  s.lr = float(p.lr);
  s.use_mom = p.momentum != 0.0;
  s.first = p.first_step;
  s.nesterov = p.nesterov;
  s.maximize = p.maximize;
  s.do_wd = p.weight_decay != 0.0;
  return s;
}

// torch.optim.AdamW and SGD, single-tensor path: native/core/optim_update.h, element by element.
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                float* max_exp_avg_sq, int64_t n, const AdamWParams& p) {
  const optim_update::Adam s = adam_scalars(p);
  parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) optim_update::adamw(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
  });
}

void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n, const SgdParams& p) {
  const optim_update::Sgd s = sgd_scalars(p);
  parallel_for(n, kGrain, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) optim_update::sgd(i, param, grad, momentum_buf, s);
  });
}

}  // namespace kfac::cpu
