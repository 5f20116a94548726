// Argument checks shared by the nn op family's entry points (native/core/nn_args.h).
#include "nn_args.h"

#include <string>

#include "check.h"
#include "dispatch.h"

namespace kfac::nn::detail {

namespace {
// Whether `dev`'s kernels take bfloat16 activations (the cuda kernels and their emulation do;
// the CPU kernels, and the CPU loopback that poses as cuda, read float32 only).
bool stores_bf16(Device dev) { return backend_registered(dev) && kernels_of(dev).bf16_activations; }
}  // namespace

void in(const Tensor& t, const char* name, Device dev) {
  check_defined(t, name);
  check_f32(t, name);
  if (t.device() != dev)
    throw_arg(ErrorCode::Device, name, std::string("a tensor on ") + device_name(dev) + " like the op's other arguments",
              device_name(t.device()));
}

void in_opt(const Tensor* t, const char* name, Device dev) {
  if (t) in(*t, name, dev);
}

// An activation of op `op`: float32, or bfloat16 on a device whose kernels store activations so
// (elsewhere a DTypeError naming the op and the argument).
void act(const Tensor& t, const char* name, Device dev, const char* op) {
  check_defined(t, name);
  if (t.dtype() != DType::BF16 || t.device() != dev) return in(t, name, dev);
  if (!stores_bf16(dev))
    throw_arg(ErrorCode::DType, name,
              std::string("float32 (") + op + " takes bfloat16 activations only on a device whose kernels store them: cuda, not " +
                  device_name(dev) + ")",
              "bfloat16");
}
// An activation that must share the storage dtype of `ref` (one storage type per call).
void act_like(const Tensor& t, const char* name, const Tensor& ref, const char* ref_name, Device dev, const char* op) {
  act(t, name, dev, op);
  if (t.dtype() != ref.dtype())
    throw_arg(ErrorCode::DType, name, std::string(dtype_name(ref.dtype())) + " like " + ref_name, dtype_name(t.dtype()));
}
void act_like_opt(const Tensor* t, const char* name, const Tensor& ref, const char* ref_name, Device dev, const char* op) {
  if (t) act_like(*t, name, ref, ref_name, dev, op);
}

// The device of an nn op (that of `first`). Whether it has the op's kernel is asked when the
// op dispatches, after the checks.
Device nn_device(const Tensor& first, const char* first_name, const char* op) {
  check_defined(first, first_name);
  return first.device();
}

// Rows of a [..., C] tensor: the product of its leading dimensions.
int64_t rows_of(const Tensor& t) {
  int64_t n = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) n *= t.dim(i);
  return n;
}

void no_alias(const Tensor* a, const char* an, const Tensor* b, const char* bn) {
  if (a && b && a->numel() > 0 && b->numel() > 0) check_no_alias(*a, an, *b, bn);
}

// Either the very same memory (an in-place call) or no overlap at all.
void same_or_separate(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.raw() == b.raw() && a.nbytes() == b.nbytes()) return;
  no_alias(&a, an, &b, bn);
}

void check_ids(const int32_t* ids, int64_t n, int64_t V, const char* name, bool allow_ignore,
               int32_t ignore) {
  for (int64_t i = 0; i < n; ++i) {
    int32_t t = ids[i];
    if (allow_ignore && t == ignore) continue;
    if (t < 0 || int64_t(t) >= V)
      throw_arg(ErrorCode::InvalidArgument, name,
                "integers in [0, " + std::to_string(V) + ")" +
                    (allow_ignore ? " or the ignore index " + std::to_string(ignore) : std::string()),
                std::to_string(t) + " at position " + std::to_string(i));
  }
}

}  // namespace kfac::nn::detail
