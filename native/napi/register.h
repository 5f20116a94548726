// One registration function per op family; addon.cpp calls each once.
#pragma once
#include <napi.h>

namespace kfac::napi {

void register_system(Napi::Env env, Napi::Object exports);
void register_basic_ops(Napi::Env env, Napi::Object exports);
void register_nn_ops(Napi::Env env, Napi::Object exports);
void register_optim_ops(Napi::Env env, Napi::Object exports);
void register_eigh_ops(Napi::Env env, Napi::Object exports);
void register_kfac_ops(Napi::Env env, Napi::Object exports);
void register_dtype_ops(Napi::Env env, Napi::Object exports);
// Only in the CUDA build (native/napi/cuda/, compiled by CMakeLists.txt).
void register_cuda(Napi::Env env, Napi::Object exports);

}  // namespace kfac::napi
