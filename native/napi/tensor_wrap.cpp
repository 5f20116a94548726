#include "tensor_wrap.h"

#include <cstring>

#include "../core/dispatch.h"
#include "../cpu/bf16.h"
#include "../cpu/elementwise.h"
#include "../cpu/random.h"
#include "args.h"
#include "errors.h"

namespace kfac::napi {

namespace {

// Type tag of tensor handles (random 128-bit value, fixed for this addon). The CUDA build
// has its own, so a handle of the other addon (both may be loaded) is refused, not misread.
#ifdef KFAC_WITH_CUDA
const napi_type_tag kTensorTag = {0x6b666163a1c0ffeeULL, 0x6375646174656e73ULL};
#else
const napi_type_tag kTensorTag = {0x6b666163a1c0ffeeULL, 0x7465736f72b16b1dULL};
#endif

// Host-side access (copies into or out of a Float32Array) needs CPU memory in float32 or
// bfloat16 (converted on the way: widening is exact, narrowing rounds to nearest even).
void require_host(const kfac::Tensor& t) {
  if (t.device() != kfac::Device::CPU)
    throw_arg(ErrorCode::Device, "tensor", "a cpu tensor (move it with t.to('cpu') first)", device_name(t.device()));
  if (t.dtype() != kfac::DType::F32 && t.dtype() != kfac::DType::BF16)
    throw_arg(ErrorCode::DType, "tensor", "float32 or bfloat16 (convert it with t.to('cpu', { dtype: 'float32' }) first)",
              dtype_name(t.dtype()));
}

// { device, dtype } of a factory's options (cpu, float32 by default).
struct Placement {
  kfac::Device device = kfac::Device::CPU;
  kfac::DType dtype = kfac::DType::F32;
};
Placement get_placement(Napi::Value v) {
  Napi::Object o = get_options(v, "options");
  return {get_device(field(o, "device"), "device", kfac::Device::CPU),
          get_dtype(field(o, "dtype"), "dtype", kfac::DType::F32)};
}

Napi::Value guard(const Napi::CallbackInfo& info, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
  return guarded(info, [&] { return fn(info); });
}

// A token only native code can make: the constructor refuses to run without it.
struct ConstructToken {};
ConstructToken g_token;

}  // namespace

void TensorWrap::init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(
      env, "NativeTensor",
      {
          StaticMethod("fromFloat32Array", &TensorWrap::FromFloat32Array),
          StaticMethod("empty", &TensorWrap::Empty),
          StaticMethod("zeros", &TensorWrap::Zeros),
          StaticMethod("randn", &TensorWrap::Randn),
          StaticMethod("randUniform", &TensorWrap::RandUniform),
          InstanceAccessor("shape", &TensorWrap::Shape, nullptr),
          InstanceAccessor("dtype", &TensorWrap::DType, nullptr),
          InstanceAccessor("device", &TensorWrap::Device, nullptr),
          InstanceAccessor("nbytes", &TensorWrap::NBytes, nullptr),
          InstanceAccessor("disposed", &TensorWrap::Disposed, nullptr),
          InstanceMethod("dispose", &TensorWrap::Dispose),
          InstanceMethod("toFloat32Array", &TensorWrap::ToFloat32Array),
          InstanceMethod("copyFromFloat32Array", &TensorWrap::CopyFromFloat32Array),
          InstanceMethod("reshape", &TensorWrap::Reshape),
          InstanceMethod("clone", &TensorWrap::Clone),
          InstanceMethod("to", &TensorWrap::To),
      });
  addon_data(env).tensor_ctor = Napi::Persistent(ctor);
  exports.Set("NativeTensor", ctor);
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  bool ok = info.Length() == 1 && info[0].IsExternal() &&
            info[0].As<Napi::External<ConstructToken>>().Data() == &g_token;
  if (!ok)
    throw to_js_error(info.Env(),
                      kfac::Error(ErrorCode::InvalidArgument,
                                  "NativeTensor cannot be constructed directly; use "
                                  "Tensor.from, Tensor.zeros or Tensor.randn",
                                  "new NativeTensor", "a factory call", "a constructor call"));
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
}

TensorWrap::~TensorWrap() = default;

void TensorWrap::Finalize(Napi::Env env) { release(env); }

void TensorWrap::release(Napi::Env env) {
  tensor_ = kfac::Tensor();
  if (reported_bytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -reported_bytes_);
    reported_bytes_ = 0;
  }
}

Napi::Object TensorWrap::wrap(Napi::Env env, const kfac::Tensor& t, bool owns_memory) {
  Napi::Object obj = addon_data(env).tensor_ctor.New({Napi::External<ConstructToken>::New(env, &g_token)});
  TensorWrap* w = Napi::ObjectWrap<TensorWrap>::Unwrap(obj);
  w->tensor_ = t;
  if (owns_memory && t.nbytes()) {
    w->reported_bytes_ = int64_t(t.nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, w->reported_bytes_);
  }
  return obj;
}

TensorWrap* TensorWrap::unwrap(Napi::Value v) {
  if (!v.IsObject()) return nullptr;
  Napi::Object o = v.As<Napi::Object>();
  if (!o.CheckTypeTag(&kTensorTag)) return nullptr;
  return Napi::ObjectWrap<TensorWrap>::Unwrap(o);
}

Napi::Value TensorWrap::FromFloat32Array(const Napi::CallbackInfo& info) {
  return guard(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Napi::Value d = arg(info, 0);
    if (!d.IsTypedArray() || d.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_arg(ErrorCode::InvalidArgument, "data", "a Float32Array", describe(d));
    Napi::Float32Array data = d.As<Napi::Float32Array>();
    kfac::Shape shape = get_shape(arg(info, 1), "shape");
    int64_t n = shape_numel(shape);
    if (int64_t(data.ElementLength()) != n)
      throw_arg(ErrorCode::Shape, "data", std::to_string(n) + " values for shape " + shape_str(shape),
                std::to_string(data.ElementLength()) + " values");
    kfac::Tensor t = kfac::Tensor::empty(shape);
    if (n) std::memcpy(t.raw(), data.Data(), size_t(n) * sizeof(float));
    return wrap(info.Env(), t);
  });
}

Napi::Value TensorWrap::Empty(const Napi::CallbackInfo& info) {
  return guard(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Placement p = get_placement(arg(info, 1));
    return wrap(info.Env(), kfac::Tensor::empty(get_shape(arg(info, 0), "shape"), p.dtype, p.device));
  });
}

Napi::Value TensorWrap::Zeros(const Napi::CallbackInfo& info) {
  return guard(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    Placement p = get_placement(arg(info, 1));
    kfac::Shape shape = get_shape(arg(info, 0), "shape");
    if (p.device != kfac::Device::CPU) {
      kfac::Tensor t = kfac::Tensor::zeros(shape, p.dtype, p.device);
      kfac::synchronize(p.device);
      return wrap(info.Env(), t);
    }
    kfac::Tensor t = kfac::Tensor::empty(shape, p.dtype);
    if (p.dtype == kfac::DType::F32) cpu::fill(t.f32(), t.numel(), 0.f);
    else std::memset(t.raw(), 0, t.nbytes());
    return wrap(info.Env(), t);
  });
}

// randn(shape, seed, mean = 0, std = 1)
Napi::Value TensorWrap::Randn(const Napi::CallbackInfo& info) {
  return guard(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    kfac::Shape shape = get_shape(arg(info, 0), "shape");
    uint64_t seed = uint64_t(get_int(arg(info, 1), "seed", 0, 9007199254740991LL));
    float mean = info.Length() > 2 && !info[2].IsUndefined() ? get_float(info[2], "mean") : 0.f;
    float sd = info.Length() > 3 && !info[3].IsUndefined() ? get_float(info[3], "std") : 1.f;
    if (sd < 0) throw_arg(ErrorCode::InvalidArgument, "std", "a non-negative number", std::to_string(sd));
    kfac::Tensor t = kfac::Tensor::empty(shape);
    cpu::randn(t.f32(), t.numel(), seed, mean, sd);
    return wrap(info.Env(), t);
  });
}

// randUniform(shape, seed, lo = 0, hi = 1)
Napi::Value TensorWrap::RandUniform(const Napi::CallbackInfo& info) {
  return guard(info, [](const Napi::CallbackInfo& info) -> Napi::Value {
    kfac::Shape shape = get_shape(arg(info, 0), "shape");
    uint64_t seed = uint64_t(get_int(arg(info, 1), "seed", 0, 9007199254740991LL));
    float lo = info.Length() > 2 && !info[2].IsUndefined() ? get_float(info[2], "lo") : 0.f;
    float hi = info.Length() > 3 && !info[3].IsUndefined() ? get_float(info[3], "hi") : 1.f;
    if (!(lo < hi)) throw_arg(ErrorCode::InvalidArgument, "hi", "a number above lo", std::to_string(hi));
    kfac::Tensor t = kfac::Tensor::empty(shape);
    cpu::rand_uniform(t.f32(), t.numel(), seed, lo, hi);
    return wrap(info.Env(), t);
  });
}

Napi::Value TensorWrap::Shape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    Napi::Array a = Napi::Array::New(info.Env(), tensor_.shape().size());
    for (size_t i = 0; i < tensor_.shape().size(); ++i)
      a.Set(uint32_t(i), Napi::Number::New(info.Env(), double(tensor_.shape()[i])));
    return a;
  });
}

Napi::Value TensorWrap::DType(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    return Napi::String::New(info.Env(), dtype_name(tensor_.dtype()));
  });
}

Napi::Value TensorWrap::Device(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    return Napi::String::New(info.Env(), device_name(tensor_.device()));
  });
}

Napi::Value TensorWrap::NBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), disposed() ? 0.0 : double(tensor_.nbytes()));
}

Napi::Value TensorWrap::Disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  release(info.Env());  // idempotent
  return info.Env().Undefined();
}

Napi::Value TensorWrap::ToFloat32Array(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    require_host(tensor_);
    size_t n = size_t(tensor_.numel());
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), n);
    if (n && tensor_.dtype() == kfac::DType::BF16) cpu::convert_bf16_to_f32(static_cast<const uint16_t*>(tensor_.raw()), out.Data(), int64_t(n));
    else if (n) std::memcpy(out.Data(), tensor_.raw(), n * sizeof(float));
    return out;
  });
}

Napi::Value TensorWrap::CopyFromFloat32Array(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    require_host(tensor_);
    Napi::Value d = arg(info, 0);
    if (!d.IsTypedArray() || d.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_arg(ErrorCode::InvalidArgument, "data", "a Float32Array", describe(d));
    Napi::Float32Array data = d.As<Napi::Float32Array>();
    if (int64_t(data.ElementLength()) != tensor_.numel())
      throw_arg(ErrorCode::Shape, "data", std::to_string(tensor_.numel()) + " values",
                std::to_string(data.ElementLength()) + " values");
    if (tensor_.numel() && tensor_.dtype() == kfac::DType::BF16)
      cpu::convert_f32_to_bf16(data.Data(), static_cast<uint16_t*>(tensor_.raw()), tensor_.numel());
    else if (tensor_.numel()) std::memcpy(tensor_.raw(), data.Data(), tensor_.nbytes());
    tensor_.mark_written();  // after the write: data derived from the old contents (weight panels) is stale
    return info.Env().Undefined();
  });
}

Napi::Value TensorWrap::Reshape(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    return wrap(info.Env(), tensor_.reshape(get_shape(arg(info, 0), "shape")), false);
  });
}

Napi::Value TensorWrap::Clone(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    kfac::Tensor t = kfac::Tensor::empty(tensor_.shape(), tensor_.dtype(), tensor_.device());
    if (t.nbytes() == 0) {
    } else if (tensor_.device() == kfac::Device::CPU) {
      std::memcpy(t.raw(), tensor_.raw(), t.nbytes());
    } else {
      kfac::device_allocator(tensor_.device()).copy(t.raw(), tensor_.raw(), t.nbytes());
      kfac::synchronize(t.device());
    }
    return wrap(info.Env(), t);
  });
}

// to(device, { dtype }) → a new tensor on `device` in `dtype` (a copy even when nothing
// changes). The dtype conversion runs on the device that holds float32 data: before an
// upload, after a download.
Napi::Value TensorWrap::To(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    if (disposed()) throw_arg(ErrorCode::Disposed, "tensor", "a live tensor", "a disposed tensor");
    kfac::Device dev = get_device(arg(info, 0), "device", tensor_.device());
    kfac::DType dt = get_dtype(field(get_options(arg(info, 1), "options"), "dtype"), "dtype", tensor_.dtype());
    kfac::Tensor t = tensor_;
    if (t.dtype() != dt && dt != kfac::DType::F32) t = kfac::ops::cast(t, dt);  // narrow first: less to move
    if (t.device() != dev) t = kfac::to_device(t, dev);
    if (t.dtype() != dt) t = kfac::ops::cast(t, dt);
    if (t.raw() == tensor_.raw()) {  // nothing changed: still a copy
      kfac::Tensor c = kfac::Tensor::empty(t.shape(), t.dtype(), t.device());
      if (dev == kfac::Device::CPU) std::memcpy(c.raw(), t.raw(), t.nbytes());
      else kfac::device_allocator(dev).copy(c.raw(), t.raw(), t.nbytes());
      t = c;
    }
    kfac::synchronize(dev);
    return wrap(info.Env(), t);
  });
}

}  // namespace kfac::napi
