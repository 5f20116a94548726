// Tensor handles as wrapped JS objects. Each carries a type tag, so a foreign object
// passed where a tensor is expected is rejected instead of being reinterpreted.
#pragma once
#include <napi.h>

#include "../core/tensor.h"

namespace kfac::napi {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static void init(Napi::Env env, Napi::Object exports);
  // A new JS handle that owns t (reports t's bytes to V8 when `owns_memory`).
  static Napi::Object wrap(Napi::Env env, const kfac::Tensor& t, bool owns_memory = true);
  // The wrapper behind v, or nullptr when v is not one of ours.
  static TensorWrap* unwrap(Napi::Value v);

  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;
  void Finalize(Napi::Env env) override;

  bool disposed() const { return !tensor_.defined(); }
  const kfac::Tensor& tensor() const { return tensor_; }

 private:
  static Napi::Value FromFloat32Array(const Napi::CallbackInfo& info);
  static Napi::Value Empty(const Napi::CallbackInfo& info);
  static Napi::Value Zeros(const Napi::CallbackInfo& info);
  static Napi::Value Randn(const Napi::CallbackInfo& info);
  static Napi::Value RandUniform(const Napi::CallbackInfo& info);

  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value NBytes(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value ToFloat32Array(const Napi::CallbackInfo& info);
  Napi::Value CopyFromFloat32Array(const Napi::CallbackInfo& info);
  Napi::Value Reshape(const Napi::CallbackInfo& info);
  Napi::Value Clone(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);

  void release(Napi::Env env);

  kfac::Tensor tensor_;
  int64_t reported_bytes_ = 0;
};

}  // namespace kfac::napi
