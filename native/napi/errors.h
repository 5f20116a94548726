// Turning native failures into the library's typed JS errors.
#pragma once
#include <napi.h>

#include "../core/error.h"

namespace kfac::napi {

// Per-environment state of the addon (safe with worker threads).
struct AddonData {
  Napi::FunctionReference tensor_ctor;
  Napi::FunctionReference error_factory;  // (code, message, argument, expected, got) => Error
};

AddonData& addon_data(Napi::Env env);

// Builds the JS error for e (through the registered factory when there is one).
Napi::Error to_js_error(Napi::Env env, const kfac::Error& e);

// An out-of-memory error of the binding `op` says which call was allocating: "<op>: <message>"
// (the JS name: the binding's with its first letter lowered, e.g. linearForward).
kfac::Error in_op(const char* op, const kfac::Error& e);

// Runs body and converts every C++ exception into a thrown JS error.
template <class F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body, const char* op = nullptr) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const kfac::Error& e) {
    throw to_js_error(env, e.code() == ErrorCode::OutOfMemory && op ? in_op(op, e) : e);
  } catch (const std::bad_alloc&) {
    throw to_js_error(env, in_op(op, kfac::Error(ErrorCode::OutOfMemory, "out of memory")));
  } catch (const std::exception& e) {
    throw to_js_error(env, kfac::Error(ErrorCode::Internal, std::string("internal error: ") + e.what()));
  } catch (...) {
    throw to_js_error(env, kfac::Error(ErrorCode::Internal, "internal error: unknown exception"));
  }
}

// Declares a guarded binding: KFAC_BINDING(Name) { ... return value; }
#define KFAC_BINDING(name)                                                   \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info);            \
  static Napi::Value name(const Napi::CallbackInfo& info) {                  \
    return ::kfac::napi::guarded(info, [&] { return name##_impl(info); }, #name); \
  }                                                                          \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info)

Napi::Value SetErrorFactory(const Napi::CallbackInfo& info);

}  // namespace kfac::napi
