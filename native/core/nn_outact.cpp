// Checked entry points of act_out_forward / act_out_backward (tanh, relu; native/core/nn.h).
#include "check.h"
#include "dispatch.h"
#include "error.h"
#include "nn.h"

#include <string>

namespace kfac::nn {

namespace {
int outact_kind(int kind) {
  if (kind != 0 && kind != 1) throw_arg(ErrorCode::InvalidArgument, "kind", "'tanh' or 'relu'", std::to_string(kind));
  return kind;
}
void same(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  check_f32(b, bn);
  check_same_shape(a, an, b, bn);
  // in place (the same memory) or apart
  if (a.numel() > 0 && a.raw() != b.raw()) check_no_alias(a, an, b, bn);
}
}  // namespace

void act_out_forward(const Tensor& x, const Tensor& out, int kind) {
  const Device dev = common_device({{&x, "x"}, {&out, "out"}});
  const int k = outact_kind(kind);
  check_f32(x, "x");
  same(x, "x", out, "out");
  KFAC_DISPATCH(dev, act_out_forward)(x, out, k);
}

void act_out_backward(const Tensor& y, const Tensor& dout, const Tensor& dx, int kind) {
  const Device dev = common_device({{&y, "y"}, {&dout, "dout"}, {&dx, "dx"}});
  const int k = outact_kind(kind);
  check_f32(y, "y");
  same(y, "y", dout, "dout");
  same(y, "y", dx, "dx");
  KFAC_DISPATCH(dev, act_out_backward)(y, dout, dx, k);
}

}  // namespace kfac::nn
