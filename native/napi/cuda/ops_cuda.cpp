// Bindings of the CUDA backend (built only into kfac_peft_cuda.node, by CMakeLists.txt):
// exports.cuda = { info, upload, download, empty, zeros, synchronize, and the ops }.
// Every op takes tensors on the CUDA device only (a cpu tensor is a typed Device error);
// upload/download are the only crossings. Arguments mirror the CPU bindings.
#include <napi.h>

#include <string>
#include <vector>

#include "../../core/check.h"
#include "../../cuda/clip.cuh"
#include "../../cuda/context.cuh"
#include "../../cuda/eigh.cuh"
#include "../../cuda/factor.cuh"
#include "../../cuda/gemm.cuh"
#include "../../cuda/optim.cuh"
#include "../../cuda/precondition.cuh"
#include "../../cuda/util.cuh"
#include "../args.h"
#include "../errors.h"
#include "../register.h"
#include "../tensor_wrap.h"

#ifndef KFAC_CUDA_ARCHITECTURES
#define KFAC_CUDA_ARCHITECTURES ""
#endif

namespace kfac::napi {

namespace {

std::string version_string(int v) {  // 12080 → "12.8"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

// info() → never throws: what the runtime, driver and libraries say, and why no device.
KFAC_BINDING(CudaInfo) {
  Napi::Env env = info.Env();
  const cuda::Probe& p = cuda::probe();
  Napi::Object o = Napi::Object::New(env);
  o.Set("built", true);
  o.Set("architectures", KFAC_CUDA_ARCHITECTURES);
  o.Set("runtimeVersion", version_string(p.runtime_version));
  o.Set("driverVersion", p.driver_version ? Napi::Value(Napi::String::New(env, version_string(p.driver_version))) : env.Null());
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  o.Set("cublasVersion", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch));
  cusolverGetProperty(MAJOR_VERSION, &major);
  cusolverGetProperty(MINOR_VERSION, &minor);
  cusolverGetProperty(PATCH_LEVEL, &patch);
  o.Set("cusolverVersion", std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch));
  o.Set("deviceCount", p.count);
  o.Set("reason", p.count ? env.Null() : Napi::Value(Napi::String::New(env, p.reason)));
  Napi::Array devs = Napi::Array::New(env);
  for (int d = 0; d < p.count; ++d) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    Napi::Object x = Napi::Object::New(env);
    x.Set("name", prop.name);
    x.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
    x.Set("memoryBytes", Napi::Number::New(env, double(prop.totalGlobalMem)));
    x.Set("multiprocessors", prop.multiProcessorCount);
    devs.Set(uint32_t(d), x);
  }
  o.Set("devices", devs);
  return o;
}

DType get_dtype(Napi::Value v, const char* name) {
  if (v.IsUndefined()) return DType::F32;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "float32") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  throw_arg(ErrorCode::InvalidArgument, name, "'float32' or 'bfloat16'", v.IsString() ? "'" + s + "'" : describe(v));
}

// upload(cpuTensor, { dtype }) → a new cuda tensor (bfloat16 storage rounds to nearest even)
KFAC_BINDING(Upload) {
  Tensor t = get_tensor(arg(info, 0), "tensor");
  if (t.device() != Device::CPU) throw_arg(ErrorCode::Device, "tensor", "a cpu tensor", device_name(t.device()));
  check_f32(t, "tensor");
  DType dt = get_dtype(field(get_options(arg(info, 1), "options"), "dtype"), "dtype");
  Tensor d = Tensor::empty(t.shape(), dt, Device::CUDA);
  if (dt == DType::F32) {
    cuda::copy_to_device(d.raw(), t.raw(), t.nbytes());
  } else {
    cuda::DeviceBuffer tmp(t.nbytes());
    cuda::copy_to_device(tmp.as<float>(), t.raw(), t.nbytes());
    cuda::f32_to_bf16(tmp.as<float>(), d.raw(), t.numel());
    cuda::Context::get().synchronize();
  }
  return TensorWrap::wrap(info.Env(), d);
}

// download(cudaTensor) → a new float32 cpu tensor
KFAC_BINDING(Download) {
  Tensor d = get_tensor(arg(info, 0), "tensor");
  if (d.device() != Device::CUDA) throw_arg(ErrorCode::Device, "tensor", "a cuda tensor", device_name(d.device()));
  Tensor t = Tensor::empty(d.shape());
  if (d.dtype() == DType::F32) {
    cuda::copy_to_host(t.raw(), d.raw(), t.nbytes());
  } else if (d.dtype() == DType::BF16) {
    cuda::DeviceBuffer tmp(t.nbytes());
    cuda::bf16_to_f32(d.raw(), tmp.as<float>(), d.numel());
    cuda::copy_to_host(t.raw(), tmp.as<float>(), t.nbytes());
  } else {
    throw_arg(ErrorCode::DType, "tensor", "float32 or bfloat16", dtype_name(d.dtype()));
  }
  return TensorWrap::wrap(info.Env(), t);
}

KFAC_BINDING(Empty) {
  DType dt = get_dtype(field(get_options(arg(info, 1), "options"), "dtype"), "dtype");
  return TensorWrap::wrap(info.Env(), Tensor::empty(get_shape(arg(info, 0), "shape"), dt, Device::CUDA));
}

KFAC_BINDING(Zeros) {
  DType dt = get_dtype(field(get_options(arg(info, 1), "options"), "dtype"), "dtype");
  Tensor t = Tensor::zeros(get_shape(arg(info, 0), "shape"), dt, Device::CUDA);
  cuda::Context::get().synchronize();
  return TensorWrap::wrap(info.Env(), t);
}

// copy(src, dst): device-to-device, same shape and dtype (the bandwidth ceiling of benches)
KFAC_BINDING(Copy) {
  Tensor src = get_tensor(arg(info, 0), "src"), dst = get_tensor(arg(info, 1), "dst");
  cuda::check_device_tensor(src, "src", src.dtype());
  cuda::check_device_tensor(dst, "dst", src.dtype());
  check_same_shape(src, "src", dst, "dst");
  check_no_alias(src, "src", dst, "dst");
  cuda::copy_device(dst.raw(), src.raw(), src.nbytes());
  cuda::Context::get().synchronize();
  return info.Env().Undefined();
}

KFAC_BINDING(Synchronize) {
  cuda::Context::get().synchronize();
  return info.Env().Undefined();
}

// matmul(a, b, out | null, { transA, transB, alpha, beta, tf32 }) → out
KFAC_BINDING(Matmul) {
  Tensor a = get_tensor(arg(info, 0), "a");
  Tensor b = get_tensor(arg(info, 1), "b");
  Tensor out;
  bool has_out = get_optional_tensor(arg(info, 2), "out", out);
  Napi::Object o = get_options(arg(info, 3), "options");
  ops::MatmulOptions opt;
  bool tf32 = false;
  Napi::Value v;
  if (!(v = field(o, "transA")).IsUndefined()) opt.transA = get_bool(v, "transA");
  if (!(v = field(o, "transB")).IsUndefined()) opt.transB = get_bool(v, "transB");
  if (!(v = field(o, "alpha")).IsUndefined()) opt.alpha = get_float(v, "alpha");
  if (!(v = field(o, "beta")).IsUndefined()) opt.beta = get_float(v, "beta");
  if (!(v = field(o, "tf32")).IsUndefined()) tf32 = get_bool(v, "tf32");
  Tensor r = cuda::matmul(a, b, has_out ? &out : nullptr, opt, tf32);
  cuda::Context::get().synchronize();
  return has_out ? arg(info, 2) : Napi::Value(TensorWrap::wrap(info.Env(), r));
}

// factorUpdate(x, factor, { beta, scale, bias })
KFAC_BINDING(FactorUpdate) {
  Tensor x = get_tensor(arg(info, 0), "x");
  Tensor F = get_tensor(arg(info, 1), "factor");
  Napi::Object o = get_options(arg(info, 2), "options");
  ops::FactorUpdateOptions opt;
  Napi::Value v;
  if (!(v = field(o, "beta")).IsUndefined()) opt.beta = get_float(v, "beta");
  if (!(v = field(o, "scale")).IsUndefined()) opt.scale = get_finite(v, "scale");
  if (!(v = field(o, "bias")).IsUndefined()) opt.bias = get_bool(v, "bias");
  cuda::factor_update(x, F, opt);
  cuda::Context::get().synchronize();
  return info.Env().Undefined();
}

bool read_clamp(Napi::Object o) {
  Napi::Value v = field(o, "clampNonNegative");
  return v.IsUndefined() ? false : get_bool(v, "clampNonNegative");
}

// An output given by the caller (its JS handle) or made here (a new handle).
Napi::Value out_or_new(const Napi::CallbackInfo& info, size_t i, bool given, const Tensor& t) {
  return given ? arg(info, i) : Napi::Value(TensorWrap::wrap(info.Env(), t));
}

Tensor given_or_empty(const Napi::CallbackInfo& info, size_t i, const char* name, const Shape& shape, bool& given) {
  Tensor t;
  given = get_optional_tensor(arg(info, i), name, t);
  return given ? t : Tensor::empty(shape, DType::F32, Device::CUDA);
}

void check_square_input(const Tensor& a, int rank) {
  cuda::check_device_tensor(a, "a");
  check_rank(a, "a", rank, rank);
}

// eigh(a, values | null, vectors | null, { clampNonNegative }) → { values, vectors, retriedFloat64 }
KFAC_BINDING(Eigh) {
  Tensor a = get_tensor(arg(info, 0), "a");
  check_square_input(a, 2);
  const int64_t n = a.dim(0);
  bool hv, hq;
  Tensor values = given_or_empty(info, 1, "values", {n}, hv);
  Tensor vectors = given_or_empty(info, 2, "vectors", {n, n}, hq);
  cuda::EighResult r = cuda::eigh(a, values, vectors, read_clamp(get_options(arg(info, 3), "options")));
  Napi::Object res = Napi::Object::New(info.Env());
  res.Set("values", out_or_new(info, 1, hv, values));
  res.Set("vectors", out_or_new(info, 2, hq, vectors));
  res.Set("retriedFloat64", r.retried_double);
  return res;
}

// eighBatched(a, values | null, vectors | null, { clampNonNegative }) → { values, vectors, retried }
KFAC_BINDING(EighBatched) {
  Tensor a = get_tensor(arg(info, 0), "a");
  check_square_input(a, 3);
  const int64_t B = a.dim(0), n = a.dim(1);
  bool hv, hq;
  Tensor values = given_or_empty(info, 1, "values", {B, n}, hv);
  Tensor vectors = given_or_empty(info, 2, "vectors", {B, n, n}, hq);
  int64_t retried = cuda::eigh_batched(a, values, vectors, read_clamp(get_options(arg(info, 3), "options")));
  Napi::Object res = Napi::Object::New(info.Env());
  res.Set("values", out_or_new(info, 1, hv, values));
  res.Set("vectors", out_or_new(info, 2, hq, vectors));
  res.Set("retried", Napi::Number::New(info.Env(), double(retried)));
  return res;
}

// eighRefresh(a, previousVectors, previousValues | null, values | null, vectors | null, options)
KFAC_BINDING(EighRefresh) {
  Tensor a = get_tensor(arg(info, 0), "a");
  check_square_input(a, 2);
  const int64_t n = a.dim(0);
  Tensor prev = get_tensor(arg(info, 1), "previousVectors");
  Tensor pv;
  bool hp = get_optional_tensor(arg(info, 2), "previousValues", pv);
  bool hv, hq;
  Tensor values = given_or_empty(info, 3, "values", {n}, hv);
  Tensor vectors = given_or_empty(info, 4, "vectors", {n, n}, hq);
  Napi::Object o = get_options(arg(info, 5), "options");
  cpu::RefreshOptions opt;
  opt.clamp_nonneg = read_clamp(o);
  Napi::Value v;
  if (!(v = field(o, "maxResidual")).IsUndefined()) opt.max_residual = get_finite(v, "maxResidual");
  if (!(v = field(o, "maxOffDiagonal")).IsUndefined()) opt.max_offdiag = get_finite(v, "maxOffDiagonal");
  cpu::RefreshReport rep = cuda::eigh_refresh(a, prev, hp ? &pv : nullptr, values, vectors, opt);
  Napi::Env env = info.Env();
  Napi::Object res = Napi::Object::New(env);
  res.Set("values", out_or_new(info, 3, hv, values));
  res.Set("vectors", out_or_new(info, 4, hq, vectors));
  res.Set("residual", Napi::Number::New(env, rep.residual));
  res.Set("offDiagonal", Napi::Number::New(env, rep.offdiag));
  res.Set("fellBack", rep.fell_back);
  res.Set("keptPrevious", rep.kept_previous);
  res.Set("retriedFloat64", rep.retried_double);
  res.Set("sweeps", rep.sweeps);
  return res;
}

// preconditionEigen(grad, gradBias | null, QA, dA, QG, dG, damping, out, outBias | null)
KFAC_BINDING(PreconditionEigen) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor QA = get_tensor(arg(info, 2), "QA"), dA = get_tensor(arg(info, 3), "dA");
  Tensor QG = get_tensor(arg(info, 4), "QG"), dG = get_tensor(arg(info, 5), "dG");
  float lambda = get_float(arg(info, 6), "damping");
  Tensor PW = get_tensor(arg(info, 7), "out");
  bool has_pb = get_optional_tensor(arg(info, 8), "outBias", Pb);
  cuda::precondition_eigen(gW, has_b ? &gb : nullptr, QA, dA, QG, dG, lambda, PW, has_pb ? &Pb : nullptr);
  return info.Env().Undefined();
}

// preconditionInverse(grad, gradBias | null, Ainv, Ginv, out, outBias | null)
KFAC_BINDING(PreconditionInverse) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor Ainv = get_tensor(arg(info, 2), "Ainv"), Ginv = get_tensor(arg(info, 3), "Ginv");
  Tensor PW = get_tensor(arg(info, 4), "out");
  bool has_pb = get_optional_tensor(arg(info, 5), "outBias", Pb);
  cuda::precondition_inverse(gW, has_b ? &gb : nullptr, Ainv, Ginv, PW, has_pb ? &Pb : nullptr);
  return info.Env().Undefined();
}

// dampedInverse(a, damping, out) → { out, usedFloat64 }
KFAC_BINDING(DampedInverse) {
  Tensor a = get_tensor(arg(info, 0), "a");
  float delta = get_float(arg(info, 1), "damping");
  Tensor out = get_tensor(arg(info, 2), "out");
  bool f64 = cuda::damped_inverse(a, delta, out);
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("out", arg(info, 2));
  r.Set("usedFloat64", f64);
  return r;
}

// preconditionInverseFactors(grad, gradBias | null, A, G, damping, out, outBias | null) → { pi, dampA, dampG, usedFloat64 }
KFAC_BINDING(PreconditionInverseFactors) {
  Tensor gW = get_tensor(arg(info, 0), "grad");
  Tensor gb, Pb;
  bool has_b = get_optional_tensor(arg(info, 1), "gradBias", gb);
  Tensor A = get_tensor(arg(info, 2), "A"), G = get_tensor(arg(info, 3), "G");
  float lambda = get_float(arg(info, 4), "damping");
  Tensor PW = get_tensor(arg(info, 5), "out");
  bool has_pb = get_optional_tensor(arg(info, 6), "outBias", Pb);
  ops::PiDampingResult r = cuda::precondition_inverse_factors(gW, has_b ? &gb : nullptr, A, G, lambda, PW, has_pb ? &Pb : nullptr);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("pi", Napi::Number::New(env, r.pi));
  o.Set("dampA", Napi::Number::New(env, r.damp_A));
  o.Set("dampG", Napi::Number::New(env, r.damp_G));
  o.Set("usedFloat64", r.used_f64);
  return o;
}

std::vector<Tensor> tensor_list(Napi::Value v, const char* name) {
  if (!v.IsArray()) throw_arg(ErrorCode::InvalidArgument, name, "an array of tensors", describe(v));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Tensor> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    std::string n = std::string(name) + "[" + std::to_string(i) + "]";
    out.push_back(get_tensor(a.Get(i), n.c_str()));
  }
  return out;
}

Napi::Array numbers(Napi::Env env, const std::vector<double>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, v[i]));
  return a;
}

// clipNewtonStep(tensors, { mode, maxNorm, c, lr, grads }) → { norms, totalNorm, scales, clipped, anyClipped, vg }
KFAC_BINDING(ClipNewtonStep) {
  Napi::Env env = info.Env();
  std::vector<Tensor> steps = tensor_list(arg(info, 0), "tensors");
  Napi::Object o = get_options(arg(info, 1), "options");
  ops::ClipOptions opt;
  Napi::Value m = field(o, "mode");
  std::string mode = m.IsUndefined() ? "global" : (m.IsString() ? m.As<Napi::String>().Utf8Value() : "");
  if (mode == "global") opt.mode = ops::ClipMode::Global;
  else if (mode == "per-tensor") opt.mode = ops::ClipMode::PerTensor;
  else if (mode == "fisher") opt.mode = ops::ClipMode::Fisher;
  else throw_arg(ErrorCode::InvalidArgument, "mode", "'global', 'per-tensor' or 'fisher'", m.IsString() ? "'" + mode + "'" : describe(m));
  std::vector<Tensor> grads;
  if (opt.mode == ops::ClipMode::Fisher) {
    opt.c = get_number(field(o, "c"), "c");
    opt.lr = get_number(field(o, "lr"), "lr");
    grads = tensor_list(field(o, "grads"), "grads");
  } else {
    opt.max_norm = get_number(field(o, "maxNorm"), "maxNorm");
  }
  ops::ClipResult r = cuda::clip_newton_step(steps, opt.mode == ops::ClipMode::Fisher ? &grads : nullptr, opt);
  Napi::Object out = Napi::Object::New(env);
  out.Set("norms", numbers(env, r.norms));
  out.Set("totalNorm", Napi::Number::New(env, r.total_norm));
  out.Set("scales", numbers(env, r.scales));
  Napi::Array clipped = Napi::Array::New(env, r.clipped.size());
  for (size_t i = 0; i < r.clipped.size(); ++i) clipped.Set(uint32_t(i), Napi::Boolean::New(env, r.clipped[i]));
  out.Set("clipped", clipped);
  out.Set("anyClipped", r.any_clipped);
  out.Set("vg", Napi::Number::New(env, r.vg));
  return out;
}

double num(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_finite(v, key);
}

bool flag(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_bool(v, key);
}

// adamwStep(param, grad, expAvg, expAvgSq, maxExpAvgSq | null, options)
KFAC_BINDING(AdamwStep) {
  Tensor param = get_tensor(arg(info, 0), "param"), grad = get_tensor(arg(info, 1), "grad");
  Tensor m = get_tensor(arg(info, 2), "expAvg"), v = get_tensor(arg(info, 3), "expAvgSq"), vmax;
  bool has_max = get_optional_tensor(arg(info, 4), "maxExpAvgSq", vmax);
  Napi::Object o = get_options(arg(info, 5), "options");
  cpu::AdamWParams p;
  p.lr = num(o, "lr", p.lr);
  p.beta1 = num(o, "beta1", p.beta1);
  p.beta2 = num(o, "beta2", p.beta2);
  p.eps = num(o, "eps", p.eps);
  p.weight_decay = num(o, "weightDecay", p.weight_decay);
  p.step = int64_t(num(o, "step", 1));
  p.amsgrad = flag(o, "amsgrad", false);
  p.maximize = flag(o, "maximize", false);
  cuda::adamw_step(param, grad, m, v, has_max ? &vmax : nullptr, p);
  return info.Env().Undefined();
}

// sgdStep(param, grad, momentumBuffer | null, options)
KFAC_BINDING(SgdStep) {
  Tensor param = get_tensor(arg(info, 0), "param"), grad = get_tensor(arg(info, 1), "grad"), buf;
  bool has_buf = get_optional_tensor(arg(info, 2), "momentumBuffer", buf);
  Napi::Object o = get_options(arg(info, 3), "options");
  cpu::SgdParams p;
  p.lr = num(o, "lr", p.lr);
  p.momentum = num(o, "momentum", 0);
  p.dampening = num(o, "dampening", 0);
  p.weight_decay = num(o, "weightDecay", 0);
  p.nesterov = flag(o, "nesterov", false);
  p.maximize = flag(o, "maximize", false);
  p.first_step = flag(o, "firstStep", true);
  cuda::sgd_step(param, grad, has_buf ? &buf : nullptr, p);
  return info.Env().Undefined();
}

}  // namespace

void register_cuda(Napi::Env env, Napi::Object exports) {
  cuda::register_allocator();
  Napi::Object c = Napi::Object::New(env);
  auto fn = [&](const char* name, Napi::Value (*f)(const Napi::CallbackInfo&)) {
    c.Set(name, Napi::Function::New(env, f, name));
  };
  fn("info", CudaInfo);
  fn("upload", Upload);
  fn("download", Download);
  fn("empty", Empty);
  fn("zeros", Zeros);
  fn("copy", Copy);
  fn("synchronize", Synchronize);
  fn("matmul", Matmul);
  fn("factorUpdate", FactorUpdate);
  fn("eigh", Eigh);
  fn("eighBatched", EighBatched);
  fn("eighRefresh", EighRefresh);
  fn("preconditionEigen", PreconditionEigen);
  fn("preconditionInverse", PreconditionInverse);
  fn("dampedInverse", DampedInverse);
  fn("preconditionInverseFactors", PreconditionInverseFactors);
  fn("clipNewtonStep", ClipNewtonStep);
  fn("adamwStep", AdamwStep);
  fn("sgdStep", SgdStep);
  exports.Set("cuda", c);
}

}  // namespace kfac::napi
