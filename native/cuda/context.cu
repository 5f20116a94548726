#include "context.cuh"

#include <mutex>

#include "../core/tensor.h"

namespace kfac::cuda {

void check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::string msg = std::string(what) + ": " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
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
      if (de == cudaSuccess && r.driver_version == 0) r.reason = "no CUDA driver is installed (" + r.reason + ")";
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
      return r;
    }
    if (n == 0) r.reason = "the CUDA driver reports no device";
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

void* Context::scratch(int slot, size_t bytes) {
  if (bytes > scratch_bytes_[slot]) {
    synchronize();  // earlier work may still read the old buffer
    if (scratch_[slot]) cudaFree(scratch_[slot]);
    scratch_[slot] = nullptr;
    scratch_bytes_[slot] = 0;
    size_t want = bytes + bytes / 4;
    check(cudaMalloc(&scratch_[slot], want), "cudaMalloc (scratch)");
    scratch_bytes_[slot] = want;
  }
  return scratch_[slot];
}

void Context::synchronize() { check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

namespace {
void* alloc(size_t bytes) {
  Context::get();
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}
void release(void* p) {
  // Work queued on the stream may still use the memory; cudaFree waits for the device.
  cudaFree(p);
}
void zero(void* p, size_t bytes) {
  Context& c = Context::get();
  check(cudaMemsetAsync(p, 0, bytes, c.stream()), "cudaMemset");
}
}  // namespace

void register_allocator() {
  DeviceAllocator a;
  a.alloc = alloc;
  a.release = release;
  a.zero = zero;
  set_device_allocator(Device::CUDA, a);
}

DeviceBuffer::DeviceBuffer(size_t bytes) { ptr_ = alloc(bytes ? bytes : 1); }
DeviceBuffer::~DeviceBuffer() { cudaFree(ptr_); }

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  Context& c = Context::get();
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c.stream()), "cudaMemcpy (upload)");
  c.synchronize();
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
