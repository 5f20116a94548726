// Bindings that describe and configure the native runtime.
#include <napi.h>

#include "../core/derived.h"
#include "../core/host_allocator.h"
#include "../cpu/bf16.h"
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
  cpu.Set("avx512bf16", f.avx512bf16);
  cpu.Set("amxBf16", f.amx_bf16);
  cpu.Set("kernel", cpu::kernel_isa_name(cpu::kernel_isa()));
  cpu.Set("bf16Kernel", cpu::bf16_kernel_name(cpu::bf16_kernel()));
  cpu.Set("bf16KernelRequest", cpu::bf16_kernel_request());
  const std::string bf16_warning = cpu::bf16_kernel_warning();
  if (!bf16_warning.empty()) cpu.Set("bf16KernelWarning", bf16_warning);
  cpu.Set("threads", Napi::Number::New(env, cpu::num_threads()));
  cpu.Set("defaultThreads", Napi::Number::New(env, cpu::default_threads()));
  o.Set("cpu", cpu);
  const HostAllocatorStats m = host_allocator_stats();
  Napi::Object mem = Napi::Object::New(env);
  mem.Set("allocatedBytes", Napi::Number::New(env, double(m.allocated_bytes)));
  mem.Set("cachedBytes", Napi::Number::New(env, double(m.cached_bytes)));
  mem.Set("peakAllocatedBytes", Napi::Number::New(env, double(m.peak_allocated_bytes)));
  mem.Set("cacheLimitBytes", Napi::Number::New(env, double(m.cache_limit_bytes)));
  mem.Set("allocations", Napi::Number::New(env, double(m.allocations)));
  mem.Set("cacheHits", Napi::Number::New(env, double(m.cache_hits)));
  mem.Set("systemAllocations", Napi::Number::New(env, double(m.system_allocations)));
  mem.Set("releases", Napi::Number::New(env, double(m.releases)));
  const DerivedStats d = derived_stats();
  Napi::Object panels = Napi::Object::New(env);
  panels.Set("enabled", Napi::Boolean::New(env, derived_enabled()));
  panels.Set("entries", Napi::Number::New(env, double(d.entries)));
  panels.Set("bytes", Napi::Number::New(env, double(d.bytes)));
  panels.Set("hits", Napi::Number::New(env, double(d.hits)));
  panels.Set("misses", Napi::Number::New(env, double(d.misses)));
  mem.Set("weightPanels", panels);
  o.Set("memory", mem);
  return o;
}

// setNumThreads(n): 0 restores the default
KFAC_BINDING(SetNumThreads) {
  cpu::set_num_threads(int(get_int(arg(info, 0), "threads", 0, 256)));
  return Napi::Number::New(info.Env(), cpu::num_threads());
}

// releaseCachedMemory(): drops the cached weight panels, then returns the cached host blocks
// to the system; the bytes released
KFAC_BINDING(ReleaseCachedMemory) {
  derived_release();  // their blocks go back to the host cache, released next
  return Napi::Number::New(info.Env(), double(host_release_cached()));
}

// setHostCacheLimit(bytes): bounds the host block cache (0 disables it)
KFAC_BINDING(SetHostCacheLimit) {
  Napi::Value v = arg(info, 0);
  if (!v.IsNumber() || !(v.As<Napi::Number>().DoubleValue() >= 0) || v.As<Napi::Number>().DoubleValue() > 9.0e15)
    throw_arg(ErrorCode::InvalidArgument, "bytes", "a non-negative number of bytes", describe(v));
  host_set_cache_limit(uint64_t(v.As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
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
    {"releaseCachedMemory", ReleaseCachedMemory},
    {"setHostCacheLimit", SetHostCacheLimit},
    {"setCpuKernel", SetCpuKernel},
    {"setErrorFactory", SetErrorFactory},
};

}  // namespace

void register_system(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi
