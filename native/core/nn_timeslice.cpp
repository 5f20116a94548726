// Checked entry point of time_slice (native/core/nn.h).
#include <string>

#include "check.h"
#include "dispatch.h"
#include "error.h"
#include "nn.h"

namespace kfac::nn {

void time_slice(const Tensor& src, const Tensor& dst, int64_t offset) {
  const Device dev = common_device({{&src, "src"}, {&dst, "dst"}});
  // float32, or bfloat16 (both alike) on a device whose kernels store activations so
  const bool bf16_ok = backend_registered(dev) && kernels_of(dev).bf16_activations;
  if (src.dtype() == DType::BF16 && !bf16_ok)
    throw_arg(ErrorCode::DType, "src",
              std::string("float32 (time_slice takes bfloat16 only on a device whose kernels store activations so: cuda)"),
              "bfloat16");
  if (src.dtype() != DType::BF16) check_f32(src, "src");
  if (dst.dtype() != src.dtype())
    throw_arg(ErrorCode::DType, "dst", std::string(dtype_name(src.dtype())) + " like src", dtype_name(dst.dtype()));
  check_rank(src, "src", 4, 4);
  check_rank(dst, "dst", 4, 4);
  if (src.dim(0) != dst.dim(0) || src.dim(2) != dst.dim(2) || src.dim(3) != dst.dim(3))
    throw_arg(ErrorCode::Shape, "dst",
              "[" + std::to_string(src.dim(0)) + ", T, " + std::to_string(src.dim(2)) + ", " + std::to_string(src.dim(3)) +
                  "] like src " + shape_str(src.shape()),
              shape_str(dst.shape()));
  if (offset < 0 || offset > src.dim(1) - dst.dim(1))
    throw_arg(ErrorCode::InvalidArgument, "offset",
              "a position in [0, " + std::to_string(src.dim(1) - dst.dim(1)) + "] so that " + std::to_string(dst.dim(1)) +
                  " steps fit in the " + std::to_string(src.dim(1)) + " of src",
              std::to_string(offset));
  if (dst.numel() > 0 && src.numel() > 0) check_no_alias(src, "src", dst, "dst");
  KFAC_DISPATCH(dev, time_slice)(src, dst, offset);
}

}  // namespace kfac::nn
