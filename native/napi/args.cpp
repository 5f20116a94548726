#include "args.h"

#include <cfloat>
#include <cmath>

#include "tensor_wrap.h"

namespace kfac::napi {

std::string describe(Napi::Value v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: {
      double d = v.As<Napi::Number>().DoubleValue();
      if (std::isnan(d)) return "NaN";
      return "the number " + v.ToString().Utf8Value();
    }
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    case napi_external: return "an external";
    case napi_object:
      if (v.IsArray()) return "an array";
      if (v.IsTypedArray()) return "a typed array";
      return "an object";
  }
  return "an unknown value";
}

Napi::Value arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

kfac::Tensor get_tensor(Napi::Value v, const char* name) {
  TensorWrap* w = TensorWrap::unwrap(v);
  if (!w) throw_arg(ErrorCode::InvalidArgument, name, "a Tensor", describe(v));
  if (w->disposed()) throw_arg(ErrorCode::Disposed, name, "a live tensor", "a disposed tensor");
  return w->tensor();
}

bool get_optional_tensor(Napi::Value v, const char* name, kfac::Tensor& out) {
  if (v.IsUndefined() || v.IsNull()) return false;
  out = get_tensor(v, name);
  return true;
}

double get_number(Napi::Value v, const char* name) {
  if (!v.IsNumber()) throw_arg(ErrorCode::InvalidArgument, name, "a number", describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

double get_finite(Napi::Value v, const char* name) {
  double d = get_number(v, name);
  if (!std::isfinite(d)) throw_arg(ErrorCode::NotFinite, name, "a finite number", describe(v));
  return d;
}

float get_float(Napi::Value v, const char* name) {
  double d = get_finite(v, name);
  if (std::fabs(d) > double(FLT_MAX))
    throw_arg(ErrorCode::InvalidArgument, name, "a number within float32 range", describe(v));
  return float(d);
}

int64_t get_int(Napi::Value v, const char* name, int64_t lo, int64_t hi) {
  double d = get_number(v, name);
  if (!std::isfinite(d) || d != std::floor(d) || d < double(lo) || d > double(hi))
    throw_arg(ErrorCode::InvalidArgument, name,
              "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", describe(v));
  return int64_t(d);
}

bool get_bool(Napi::Value v, const char* name) {
  if (!v.IsBoolean()) throw_arg(ErrorCode::InvalidArgument, name, "a boolean", describe(v));
  return v.As<Napi::Boolean>().Value();
}

Napi::Object get_options(Napi::Value v, const char* name) {
  if (v.IsUndefined()) return Napi::Object::New(v.Env());
  if (!v.IsObject() || v.IsArray() || v.IsFunction())
    throw_arg(ErrorCode::InvalidArgument, name, "an options object", describe(v));
  return v.As<Napi::Object>();
}

Napi::Value field(Napi::Object o, const char* key) { return o.Get(key); }

kfac::Shape get_shape(Napi::Value v, const char* name) {
  if (!v.IsArray()) throw_arg(ErrorCode::Shape, name, "an array of dimensions", describe(v));
  Napi::Array a = v.As<Napi::Array>();
  uint32_t n = a.Length();
  if (n > uint32_t(kMaxRank))
    throw_arg(ErrorCode::Shape, name, "at most " + std::to_string(kMaxRank) + " dimensions",
              std::to_string(n) + " dimensions");
  kfac::Shape s;
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value d = a.Get(i);
    if (!d.IsNumber())
      throw_arg(ErrorCode::Shape, name, "integer dimensions", "dimension " + std::to_string(i) + " = " + describe(d));
    double x = d.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(x) || x != std::floor(x) || x < 0 || x > 9007199254740991.0)
      throw_arg(ErrorCode::Shape, name, "non-negative integer dimensions",
                "dimension " + std::to_string(i) + " = " + describe(d));
    s.push_back(int64_t(x));
  }
  shape_numel(s);  // rejects overflow
  return s;
}

std::string get_string(Napi::Value v, const char* name) {
  if (!v.IsString()) throw_arg(ErrorCode::InvalidArgument, name, "a string", describe(v));
  return v.As<Napi::String>().Utf8Value();
}

std::vector<kfac::Tensor> get_tensor_list(Napi::Value v, const char* name) {
  if (!v.IsArray()) throw_arg(ErrorCode::InvalidArgument, name, "an array of tensors", describe(v));
  Napi::Array a = v.As<Napi::Array>();
  std::vector<kfac::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    std::string n = std::string(name) + "[" + std::to_string(i) + "]";
    out.push_back(get_tensor(a.Get(i), n.c_str()));
  }
  return out;
}

int get_choice(Napi::Value v, const char* name, std::initializer_list<const char*> choices, int fallback) {
  if (v.IsUndefined()) return fallback;
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  std::string want;
  int i = 0;
  for (const char* c : choices) {
    if (s == c) return i;
    want += (i == 0 ? "'" : i + 1 == int(choices.size()) ? " or '" : ", '") + std::string(c) + "'";
    ++i;
  }
  throw_arg(ErrorCode::InvalidArgument, name, want, v.IsString() ? "'" + s.substr(0, 40) + "'" : describe(v));
}

kfac::Device get_device(Napi::Value v, const char* name, kfac::Device fallback) {
  return get_choice(v, name, {"cpu", "cuda"}, fallback == kfac::Device::CPU ? 0 : 1) == 0 ? kfac::Device::CPU
                                                                                       : kfac::Device::CUDA;
}

kfac::DType get_dtype(Napi::Value v, const char* name, kfac::DType fallback) {
  return get_choice(v, name, {"float32", "bfloat16"}, fallback == kfac::DType::F32 ? 0 : 1) == 0 ? kfac::DType::F32
                                                                                                : kfac::DType::BF16;
}

double opt_number(Napi::Object o, const char* key, double fallback) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_finite(v, key);
}

float opt_float(Napi::Object o, const char* key, float fallback) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_float(v, key);
}

int64_t opt_int(Napi::Object o, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_int(v, key, lo, hi);
}

bool opt_flag(Napi::Object o, const char* key, bool fallback) {
  Napi::Value v = field(o, key);
  return v.IsUndefined() ? fallback : get_bool(v, key);
}

Napi::Array number_array(Napi::Env env, const std::vector<double>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, v[i]));
  return a;
}

}  // namespace kfac::napi
