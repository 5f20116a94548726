// AdamW and SGD updates on the GPU, elementwise over one parameter tensor: the CPU's update code
// (native/core/optim_update.h, float32 arithmetic, scalars prepared in float64 by
// cpu::adam_scalars / cpu::sgd_scalars), compiled without FMA contraction, so that results match
// the CPU's.
#pragma once
#include "../core/tensor.h"
#include "../cpu/optim.h"

namespace kfac::cuda {

// param, grad, expAvg, expAvgSq (and maxExpAvgSq with amsgrad): same shape, on the device.
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const Tensor* max_exp_avg_sq, const cpu::AdamWParams& p);

// momentumBuffer: given exactly when momentum ≠ 0.
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor* momentum_buf, const cpu::SgdParams& p);

}  // namespace kfac::cuda
