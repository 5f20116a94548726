#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "check.h"
#include "device_cache.h"
#include "emulated_memory.h"

namespace kfac {

namespace {

constexpr int kDevices = 2;  // Device::CPU, Device::CUDA

struct Slot {
  bool registered = false;
  Kernels kernels;
};

Slot* slots() {
  static Slot s[kDevices];
  static const bool cpu_ready = [] {
    s[int(Device::CPU)].kernels = cpu_kernels();
    s[int(Device::CPU)].registered = true;
    return true;
  }();
  (void)cpu_ready;
  return s;
}

// Host memory posing as device memory (the CPU loopback and the emulation): the caching
// allocator of the cuda id over counted host blocks (native/core/emulated_memory.h).
void host_zero(void* p, size_t n) { std::memset(p, 0, n); }
void host_copy(void* d, const void* s, size_t n) {
  if (n) std::memmove(d, s, n);
}
// Host↔device crossings of the loopback, counted so that tests can show a training step
// makes none beyond the ones it asks for.
LoopbackTransfers g_transfers;
void host_upload(void* d, const void* s, size_t n) {
  ++g_transfers.uploads;
  g_transfers.upload_bytes += n;
  host_copy(d, s, n);
}
void host_download(void* d, const void* s, size_t n) {
  ++g_transfers.downloads;
  g_transfers.download_bytes += n;
  host_copy(d, s, n);
}
void host_sync() {}


// Which host backend poses as the cuda device, if any (the loopback or the emulation).
enum class HostCuda { None, Loopback, Emulation };
HostCuda g_host_cuda = HostCuda::None;

void register_host_cuda(const Kernels& kernels, bool emulation) {
  const char* what = emulation ? "the CUDA emulation" : "the CPU loopback";
  if (g_host_cuda == HostCuda::None && backend_registered(Device::CUDA))
    throw Error(ErrorCode::Device, std::string(what) + " is for builds without a CUDA backend", "device",
                "a build without CUDA", "a CUDA backend");
  install_device_cache(Device::CUDA, "CUDA (host test device)", emulated_raw_memory(), device_caching_from_env());
  DeviceAllocator m;
  m.alloc = cuda_cache_alloc;
  m.release = cuda_cache_release;
  m.zero = host_zero;
  m.upload = host_upload;
  m.download = host_download;
  m.copy = host_copy;
  m.synchronize = host_sync;
  register_backend(Device::CUDA, m, kernels);
  g_host_cuda = emulation ? HostCuda::Emulation : HostCuda::Loopback;
}

}  // namespace

void register_backend(Device device, const DeviceAllocator& memory, const Kernels& kernels) {
  Slot& s = slots()[int(device)];
  if (device != Device::CPU) set_device_allocator(device, memory);
  s.kernels = kernels;
  s.registered = true;
}

bool backend_registered(Device device) { return slots()[int(device)].registered; }

const Kernels& kernels_of(Device device) { return slots()[int(device)].kernels; }

void enable_cpu_loopback() {
  if (g_host_cuda != HostCuda::Loopback) register_host_cuda(cpu_kernels(), false);
}

bool cpu_loopback_enabled() { return g_host_cuda == HostCuda::Loopback; }

void enable_cuda_emulation() {
  if (g_host_cuda != HostCuda::Emulation) register_host_cuda(emulated_cuda_kernels(), true);
}

bool cuda_emulation_enabled() { return g_host_cuda == HostCuda::Emulation; }

LoopbackTransfers loopback_transfers() { return g_transfers; }

namespace {
// -1: not yet read from the environment; 0 or 1 after.
std::atomic<int> g_attention_tc{-1};
}  // namespace

bool attention_tensor_cores() {
  int v = g_attention_tc.load();
  if (v < 0) {
    const char* e = std::getenv("KFAC_ATTN_TENSOR_CORES");
    int want = (e && std::strcmp(e, "0") == 0) ? 0 : 1;
    g_attention_tc.compare_exchange_strong(v, want);
    v = g_attention_tc.load();
  }
  return v == 1;
}

bool set_attention_tensor_cores(bool on) {
  const bool prev = attention_tensor_cores();
  g_attention_tc.store(on ? 1 : 0);
  return prev;
}

std::vector<OpEntry> op_list(Device device) {
  std::vector<OpEntry> out;
  const bool reg = backend_registered(device);
  const Kernels& k = kernels_of(device);
#define KFAC_LIST_ENTRY(name, ret, params) out.push_back({#name, reg && k.name != nullptr});
  KFAC_OP_LIST(KFAC_LIST_ENTRY)
#undef KFAC_LIST_ENTRY
  return out;
}

void throw_no_kernel(const char* op, Device device) {
  std::string d = device_name(device);
  std::string why = backend_registered(device) ? "op " + std::string(op) + " has no " + d + " kernel"
                                               : "op " + std::string(op) + " has no " + d + " kernel (no " + d +
                                                     " backend in this build)";
  throw Error(ErrorCode::Device, why, "device", "a device with a " + std::string(op) + " kernel", d);
}

Device common_device(std::initializer_list<NamedTensor> args) {
  const NamedTensor* first = nullptr;
  for (const NamedTensor& a : args) {
    if (!a.t) continue;
    check_defined(*a.t, a.name);
    if (!first) first = &a;
    else check_same_device(*first->t, first->name, *a.t, a.name);
  }
  return first ? first->t->device() : Device::CPU;
}

Tensor to_device(const Tensor& t, Device device) {
  check_defined(t, "tensor");
  if (t.device() == device) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype(), device);
  if (t.device() == Device::CPU) {
    device_allocator(device).upload(out.raw(), t.raw(), t.nbytes());
  } else if (device == Device::CPU) {
    device_allocator(t.device()).download(out.raw(), t.raw(), t.nbytes());
  } else {
    throw_arg(ErrorCode::Device, "device", "cpu or the tensor's own device", device_name(device));
  }
  return out;
}

bool device_available(Device device) {
  if (device == Device::CPU) return true;
  if (!backend_registered(device)) return false;
  const DeviceAllocator& a = device_allocator(device);
  return !a.available || a.available();
}

void synchronize(Device device) {
  if (device == Device::CPU) return;
  const DeviceAllocator& a = device_allocator(device);
  if (a.synchronize) a.synchronize();
}

}  // namespace kfac
