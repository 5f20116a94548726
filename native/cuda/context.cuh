// The CUDA context of the addon: one device (0), one stream, the cuBLAS and cuSOLVER
// handles, and the conversion of every CUDA, cuBLAS and cuSOLVER status into kfac::Error.
// Device memory is plain cudaMalloc (never managed memory). Nothing here exits or aborts.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/device_cache.h"
#include "../core/error.h"
#include "../core/tensor.h"

namespace kfac::cuda {

// Throw kfac::Error (Internal, or OutOfMemory for allocation failures) naming `what`.
void check(cudaError_t status, const char* what);
void check(cublasStatus_t status, const char* what);
void check(cusolverStatus_t status, const char* what);

// What the runtime says about devices, without throwing: count > 0, or count 0 and
// `reason` (e.g. "no CUDA driver: ..."). Probed once per process.
struct Probe {
  int count = 0;
  std::string reason;
  int driver_version = 0, runtime_version = 0;
};
const Probe& probe();

class Context {
 public:
  // The context of device 0, made on first use. Throws Device when no device answers.
  static Context& get();
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  cusolverDnHandle_t solver() const { return solver_; }
  // A scratch buffer of at least `bytes`, reused across calls (grows, never shrinks).
  // Slot 0..3 for ops that need several at once.
  void* scratch(int slot, size_t bytes);
  // Waits for the stream (cudaStreamSynchronize): only where the host reads a result. Counted.
  void synchronize();
  // Host waits on the stream since the process started (synchronize() calls, downloads included).
  uint64_t synchronizations() const { return syncs_; }

 private:
  Context();
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  void* scratch_[4] = {nullptr, nullptr, nullptr, nullptr};
  size_t scratch_bytes_[4] = {0, 0, 0, 0};
  uint64_t syncs_ = 0;
};

// The device memory functions for the core: the caching allocator of native/core/device_cache.h
// over cudaMalloc/cudaFree (KFAC_CUDA_CACHING=0: one cudaMalloc per tensor, one cudaFree per
// release), cudaMemcpy on the context's stream. An allocation that fails after the cache was
// emptied is an OutOfMemory error naming the bytes asked, the bytes free, reserved and cached.
DeviceAllocator memory();
// Bytes the addon's tensors and scratch hold on the device now and at peak (block sizes), the
// caching allocator's statistics, and the device's free/total bytes.
struct MemoryStats {
  size_t allocated = 0, peak = 0, free = 0, total = 0;
  DeviceCacheStats cache;
};
MemoryStats memory_stats();
// Gives every cached, entirely free segment back to the device; the bytes given back.
uint64_t empty_cache();
// Registers memory() and the CUDA kernels (kernels.cu) into the op table.
void register_backend();

// A device allocation owned by scope (for temporaries that outlive one scratch slot).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

// Host ↔ device copies on the context's stream: an upload returns once its pageable source is
// staged (no wait for the device), a download waits for the stream (the caller reads the result).
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_device(void* dst, const void* src, size_t bytes);

constexpr int kThreads = 256;
inline unsigned blocks_for(long long n, int threads = kThreads) {
  long long b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : (b > 65535LL * 16 ? 65535LL * 16 : b));
}

}  // namespace kfac::cuda
