// Checked entry points of the pointwise activations (GELU, SiLU, ReLU), the gated products
// (SwiGLU, act(gate)·up) and dropout (native/core/nn.h).
#include "nn.h"

#include <string>

#include "check.h"
#include "dispatch.h"
#include "nn_args.h"

namespace kfac::nn {

using namespace detail;

namespace {
void pointwise(const Tensor& x, const char* xn, const Tensor& o, const char* on, const char* op) {
  const Device dev = x.device();
  act(x, xn, dev, op);
  act_like(o, on, x, xn, dev, op);
  check_same_shape(x, xn, o, on);
  same_or_separate(x, xn, o, on);
}
void pointwise3(const Tensor& x, const char* xn, const Tensor& g, const char* gn, const Tensor& o,
                const char* on, const char* op) {
  pointwise(x, xn, o, on, op);
  act_like(g, gn, x, xn, x.device(), op);
  check_same_shape(x, xn, g, gn);
  same_or_separate(g, gn, o, on);
}
int gelu_kind(int kind) {
  if (kind != 0 && kind != 1) throw_arg(ErrorCode::InvalidArgument, "kind", "'erf' or 'tanh'", std::to_string(kind));
  return kind;
}
}  // namespace

void gelu_forward(const Tensor& x, const Tensor& out, int kind) {
  const Device dev = nn_device(x, "x", "gelu_forward");
  const int k = gelu_kind(kind);
  pointwise(x, "x", out, "out", "gelu_forward");
  KFAC_DISPATCH(dev, gelu_forward)(x, out, k);
}

void gelu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx, int kind) {
  const Device dev = nn_device(x, "x", "gelu_backward");
  const int k = gelu_kind(kind);
  pointwise3(x, "x", dout, "dout", dx, "dx", "gelu_backward");
  KFAC_DISPATCH(dev, gelu_backward)(x, dout, dx, k);
}

void silu_forward(const Tensor& x, const Tensor& out) {
  const Device dev = nn_device(x, "x", "silu_forward");
  pointwise(x, "x", out, "out", "silu_forward");
  KFAC_DISPATCH(dev, silu_forward)(x, out);
}

void silu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  const Device dev = nn_device(x, "x", "silu_backward");
  pointwise3(x, "x", dout, "dout", dx, "dx", "silu_backward");
  KFAC_DISPATCH(dev, silu_backward)(x, dout, dx);
}

void swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  const Device dev = nn_device(gate, "gate", "swiglu_forward");
  pointwise3(gate, "gate", up, "up", out, "out", "swiglu_forward");
  KFAC_DISPATCH(dev, swiglu_forward)(gate, up, out);
}

void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                     const Tensor& dup) {
  const Device dev = nn_device(gate, "gate", "swiglu_backward");
  pointwise3(gate, "gate", up, "up", dgate, "dgate", "swiglu_backward");
  pointwise3(gate, "gate", dout, "dout", dup, "dup", "swiglu_backward");
  same_or_separate(up, "up", dup, "dup");
  same_or_separate(dout, "dout", dgate, "dgate");
  no_alias(&dgate, "dgate", &dup, "dup");
  KFAC_DISPATCH(dev, swiglu_backward)(gate, up, dout, dgate, dup);
}

void relu_forward(const Tensor& x, const Tensor& out) {
  const Device dev = nn_device(x, "x", "relu_forward");
  pointwise(x, "x", out, "out", "relu_forward");
  KFAC_DISPATCH(dev, relu_forward)(x, out);
}

void relu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  const Device dev = nn_device(x, "x", "relu_backward");
  pointwise3(x, "x", dout, "dout", dx, "dx", "relu_backward");
  KFAC_DISPATCH(dev, relu_backward)(x, dout, dx);
}

namespace {
int gate_act(int act) {
  if (act < 0 || act > 3)
    throw_arg(ErrorCode::InvalidArgument, "act", "'gelu', 'gelu_tanh', 'relu' or 'silu'", std::to_string(act));
  return act;
}
}  // namespace

void gated_forward(const Tensor& gate, const Tensor& up, const Tensor& out, int act) {
  const Device dev = nn_device(gate, "gate", "gated_forward");
  const int a = gate_act(act);
  pointwise3(gate, "gate", up, "up", out, "out", "gated_forward");
  KFAC_DISPATCH(dev, gated_forward)(gate, up, out, a);
}

void gated_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                    const Tensor& dup, int act) {
  const Device dev = nn_device(gate, "gate", "gated_backward");
  const int a = gate_act(act);
  pointwise3(gate, "gate", up, "up", dgate, "dgate", "gated_backward");
  pointwise3(gate, "gate", dout, "dout", dup, "dup", "gated_backward");
  same_or_separate(up, "up", dup, "dup");
  same_or_separate(dout, "dout", dgate, "dgate");
  no_alias(&dgate, "dgate", &dup, "dup");
  KFAC_DISPATCH(dev, gated_backward)(gate, up, dout, dgate, dup, a);
}

namespace {
void dropout_check(const Tensor& x, const char* xn, const Tensor& o, const char* on, float p, const char* op) {
  pointwise(x, xn, o, on, op);
  check_finite_scalar(p, "p");
  if (p < 0.f || p > 1.f) throw_arg(ErrorCode::InvalidArgument, "p", "a probability in [0, 1]", std::to_string(p));
}
}  // namespace

void dropout_forward(const Tensor& x, const Tensor& out, float p, uint64_t seed) {
  const Device dev = nn_device(x, "x", "dropout_forward");
  dropout_check(x, "x", out, "out", p, "dropout_forward");
  KFAC_DISPATCH(dev, dropout_forward)(x, out, p, seed);
}

void dropout_backward(const Tensor& dout, const Tensor& dx, float p, uint64_t seed) {
  const Device dev = nn_device(dout, "dout", "dropout_backward");
  dropout_check(dout, "dout", dx, "dx", p, "dropout_backward");
  KFAC_DISPATCH(dev, dropout_backward)(dout, dx, p, seed);
}

}  // namespace kfac::nn
