#include "ops_dtype.h"

#include <cstring>
#include <string>

#include "../cpu/bf16.h"
#include "check.h"

namespace kfac::ops {

namespace {
void host(const Tensor& t, const char* name) {
  check_defined(t, name);
  if (t.device() != Device::CPU)
    throw_arg(ErrorCode::Device, name, "a host (cpu) tensor", device_name(t.device()));
}
}  // namespace

Tensor gemm_bf16(const Tensor& a, const Tensor& b, bool trans_b) {
  host(a, "a");
  host(b, "b");
  if (a.dtype() != DType::BF16) throw_arg(ErrorCode::DType, "a", "bfloat16", dtype_name(a.dtype()));
  if (b.dtype() != DType::BF16) throw_arg(ErrorCode::DType, "b", "bfloat16", dtype_name(b.dtype()));
  check_rank(a, "a", 2, 2);
  check_rank(b, "b", 2, 2);
  if (b.dim(trans_b ? 1 : 0) != a.dim(1))
    throw_arg(ErrorCode::Shape, "b",
              (trans_b ? "shape [n, " + std::to_string(a.dim(1)) + "]" : "shape [" + std::to_string(a.dim(1)) + ", n]") +
                  " for a " + shape_str(a.shape()),
              shape_str(b.shape()));
  const int64_t M = a.dim(0), N = b.dim(trans_b ? 0 : 1), K = a.dim(1);
  Tensor c = Tensor::empty({M, N});
  cpu::gemm_bf16(M, N, K, static_cast<const uint16_t*>(a.raw()), K, static_cast<const uint16_t*>(b.raw()), trans_b ? K : N,
                 trans_b, c.f32(), N, false);
  return c;
}

}  // namespace kfac::ops
