#include "errors.h"

namespace kfac::napi {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Error to_js_error(Napi::Env env, const kfac::Error& e) {
  AddonData& data = addon_data(env);
  const char* code = error_code_name(e.code());
  if (!data.error_factory.IsEmpty()) {
    Napi::Value v = data.error_factory.Call({
        Napi::String::New(env, code),
        Napi::String::New(env, e.what()),
        Napi::String::New(env, e.argument()),
        Napi::String::New(env, e.expected()),
        Napi::String::New(env, e.got()),
    });
    if (v.IsObject()) return Napi::Error(env, v);
  }
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, code));
  if (!e.argument().empty()) err.Set("argument", Napi::String::New(env, e.argument()));
  return err;
}

kfac::Error in_op(const char* op, const kfac::Error& e) {
  if (!op || !*op) return e;
  std::string name(op);
  if (name[0] >= 'A' && name[0] <= 'Z') name[0] = static_cast<char>(name[0] - 'A' + 'a');
  return kfac::Error(e.code(), name + ": " + e.what(), e.argument(), e.expected(), e.got());
}

Napi::Value SetErrorFactory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction())
    throw to_js_error(env, kfac::Error(ErrorCode::InvalidArgument,
                                       "factory: expected a function, got something else",
                                       "factory", "a function", "something else"));
  addon_data(env).error_factory = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace kfac::napi
