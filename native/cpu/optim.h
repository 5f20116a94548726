// First-order optimizer updates, elementwise over one parameter tensor. They follow
// torch.optim's single-tensor algorithms operation by operation (same order, float32
// arithmetic, scalars prepared in float64), so results agree with PyTorch to rounding.
// Every buffer is updated in place; the gradient is only read.
#pragma once
#include <cstdint>

#include "../core/optim_update.h"

namespace kfac::cpu {

struct AdamWParams {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  int64_t step = 1;  // 1-based: the step being taken (bias corrections use it)
  bool amsgrad = false;
  bool maximize = false;
};

// param, grad, exp_avg, exp_avg_sq: n floats; max_exp_avg_sq: n floats when amsgrad, else unused.
void adamw_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                float* max_exp_avg_sq, int64_t n, const AdamWParams& p);

struct SgdParams {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  bool first_step = true;  // the momentum buffer is initialised from the first gradient
};

// param, grad: n floats; momentum_buf: n floats when momentum != 0, else unused.
void sgd_step(float* param, const float* grad, float* momentum_buf, int64_t n, const SgdParams& p);

// The per-step scalars of the elementwise updates (native/core/optim_update.h), prepared in
// float64 and rounded once; the CUDA kernels take the same.
optim_update::Adam adam_scalars(const AdamWParams& p);
optim_update::Sgd sgd_scalars(const SgdParams& p);

}  // namespace kfac::cpu
