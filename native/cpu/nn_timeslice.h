// The CPU entry of time_slice (native/core/nn.h): dst[b, t] = src[b, offset + t], row copies.
#pragma once
#include "../core/tensor.h"

namespace kfac {
void time_slice(const Tensor& src, const Tensor& dst, int64_t offset);
}  // namespace kfac
