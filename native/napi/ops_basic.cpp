// Bindings of the GEMM, elementwise and reduction op families.
#include <napi.h>

#include <cstdint>

#include "../core/ops.h"
#include "args.h"
#include "errors.h"
#include "register.h"
#include "tensor_wrap.h"

namespace kfac::napi {

namespace {

// matmul(a, b, out | null, { transA, transB, alpha, beta, tf32 }) → out or a new tensor
KFAC_BINDING(Matmul) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor b = get_tensor(arg(info, 1), "b");
  Tensor out;
  bool has_out = get_optional_tensor(arg(info, 2), "out", out);
  Napi::Object o = get_options(arg(info, 3), "options");
  ops::MatmulOptions opt;
  opt.transA = opt_flag(o, "transA", false);
  opt.transB = opt_flag(o, "transB", false);
  opt.alpha = opt_float(o, "alpha", 1.f);
  opt.beta = opt_float(o, "beta", 0.f);
  opt.tf32 = opt_flag(o, "tf32", false);
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

// copyRange(src, srcOffset, dst, dstOffset, count)
KFAC_BINDING(CopyRange) {
  Tensor src = get_tensor(arg(info, 0), "src");
  int64_t so = get_int(arg(info, 1), "srcOffset", 0, INT64_MAX);
  Tensor dst = get_tensor(arg(info, 2), "dst");
  int64_t doff = get_int(arg(info, 3), "dstOffset", 0, INT64_MAX);
  int64_t count = get_int(arg(info, 4), "count", 0, INT64_MAX);
  ops::copy_range(src, so, dst, doff, count);
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
  if (!has_out) out = Tensor::empty(ops::transpose_shape(x), DType::F32, x.device());
  ops::transpose(x, out);
  return has_out ? arg(info, 1) : Napi::Value(TensorWrap::wrap(info.Env(), out));
}

KFAC_BINDING(Sum) { return Napi::Number::New(info.Env(), ops::sum(get_tensor(arg(info, 0), "x"))); }

KFAC_BINDING(SumSquares) {
  return Napi::Number::New(info.Env(), ops::sum_squares(get_tensor(arg(info, 0), "x")));
}

KFAC_BINDING(SumSquaresMany) {
  std::vector<double> r = ops::sum_squares_many(get_tensor_list(arg(info, 0), "tensors"));
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = r[i];
  return out;
}

KFAC_BINDING(Norm) { return Napi::Number::New(info.Env(), ops::norm(get_tensor(arg(info, 0), "x"))); }

KFAC_BINDING(Dot) {
  Tensor x = get_tensor(arg(info, 0), "x");
  Tensor y = get_tensor(arg(info, 1), "y");
  return Napi::Number::New(info.Env(), ops::dot(x, y));
}

KFAC_BINDING(DotMany) {
  std::vector<double> r = ops::dot_many(get_tensor_list(arg(info, 0), "xs"), get_tensor_list(arg(info, 1), "ys"));
  Napi::Float64Array out = Napi::Float64Array::New(info.Env(), r.size());
  for (size_t i = 0; i < r.size(); ++i) out[i] = r[i];
  return out;
}

const Binding kBindings[] = {
    {"matmul", Matmul},
    {"fill", Fill},
    {"copy", Copy},
    {"copyRange", CopyRange},
    {"add", Add},
    {"scale", Scale},
    {"axpy", Axpy},
    {"transpose", Transpose},
    {"sum", Sum},
    {"sumSquares", SumSquares},
    {"sumSquaresMany", SumSquaresMany},
    {"norm", Norm},
    {"dot", Dot},
    {"dotMany", DotMany},
};

}  // namespace

void register_basic_ops(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi
