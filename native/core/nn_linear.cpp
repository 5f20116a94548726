// Checked entry points of linear_forward / linear_backward (native/core/nn.h): x [..., IN]
// against W [OUT, IN] (or Conv1D's [IN, OUT]), a bfloat16 W only as a frozen base weight.
#include "nn.h"

#include <string>
#include <utility>

#include "check.h"
#include "dispatch.h"
#include "nn_args.h"

namespace kfac::nn {

using namespace detail;

namespace {

// A Linear weight may be bfloat16 (a frozen base weight, [OUT, IN] layout only).
bool weight_in(const Tensor& W, bool conv1d, Device dev) {
  if (W.defined() && W.dtype() == DType::BF16 && !conv1d && W.device() == dev) return true;
  in(W, "W", dev);
  return false;
}

Shape with_last(const Shape& s, int64_t last) {
  Shape r = s;
  r.back() = last;
  return r;
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& W, const Tensor* b, const Tensor& y, bool conv1d) {
  const Device dev = nn_device(x, "x", "linear_forward");
  act(x, "x", dev, "linear_forward");
  const bool bf16 = weight_in(W, conv1d, dev);
  in_opt(b, "b", dev);
  act(y, "y", dev, "linear_forward");
  check_rank(x, "x", 1, kMaxRank);
  check_rank(W, "W", 2, 2);
  const int64_t IN = x.dim(-1);
  const int64_t OUT = conv1d ? W.dim(1) : W.dim(0);
  if ((conv1d ? W.dim(0) : W.dim(1)) != IN)
    throw_arg(ErrorCode::Shape, "W",
              conv1d ? "shape [" + std::to_string(IN) + ", out] (Conv1D layout) for x " + shape_str(x.shape())
                     : "shape [out, " + std::to_string(IN) + "] for x " + shape_str(x.shape()),
              shape_str(W.shape()));
  if (b) check_shape(*b, "b", {OUT});
  check_shape(y, "y", with_last(x.shape(), OUT));
  no_alias(&x, "x", &y, "y");
  no_alias(&W, "W", &y, "y");
  no_alias(b, "b", &y, "y");
  (void)bf16;
  KFAC_DISPATCH(dev, linear_forward)(x, W, b, y, conv1d);
}

void linear_backward(const Tensor& x, const Tensor& W, const Tensor& dy, const Tensor* dx, const Tensor* dW,
                     const Tensor* db, bool conv1d, bool accumulate_dx) {
  const Device dev = nn_device(x, "x", "linear_backward");
  act(x, "x", dev, "linear_backward");
  const bool bf16 = weight_in(W, conv1d, dev);
  act(dy, "dy", dev, "linear_backward");
  if (dx) act(*dx, "dx", dev, "linear_backward");
  in_opt(dW, "dW", dev);
  in_opt(db, "db", dev);
  check_rank(x, "x", 1, kMaxRank);
  check_rank(W, "W", 2, 2);
  const int64_t IN = x.dim(-1);
  const int64_t OUT = conv1d ? W.dim(1) : W.dim(0);
  if ((conv1d ? W.dim(0) : W.dim(1)) != IN)
    throw_arg(ErrorCode::Shape, "W", "a weight matching x " + shape_str(x.shape()), shape_str(W.shape()));
  check_shape(dy, "dy", with_last(x.shape(), OUT));
  if (dx) check_shape(*dx, "dx", x.shape());
  if (dW) check_shape(*dW, "dW", W.shape());
  if (db) check_shape(*db, "db", {OUT});
  for (auto [t, n] : {std::pair{dx, "dx"}, std::pair{dW, "dW"}, std::pair{db, "db"}}) {
    no_alias(&x, "x", t, n);
    no_alias(&W, "W", t, n);
    no_alias(&dy, "dy", t, n);
  }
  no_alias(dx, "dx", dW, "dW");
  no_alias(dx, "dx", db, "db");
  no_alias(dW, "dW", db, "db");
  if (bf16 && dW) throw_arg(ErrorCode::DType, "dW", "no weight gradient for a bfloat16 (frozen) weight", "a gradient tensor");
  KFAC_DISPATCH(dev, linear_backward)(x, W, dy, dx, dW, db, conv1d, accumulate_dx);
}

}  // namespace kfac::nn
