// Bindings of the device layer (both builds): the op list with the kernels each device has,
// waiting for a device, and the CPU loopback test hook.
#include <napi.h>

#include "../core/dispatch.h"
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

const Binding kBindings[] = {
    {"opList", OpList},
    {"synchronize", Synchronize},
    {"deviceAvailable", DeviceAvailable},
    {"_cpuLoopback", CpuLoopback},
    {"_cudaEmulation", CudaEmulation},
    {"_loopbackTransfers", LoopbackTransferCount},
};

}  // namespace

void register_device(Napi::Env env, Napi::Object exports) { register_table(env, exports, kBindings); }

}  // namespace kfac::napi
