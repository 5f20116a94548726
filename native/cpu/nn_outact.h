// The CPU entries of act_out_forward / act_out_backward (kind 0 tanh, 1 relu; the derivative read
// from the output y): float64 math rounded once to float32, as native/cuda/nn_outact_body.h.
#pragma once
#include "../core/tensor.h"

namespace kfac {
void act_out_forward(const Tensor& x, const Tensor& out, int kind);
void act_out_backward(const Tensor& y, const Tensor& dout, const Tensor& dx, int kind);
}  // namespace kfac
