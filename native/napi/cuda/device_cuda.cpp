// The CUDA build's only binding code (compiled by CMakeLists.txt, never by binding.gyp):
// registers the CUDA kernels into the op table when the addon loads, and adds
// exports.cuda = { info, memory } — what the runtime says and how much memory is in use.
// Every op is the same binding for both devices (native/napi/ops_*.cpp).
#include <napi.h>

#include <string>

#include "../../cuda/context.cuh"
#include "../../cuda/gemm_lt.cuh"
#include "../args.h"
#include "../errors.h"
#include "../register.h"

#ifndef KFAC_CUDA_ARCHITECTURES
#define KFAC_CUDA_ARCHITECTURES ""
#endif

namespace kfac::napi {

namespace {

std::string version_string(int v) {  // 12080 → "12.8"
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

template <class F>
std::string property_version(F get) {
  int major = 0, minor = 0, patch = 0;
  get(MAJOR_VERSION, &major);
  get(MINOR_VERSION, &minor);
  get(PATCH_LEVEL, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
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
  o.Set("cublasVersion", property_version([](libraryPropertyType t, int* v) { return cublasGetProperty(t, v); }));
  o.Set("cusolverVersion", property_version([](libraryPropertyType t, int* v) { return cusolverGetProperty(t, v); }));
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

// memory() → { allocated, peak, free, total } in bytes (free/total 0 without a device), and the
// caching allocator's { caching, reserved, peakReserved, cached, … } (native/core/device_cache.h).
KFAC_BINDING(CudaMemory) {
  Napi::Env env = info.Env();
  cuda::MemoryStats m = cuda::memory_stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocated", Napi::Number::New(env, double(m.allocated)));
  o.Set("peak", Napi::Number::New(env, double(m.peak)));
  o.Set("free", Napi::Number::New(env, double(m.free)));
  o.Set("total", Napi::Number::New(env, double(m.total)));
  const DeviceCacheStats& c = m.cache;
  auto num = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, double(v))); };
  o.Set("caching", c.caching);
  num("reserved", c.reserved);
  num("peakReserved", c.peak_reserved);
  num("cached", c.cached);
  num("requested", c.requested);
  num("allocations", c.allocations);
  num("cacheHits", c.cache_hits);
  num("rawAllocations", c.raw_allocations);
  num("rawFrees", c.raw_frees);
  num("retries", c.retries);
  num("ooms", c.ooms);
  num("segments", c.segments);
  num("liveBlocks", c.live_blocks);
  return o;
}

// cublasLt(on?) → whether bf16 GEMMs go through cuBLASLt (after setting it when a boolean is
// given): the parity checks compare the Lt path against cublasGemmEx (KFAC_CUBLASLT=0).
KFAC_BINDING(CudaCublasLt) {
  if (info.Length() > 0 && info[0].IsBoolean()) cuda::set_lt_enabled(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(info.Env(), cuda::lt_enabled());
}
// cublasLtCounts() → { calls, fallbacks }: bf16 GEMMs cuBLASLt ran and those it declined (the
// caller's cublasGemmEx / syrk ran instead), since the process started; parity checks assert
// that Lt actually ran.
KFAC_BINDING(CudaCublasLtCounts) {
  const cuda::LtCounts c = cuda::lt_counts();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("calls", Napi::Number::New(info.Env(), double(c.calls)));
  o.Set("fallbacks", Napi::Number::New(info.Env(), double(c.fallbacks)));
  return o;
}
// synchronizations() → host waits on the stream since the process started: one per result the
// host reads (a download) and per explicit synchronize(); the ops themselves only queue work.
// bench train-step reports them per step.
KFAC_BINDING(CudaSynchronizations) {
  const bool up = cuda::probe().count > 0;
  return Napi::Number::New(info.Env(), up ? double(cuda::Context::get().synchronizations()) : 0.0);
}
// emptyCache() → bytes given back to the device (cached segments that are entirely free).
KFAC_BINDING(CudaEmptyCache) { return Napi::Number::New(info.Env(), double(cuda::empty_cache())); }

const Binding kBindings[] = {
    {"info", CudaInfo},
    {"memory", CudaMemory},
    {"cublasLt", CudaCublasLt},
    {"cublasLtCounts", CudaCublasLtCounts},
    {"emptyCache", CudaEmptyCache},
    {"synchronizations", CudaSynchronizations},
};

}  // namespace

void register_cuda(Napi::Env env, Napi::Object exports) {
  cuda::register_backend();
  Napi::Object c = Napi::Object::New(env);
  register_table(env, c, kBindings);
  exports.Set("cuda", c);
}

}  // namespace kfac::napi
