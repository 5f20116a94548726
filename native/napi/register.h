// One registration function per op family; addon.cpp calls each once. Each family lists
// its bindings in one table (name → function) and registers it with register_table.
#pragma once
#include <napi.h>

#include <cstddef>

namespace kfac::napi {

struct Binding {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

template <size_t N>
void register_table(Napi::Env env, Napi::Object exports, const Binding (&table)[N]) {
  for (const Binding& b : table) exports.Set(b.name, Napi::Function::New(env, b.fn, b.name));
}

void register_system(Napi::Env env, Napi::Object exports);
void register_basic_ops(Napi::Env env, Napi::Object exports);
void register_nn_ops(Napi::Env env, Napi::Object exports);
void register_optim_ops(Napi::Env env, Napi::Object exports);
void register_eigh_ops(Napi::Env env, Napi::Object exports);
void register_kfac_ops(Napi::Env env, Napi::Object exports);
void register_dtype_ops(Napi::Env env, Napi::Object exports);
// Device transfers, the op list and the CPU loopback (both builds).
void register_device(Napi::Env env, Napi::Object exports);
// Only in the CUDA build (native/napi/cuda/, compiled by CMakeLists.txt): registers the
// CUDA kernels into the op table and adds exports.cuda = { info, memory, synchronize }.
void register_cuda(Napi::Env env, Napi::Object exports);

}  // namespace kfac::napi
