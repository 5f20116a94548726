// The CPU entries of col_scale / col_scale_backward (native/core/nn.h): the arithmetic of
// native/cuda/nn_colscale_body.h, sequentially.
#pragma once
#include "../core/tensor.h"

namespace kfac {
void col_scale(const Tensor& x, const Tensor& l, float shift, const Tensor& out, bool accumulate);
void col_scale_backward(const Tensor& a, const Tensor& b, const Tensor& u, const Tensor* dl);
}  // namespace kfac
