#include "context.cuh"

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>

#include "../core/cuda_probe.h"
#include "../core/device_cache.h"
#include "../core/tensor.h"

#ifndef KFAC_CUDA_ARCHITECTURES
#define KFAC_CUDA_ARCHITECTURES ""
#endif

namespace kfac::cuda {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::string msg = std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
  // Errors that are not sticky are cleared, so the context stays usable for the next op.
  cudaGetLastError();
  if (status == cudaErrorMemoryAllocation) throw Error(ErrorCode::OutOfMemory, "CUDA out of memory in " + msg);
  if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver)
    throw Error(ErrorCode::Device, "CUDA device unavailable in " + msg, "device", "a CUDA device", "none");
  throw Error(ErrorCode::Internal, "CUDA error in " + msg);
}

void check(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  std::string msg = std::string(what) + ": " + cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")";
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw Error(ErrorCode::OutOfMemory, "cuBLAS out of memory in " + msg);
  if (status == CUBLAS_STATUS_INVALID_VALUE) throw Error(ErrorCode::InvalidArgument, "cuBLAS rejected " + msg);
  throw Error(ErrorCode::Internal, "cuBLAS error in " + msg);
}

void check(cusolverStatus_t status, const char* what) {
  if (status == CUSOLVER_STATUS_SUCCESS) return;
  std::string msg = std::string(what) + ": cusolverStatus " + std::to_string(int(status));
  if (status == CUSOLVER_STATUS_ALLOC_FAILED) throw Error(ErrorCode::OutOfMemory, "cuSOLVER out of memory in " + msg);
  if (status == CUSOLVER_STATUS_INVALID_VALUE) throw Error(ErrorCode::InvalidArgument, "cuSOLVER rejected " + msg);
  throw Error(ErrorCode::Internal, "cuSOLVER error in " + msg);
}

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    cudaRuntimeGetVersion(&r.runtime_version);
    cudaError_t de = cudaDriverGetVersion(&r.driver_version);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      r.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
      if (e == cudaErrorInsufficientDriver || (de == cudaSuccess && r.driver_version == 0))
        r.reason = cuda_probe::driver_too_old(r.driver_version, r.runtime_version) + " (" + r.reason + ")";
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
      return r;
    }
    if (n == 0) {
      r.reason = "the CUDA driver reports no device";
      return r;
    }
    // A GPU this build has neither machine code nor PTX for would fail at its first kernel: say so now.
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      std::string why = cuda_probe::arch_unsupported(prop.major, prop.minor, KFAC_CUDA_ARCHITECTURES, prop.name);
      if (!why.empty()) {
        r.reason = why;
        return r;
      }
    } else {
      cudaGetLastError();
    }
    r.count = n;
    return r;
  }();
  return p;
}

Context& Context::get() {
  static std::once_flag once;
  static Context* ctx = nullptr;
  const Probe& p = probe();
  if (p.count == 0) throw Error(ErrorCode::Device, "no CUDA device: " + p.reason, "device", "a CUDA device", "none");
  std::call_once(once, [] { ctx = new Context(); });  // lives for the process: handles die with it
  return *ctx;
}

Context::Context() {
  check(cudaSetDevice(0), "cudaSetDevice");
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cublasCreate(&blas_), "cublasCreate");
  check(cublasSetStream(blas_, stream_), "cublasSetStream");
  check(cusolverDnCreate(&solver_), "cusolverDnCreate");
  check(cusolverDnSetStream(solver_, stream_), "cusolverDnSetStream");
}

namespace {
void* tracked_alloc(size_t bytes);
void release(void* p);
}  // namespace

void* Context::scratch(int slot, size_t bytes) {
  if (bytes > scratch_bytes_[slot]) {
    // Through the caching allocator: the old buffer is reused only by later work on this
    // stream, so no synchronisation is needed.
    if (scratch_[slot]) release(scratch_[slot]);
    scratch_[slot] = nullptr;
    scratch_bytes_[slot] = 0;
    size_t want = bytes + bytes / 4;
    scratch_[slot] = tracked_alloc(want);
    scratch_bytes_[slot] = want;
  }
  return scratch_[slot];
}

void Context::synchronize() {
  ++syncs_;
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

namespace {

// The raw device memory under the caching allocator (native/core/device_cache.h): cudaMalloc,
// null when the device is full, cudaFree (which waits for the device), cudaMemGetInfo.
void* raw_alloc(size_t bytes) {
  Context::get();
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the next call starts clean
    return nullptr;
  }
  check(e, "cudaMalloc");
  return p;
}

void raw_free(void* p) { cudaFree(p); }

bool raw_info(size_t& free, size_t& total) {
  if (probe().count == 0) return false;
  Context::get();
  return cudaMemGetInfo(&free, &total) == cudaSuccess;
}

uintptr_t current_stream() { return reinterpret_cast<uintptr_t>(Context::get().stream()); }

CachingAllocator& cache() {
  static CachingAllocator& c = [] () -> CachingAllocator& {
    RawDeviceMemory raw;
    raw.alloc = raw_alloc;
    raw.free = raw_free;
    raw.info = raw_info;
    raw.synchronize = [] { Context::get().synchronize(); };
    CachingAllocator& a = install_device_cache(Device::CUDA, "CUDA", raw, device_caching_from_env());
    set_device_cache_stream(Device::CUDA, current_stream);
    return a;
  }();
  return c;
}

void* tracked_alloc(size_t bytes) {
  cache();
  return cuda_cache_alloc(bytes);
}

void release(void* p) { cache().free(p); }

void zero(void* p, size_t bytes) {
  Context& c = Context::get();
  check(cudaMemsetAsync(p, 0, bytes, c.stream()), "cudaMemset");
}

void synchronize_context() { Context::get().synchronize(); }

bool device_answers() { return probe().count > 0; }

}  // namespace

DeviceAllocator memory() {
  cache();  // installed at registration, so the core's deviceMemory/emptyCache see it
  DeviceAllocator a;
  a.alloc = tracked_alloc;
  a.release = release;
  a.zero = zero;
  a.upload = copy_to_device;
  a.download = copy_to_host;
  a.copy = copy_device;
  a.synchronize = synchronize_context;
  a.available = device_answers;
  return a;
}

MemoryStats memory_stats() {
  MemoryStats m;
  m.cache = cache().stats();
  m.allocated = m.cache.allocated;
  m.peak = m.cache.peak_allocated;
  if (probe().count > 0) {
    Context::get();
    cudaMemGetInfo(&m.free, &m.total);
  }
  return m;
}

uint64_t empty_cache() { return cache().empty_cache(); }

DeviceBuffer::DeviceBuffer(size_t bytes) { ptr_ = tracked_alloc(bytes ? bytes : 1); }
DeviceBuffer::~DeviceBuffer() { release(ptr_); }

// No wait: the addon's host memory is pageable (never pinned), and from pageable memory
// cudaMemcpyAsync returns once the source is staged, so `src` may be reused or freed at once; the
// copy runs after the work queued before it (which may still read `dst`'s old block).
void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Context& c = Context::get();
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c.stream()), "cudaMemcpy (upload)");
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Context& c = Context::get();
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c.stream()), "cudaMemcpy (download)");
  c.synchronize();
}

void copy_device(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Context& c = Context::get();
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c.stream()), "cudaMemcpy (device)");
}

}  // namespace kfac::cuda
