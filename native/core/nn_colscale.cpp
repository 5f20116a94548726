// Checked entry points of col_scale / col_scale_backward (IA3's column scaling; native/core/nn.h).
#include <cmath>
#include <string>

#include "check.h"
#include "dispatch.h"
#include "error.h"
#include "nn.h"

namespace kfac::nn {

namespace {
// In place (the very same memory) or apart.
void same_or_apart(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.numel() > 0 && a.raw() != b.raw()) check_no_alias(a, an, b, bn);
}
void vector_of(const Tensor& x, const char* xn, const Tensor& l, const char* ln) {
  check_f32(l, ln);
  const int64_t n = x.rank() == 0 ? 1 : x.dim(-1);
  if (l.rank() != 1 || l.dim(0) != n)
    throw_arg(ErrorCode::Shape, ln, "a vector of " + std::to_string(n) + " values (the last dimension of " + xn + ")",
              std::to_string(l.numel()) + " values of rank " + std::to_string(l.rank()));
}
}  // namespace

void col_scale(const Tensor& x, const Tensor& l, float shift, const Tensor& out, bool accumulate) {
  const Device dev = common_device({{&x, "x"}, {&l, "l"}, {&out, "out"}});
  check_f32(x, "x");
  if (x.rank() < 1) throw_arg(ErrorCode::Shape, "x", "a tensor of rank ≥ 1", "a scalar");
  vector_of(x, "x", l, "l");
  check_f32(out, "out");
  check_same_shape(x, "x", out, "out");
  same_or_apart(x, "x", out, "out");
  if (out.numel() > 0 && l.numel() > 0) check_no_alias(l, "l", out, "out");
  if (!std::isfinite(shift)) throw_arg(ErrorCode::InvalidArgument, "shift", "a finite number", std::to_string(shift));
  KFAC_DISPATCH(dev, col_scale)(x, l, shift, out, accumulate);
}

void col_scale_backward(const Tensor& a, const Tensor& b, const Tensor& u, const Tensor* dl) {
  const Device dev = common_device({{&a, "a"}, {&b, "b"}, {&u, "u"}, {dl, "dl"}});
  check_f32(a, "a");
  if (a.rank() < 1) throw_arg(ErrorCode::Shape, "a", "a tensor of rank ≥ 1", "a scalar");
  check_f32(b, "b");
  check_same_shape(a, "a", b, "b");
  check_f32(u, "u");
  check_same_shape(a, "a", u, "u");
  same_or_apart(a, "a", u, "u");
  same_or_apart(b, "b", u, "u");
  if (dl) {
    vector_of(a, "a", *dl, "dl");
    if (dl->numel() > 0 && u.numel() > 0) check_no_alias(*dl, "dl", u, "u");
  }
  KFAC_DISPATCH(dev, col_scale_backward)(a, b, u, dl);
}

}  // namespace kfac::nn
