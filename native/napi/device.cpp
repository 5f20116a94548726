// Bindings of the device layer (both builds): the op list with the kernels each device has,
// waiting for a device, and the CPU loopback test hook.
#include <napi.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "../core/cuda_probe.h"
#include "../core/device_cache.h"
#include "../core/dispatch.h"
#include "../core/emulated_memory.h"
#include "args.h"
#include "errors.h"
#include "register.h"

namespace kfac::napi {

namespace {

// opList() → [{ name, cpu, cuda }]: every op of the op list and whether each device has a
// kernel for it in this process.
KFAC_BINDING(OpList) {
  Napi::Env env = info.Env();
  std::vector<OpEntry> cpu = op_list(Device::CPU), cuda = op_list(Device::CUDA);
  Napi::Array out = Napi::Array::New(env, cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", cpu[i].name);
    o.Set("cpu", cpu[i].has_kernel);
    o.Set("cuda", cuda[i].has_kernel);
    out.Set(uint32_t(i), o);
  }
  return out;
}

// synchronize(device = 'cuda'): waits for the device's queued work.
KFAC_BINDING(Synchronize) {
  synchronize(get_device(arg(info, 0), "device", Device::CUDA));
  return info.Env().Undefined();
}

// deviceAvailable(device) → whether tensors can be placed there in this process.
KFAC_BINDING(DeviceAvailable) {
  Device d = get_device(arg(info, 0), "device", Device::CUDA);
  return Napi::Boolean::New(info.Env(), device_available(d));
}

// _cpuLoopback() → true: registers the CPU kernels and host memory under the cuda id (tests
// only; refused in a build with a CUDA backend).
KFAC_BINDING(CpuLoopback) {
  enable_cpu_loopback();
  return Napi::Boolean::New(info.Env(), true);
}

// _cudaEmulation() → true: registers the CUDA emulation under the cuda id: host memory and the
// CPU kernels, with the nn ops run by the CUDA kernels' bodies on the host (tests only; refused
// in a build with a CUDA backend; replaces the loopback, and the loopback replaces it).
KFAC_BINDING(CudaEmulation) {
  enable_cuda_emulation();
  return Napi::Boolean::New(info.Env(), true);
}

// _cudaProbeReasons(driverVersion, runtimeVersion, major, minor, architectures, name) →
// { driver, arch }: the words the CUDA build's probe gives for a driver too old and for a GPU
// the build's architectures cannot run ('' when they can), for tests on any machine.
KFAC_BINDING(CudaProbeReasons) {
  Napi::Env env = info.Env();
  const int driver = int(get_int(arg(info, 0), "driverVersion", 0, 1000000));
  const int runtime = int(get_int(arg(info, 1), "runtimeVersion", 0, 1000000));
  const int major = int(get_int(arg(info, 2), "major", 0, 100)), minor = int(get_int(arg(info, 3), "minor", 0, 100));
  Napi::Object o = Napi::Object::New(env);
  o.Set("driver", cuda_probe::driver_too_old(driver, runtime));
  o.Set("arch", cuda_probe::arch_unsupported(major, minor, get_string(arg(info, 4), "architectures"), get_string(arg(info, 5), "name")));
  return o;
}

// _attentionTensorCores(on?) → whether bf16 attention on cuda runs on tensor cores (after
// setting it when a boolean is given): the parity checks compare it with the CUDA-core bodies.
KFAC_BINDING(AttentionTensorCores) {
  if (info.Length() > 0 && !info[0].IsUndefined()) set_attention_tensor_cores(get_bool(info[0], "on"));
  return Napi::Boolean::New(info.Env(), attention_tensor_cores());
}

// _loopbackTransfers() → { uploads, downloads, uploadBytes, downloadBytes }: host↔device
// copies made through the CPU loopback since it was enabled (tests only).
KFAC_BINDING(LoopbackTransferCount) {
  Napi::Env env = info.Env();
  const kfac::LoopbackTransfers t = loopback_transfers();
  Napi::Object o = Napi::Object::New(env);
  o.Set("uploads", double(t.uploads));
  o.Set("downloads", double(t.downloads));
  o.Set("uploadBytes", double(t.upload_bytes));
  o.Set("downloadBytes", double(t.download_bytes));
  return o;
}

// deviceMemory(device = 'cuda') → the statistics of the device's caching allocator, or null
// when the device has none in this process: { caching, allocated, peak, reserved, peakReserved,
// cached, requested, allocations, cacheHits, rawAllocations, rawFrees, retries, ooms, segments,
// liveBlocks, free, total } (bytes; free/total null when the device does not say).
KFAC_BINDING(DeviceMemory) {
  Napi::Env env = info.Env();
  Device d = get_device(arg(info, 0), "device", Device::CUDA);
  CachingAllocator* c = d == Device::CPU ? nullptr : device_cache(d);
  if (!c) return env.Null();
  DeviceCacheStats s = c->stats();
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(env, double(v))); };
  o.Set("caching", s.caching);
  num("allocated", s.allocated);
  num("peak", s.peak_allocated);
  num("reserved", s.reserved);
  num("peakReserved", s.peak_reserved);
  num("cached", s.cached);
  num("requested", s.requested);
  num("allocations", s.allocations);
  num("cacheHits", s.cache_hits);
  num("rawAllocations", s.raw_allocations);
  num("rawFrees", s.raw_frees);
  num("retries", s.retries);
  num("ooms", s.ooms);
  num("segments", s.segments);
  num("liveBlocks", s.live_blocks);
  size_t free = 0, total = 0;
  bool known = c->device_info(free, total);
  o.Set("free", known ? Napi::Value(Napi::Number::New(env, double(free))) : env.Null());
  o.Set("total", known ? Napi::Value(Napi::Number::New(env, double(total))) : env.Null());
  return o;
}

// emptyCache(device = 'cuda') → bytes given back: every cached segment that is entirely free.
KFAC_BINDING(EmptyCache) {
  Device d = get_device(arg(info, 0), "device", Device::CUDA);
  CachingAllocator* c = d == Device::CPU ? nullptr : device_cache(d);
  return Napi::Number::New(info.Env(), c ? double(c->empty_cache()) : 0.0);
}

// _setDeviceCaching(on) → the previous setting (tests: KFAC_CUDA_CACHING at run time).
KFAC_BINDING(SetDeviceCaching) {
  bool on = get_bool(arg(info, 0), "on");
  CachingAllocator* c = device_cache(Device::CUDA);
  if (!c) throw Error(ErrorCode::Device, "no cuda memory in this process", "device", "a cuda device", "none");
  bool was = c->stats().caching;
  c->set_caching(on);
  return Napi::Boolean::New(info.Env(), was);
}

// _emulatedMemory(limit?) → { allocations, frees, liveBytes, limit, refused }: the raw host
// memory under the loopback's and the emulation's cache; a number sets the limit (0: none).
KFAC_BINDING(EmulatedMemory) {
  Napi::Env env = info.Env();
  if (!cpu_loopback_enabled() && !cuda_emulation_enabled())
    throw Error(ErrorCode::Device, "_emulatedMemory needs the CPU loopback or the CUDA emulation", "device",
                "a host test device", "none");
  if (info.Length() > 0 && !info[0].IsUndefined())
    set_emulated_memory_limit(uint64_t(get_int(info[0], "limit", 0, int64_t(1) << 50)));
  EmulatedMemoryStats s = emulated_memory_stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocations", double(s.allocations));
  o.Set("frees", double(s.frees));
  o.Set("liveBytes", double(s.live_bytes));
  o.Set("limit", double(s.limit));
  o.Set("refused", double(s.refused));
  return o;
}

// _deviceCacheStreams(bytes) → { sameStreamReused, otherStreamReused, rawAllocations }: a fresh
// caching allocator over host memory (tests): a block freed on stream 1 is asked for again on
// stream 2, then on stream 1. The allocator itself is the one the devices use.
KFAC_BINDING(DeviceCacheStreams) {
  const size_t bytes = size_t(get_int(arg(info, 0), "bytes", 1, int64_t(1) << 30));
  RawDeviceMemory raw = emulated_raw_memory();
  CachingAllocator c("test", raw, true);
  void* a = c.alloc(bytes, 1);
  c.free(a);
  void* b = c.alloc(bytes, 2);  // another stream: never the block stream 1 freed
  void* d = c.alloc(bytes, 1);  // stream 1 again: its own block back
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("otherStreamReused", b == a);
  o.Set("sameStreamReused", d == a);
  o.Set("rawAllocations", double(c.stats().raw_allocations));
  c.free(b);
  c.free(d);
  return o;
}

// _deviceCacheThreads(threads, iterations) → { overwritten, allocated, reserved, released }: a
// fresh caching allocator over host memory shared by `threads` threads, each allocating blocks of
// random sizes (both pools), filling them with its own byte pattern, checking the patterns of its
// live blocks and freeing them (tests: the mutex's guarantee). overwritten counts bytes found
// changed; allocated/reserved are read after every block was freed, released by emptying the cache.
KFAC_BINDING(DeviceCacheThreads) {
  const int threads = int(get_int(arg(info, 0), "threads", 1, 64));
  const int iterations = int(get_int(arg(info, 1), "iterations", 1, 1 << 20));
  CachingAllocator c("test", emulated_raw_memory(), true);
  std::atomic<int64_t> overwritten{0};
  std::vector<std::thread> team;
  for (int t = 0; t < threads; ++t)
    team.emplace_back([&, t] {
      uint64_t s = 0x9E3779B97F4A7C15ull * uint64_t(t + 1);
      auto next = [&] { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; };
      std::vector<std::pair<unsigned char*, size_t>> live;
      const unsigned char mark = static_cast<unsigned char>(t + 1);
      auto check_free = [&](size_t i) {
        auto [p, n] = live[i];
        // blocks start and end on 512-byte steps of their segment, so an overlap spans ≥ 512
        // bytes: every 256th byte and the last one see it
        for (size_t k = 0; k < n; k += 256) overwritten += p[k] != mark;
        overwritten += p[n - 1] != mark;
        c.free(p);
        live[i] = live.back();
        live.pop_back();
      };
      for (int it = 0; it < iterations; ++it) {
        if (!live.empty() && next() % 2 == 0) check_free(size_t(next() % live.size()));
        else {
          const size_t n = next() % 16 == 0 ? 1 + size_t(next() % (3u << 20)) : 1 + size_t(next() % 4096);
          auto* p = static_cast<unsigned char*>(c.alloc(n, 0));
          std::memset(p, mark, n);
          live.emplace_back(p, n);
        }
      }
      while (!live.empty()) check_free(live.size() - 1);
    });
  for (std::thread& th : team) th.join();
  DeviceCacheStats st = c.stats();
  uint64_t released = c.empty_cache();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("overwritten", double(overwritten.load()));
  o.Set("allocated", double(st.allocated));
  o.Set("reserved", double(st.reserved));
  o.Set("released", double(released));
  o.Set("allocations", double(st.allocations));
  return o;
}

const Binding kBindings[] = {
    {"deviceMemory", DeviceMemory},
    {"_deviceCacheThreads", DeviceCacheThreads},
    {"_deviceCacheStreams", DeviceCacheStreams},
    {"emptyCache", EmptyCache},
    {"_setDeviceCaching", SetDeviceCaching},
    {"_emulatedMemory", EmulatedMemory},
    {"opList", OpList},
    {"synchronize", Synchronize},
    {"deviceAvailable", DeviceAvailable},
    {"_cpuLoopback", CpuLoopback},
    {"_cudaEmulation", CudaEmulation},
    {"_loopbackTransfers", LoopbackTransferCount},
    {"_attentionTensorCores", AttentionTensorCores},
    {"_cudaProbeReasons", CudaProbeReasons},
};

}  // namespace

void register_device(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi
