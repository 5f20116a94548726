// Argument checks shared by the checked entry points of the nn op family (native/core/nn.h):
// the device of an op, float32 and bfloat16 activations, rows, aliasing, token ids. Internal to
// native/core/nn_*.cpp; not part of nn.h.
#pragma once
#include <cstdint>

#include "tensor.h"

namespace kfac::nn::detail {

// A float32 argument on the op's device (`dev`, set by its first tensor): a tensor on another
// device is a DeviceError naming it.
void in(const Tensor& t, const char* name, Device dev);
void in_opt(const Tensor* t, const char* name, Device dev);

// An activation of op `op`: float32, or bfloat16 on a device whose kernels store activations so
// (elsewhere a DTypeError naming the op and the argument).
void act(const Tensor& t, const char* name, Device dev, const char* op);
// An activation that must share the storage dtype of `ref` (one storage type per call).
void act_like(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name, Device dev, const char* op);
void act_like_opt(const Tensor* t, const char* name, const Tensor& ref, const char* ref_name, Device dev, const char* op);

// The device of an nn op (that of `first`). Whether it has the op's kernel is asked when the
// op dispatches, after the checks.
Device nn_device(const Tensor& first, const char* first_name, const char* op);

// Rows of a [..., C] tensor: the product of its leading dimensions.
int64_t rows_of(const Tensor& t);

void no_alias(const Tensor* a, const char* an, const Tensor* b, const char* bn);
// Either the very same memory (an in-place call) or no overlap at all.
void same_or_separate(const Tensor& a, const char* an, const Tensor& b, const char* bn);

// Token ids in [0, V) (or the ignore index when allow_ignore); else an InvalidArgument naming
// the first bad one and its position.
void check_ids(const int32_t* ids, int64_t n, int64_t V, const char* name, bool allow_ignore, int32_t ignore);

}  // namespace kfac::nn::detail
