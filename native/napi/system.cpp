// Bindings that describe and configure the native runtime.
#include <napi.h>

#include "../cpu/cpu_features.h"
#include "../cpu/threadpool.h"
#include "args.h"
#include "errors.h"
#include "register.h"

#ifndef KFAC_VERSION
#define KFAC_VERSION "0.0.0"
#endif

namespace kfac::napi {

namespace {

KFAC_BINDING(Info) {
  Napi::Env env = info.Env();
  const cpu::CpuFeatures& f = cpu::cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", KFAC_VERSION);
  o.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  Napi::Array backends = Napi::Array::New(env, 1);
  backends.Set(uint32_t(0), "cpu");
  o.Set("backends", backends);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("brand", f.brand);
  cpu.Set("avx2", f.avx2);
  cpu.Set("fma", f.fma);
  cpu.Set("avx512f", f.avx512f);
  cpu.Set("kernel", cpu::kernel_isa_name(cpu::kernel_isa()));
  cpu.Set("threads", Napi::Number::New(env, cpu::num_threads()));
  cpu.Set("defaultThreads", Napi::Number::New(env, cpu::default_threads()));
  o.Set("cpu", cpu);
  return o;
}

// setNumThreads(n): 0 restores the default
KFAC_BINDING(SetNumThreads) {
  cpu::set_num_threads(int(get_int(arg(info, 0), "threads", 0, 256)));
  return Napi::Number::New(info.Env(), cpu::num_threads());
}

// setCpuKernel('auto' | 'avx512' | 'avx2' | 'generic')
KFAC_BINDING(SetCpuKernel) {
  Napi::Value v = arg(info, 0);
  if (!v.IsString()) throw_arg(ErrorCode::InvalidArgument, "kernel", "'auto', 'avx512', 'avx2' or 'generic'", describe(v));
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "auto") cpu::reset_kernel_isa();
  else if (s == "avx512") cpu::set_kernel_isa(cpu::KernelIsa::Avx512);
  else if (s == "avx2") cpu::set_kernel_isa(cpu::KernelIsa::Avx2);
  else if (s == "generic") cpu::set_kernel_isa(cpu::KernelIsa::Generic);
  else throw_arg(ErrorCode::InvalidArgument, "kernel", "'auto', 'avx512', 'avx2' or 'generic'", "'" + s + "'");
  return Napi::String::New(info.Env(), cpu::kernel_isa_name(cpu::kernel_isa()));
}

const Binding kBindings[] = {
    {"info", Info},
    {"setNumThreads", SetNumThreads},
    {"setCpuKernel", SetCpuKernel},
    {"setErrorFactory", SetErrorFactory},
};

}  // namespace

void register_system(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi
