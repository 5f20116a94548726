// Bindings of the GEMM, elementwise and reduction op families.
#include <napi.h>

#include "../core/ops.h"
#include "args.h"
#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

namespace {

// matmul(a, b, out | null, { transA, transB, alpha, beta }) → out or a new tensor
KFAC_BINDING(Matmul) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor b = get_tensor(arg(info, 1), "b");
  Tensor out;
  bool has_out = get_optional_tensor(arg(info, 2), "out", out);
  Napi::Object o = get_options(arg(info, 3), "options");
  ops::MatmulOptions opt;
  Napi::Value v;
  if (!(v = field(o, "transA")).IsUndefined()) opt.transA = get_bool(v, "transA");
  if (!(v = field(o, "transB")).IsUndefined()) opt.transB = get_bool(v, "transB");
  if (!(v = field(o, "alpha")).IsUndefined()) opt.alpha = get_float(v, "alpha");
  if (!(v = field(o, "beta")).IsUndefined()) opt.beta = get_float(v, "beta");
  Tensor c = ops::matmul(a, b, has_out ? &out : nullptr, opt);
  return has_out ? arg(info, 2) : Napi::Value(TensorWrap::wrap(info.Env(), c));
}

KFAC_BINDING(Fill) {
  Tensor x = get_tensor(arg(info, 0), "x");
  ops::fill(x, get_float(arg(info, 1), "value"));
  return info.Env().Undefined();
}

KFAC_BINDING(Copy) {
  Tensor src = get_tensor(arg(info, 0), "src");
  Tensor dst = get_tensor(arg(info, 1), "dst");
  ops::copy(src, dst);
  return info.Env().Undefined();
}

KFAC_BINDING(Add) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor b = get_tensor(arg(info, 1), "b");
  Tensor out = get_tensor(arg(info, 2), "out");
  ops::add(a, b, out);
  return info.Env().Undefined();
}

KFAC_BINDING(Scale) {
  Tensor x = get_tensor(arg(info, 0), "x");
  float alpha = get_float(arg(info, 1), "alpha");
  Tensor out = get_tensor(arg(info, 2), "out");
  ops::scale(x, alpha, out);
  return info.Env().Undefined();
}

KFAC_BINDING(Axpy) {
  float alpha = get_float(arg(info, 0), "alpha");
  Tensor x = get_tensor(arg(info, 1), "x");
  Tensor y = get_tensor(arg(info, 2), "y");
  ops::axpy(alpha, x, y);
  return info.Env().Undefined();
}

// transpose(x, out | null) → out or a new tensor
KFAC_BINDING(Transpose) {
  Tensor x = get_tensor(arg(info, 0), "x");
  Tensor out;
  bool has_out = get_optional_tensor(arg(info, 1), "out", out);
  if (!has_out) out = Tensor::empty(ops::transpose_shape(x));
  ops::transpose(x, out);
  return has_out ? arg(info, 1) : Napi::Value(TensorWrap::wrap(info.Env(), out));
}

KFAC_BINDING(Sum) { return Napi::Number::New(info.Env(), ops::sum(get_tensor(arg(info, 0), "x"))); }

KFAC_BINDING(SumSquares) {
  return Napi::Number::New(info.Env(), ops::sum_squares(get_tensor(arg(info, 0), "x")));
}

KFAC_BINDING(Norm) { return Napi::Number::New(info.Env(), ops::norm(get_tensor(arg(info, 0), "x"))); }

KFAC_BINDING(Dot) {
  Tensor x = get_tensor(arg(info, 0), "x");
  Tensor y = get_tensor(arg(info, 1), "y");
  return Napi::Number::New(info.Env(), ops::dot(x, y));
}

}  // namespace

void register_basic_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("fill", Napi::Function::New(env, Fill, "fill"));
  exports.Set("copy", Napi::Function::New(env, Copy, "copy"));
  exports.Set("add", Napi::Function::New(env, Add, "add"));
  exports.Set("scale", Napi::Function::New(env, Scale, "scale"));
  exports.Set("axpy", Napi::Function::New(env, Axpy, "axpy"));
  exports.Set("transpose", Napi::Function::New(env, Transpose, "transpose"));
  exports.Set("sum", Napi::Function::New(env, Sum, "sum"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
  exports.Set("norm", Napi::Function::New(env, Norm, "norm"));
  exports.Set("dot", Napi::Function::New(env, Dot, "dot"));
}

}  // namespace kfac::napi
