// The optimizer updates of the op list: AdamW and SGD over one parameter tensor, every
// buffer updated in place on the parameter's device (see cpu/optim.h for the arithmetic).
#pragma once
#include "../cpu/optim.h"
#include "tensor.h"

namespace kfac::ops {

// param, grad, exp_avg, exp_avg_sq (and max_exp_avg_sq, required with amsgrad): one shape,
// one device. Hyperparameters are range-checked here (lr, eps, weight decay ≥ 0; betas in
// [0, 1); step ≥ 1).
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor* max_exp_avg_sq, const cpu::AdamWParams& p);

// momentum_buf: required when momentum ≠ 0.
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor* momentum_buf, const cpu::SgdParams& p);

}  // namespace kfac::ops
