// The CUDA executor of the kernel bodies (native/cuda/nn_*_body.h): launches a body on the
// context's stream with the geometry the adapter asks for, and wraps the cuBLAS calls. Its host
// twin is native/emu/exec.h (same interface), which runs the same bodies in loops.
#pragma once
#include <cstddef>
#include <cstdint>

#include "context.cuh"
#include "gemm.cuh"
#include "hd.h"

namespace kfac::cuda {

template <class F>
__global__ void grid_kernel(F f) {
  f(hd::Idx{int64_t(blockIdx.x), int(threadIdx.x), int64_t(gridDim.x), int(blockDim.x)});
}

template <class F>
__global__ void block_kernel(F f) {
  extern __shared__ __align__(128) unsigned char shared[];  // 32-byte tiles for wmma (hd_mma.h)
  const hd::Idx i{int64_t(blockIdx.x), int(threadIdx.x), int64_t(gridDim.x), int(blockDim.x)};
  const int phases = f.phases(int(blockDim.x));
  for (int p = 0; p < phases; ++p) {
    f.phase(p, i, shared);
    __syncthreads();
  }
}

struct Exec {
  template <class F>
  static void grid(int64_t blocks, int threads, const F& f) {
    if (blocks <= 0) return;
    grid_kernel<<<unsigned(blocks), unsigned(threads), 0, Context::get().stream()>>>(f);
    check(cudaGetLastError(), "kernel launch");
  }
  template <class F>
  static void block(int64_t blocks, int threads, size_t shared_bytes, const F& f) {
    if (blocks <= 0) return;
    block_kernel<<<unsigned(blocks), unsigned(threads), shared_bytes, Context::get().stream()>>>(f);
    check(cudaGetLastError(), "kernel launch");
  }
  static void* scratch(int slot, size_t bytes) { return Context::get().scratch(slot, bytes); }
  // Stream-ordered and without a host synchronisation: from pageable host memory,
  // cudaMemcpyAsync returns once the source is staged, so `src` may be reused at once, and the
  // copy runs after the kernels queued before it (which may still read the scratch it fills).
  static void upload(void* dst, const void* src, size_t bytes) {
    if (bytes)
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, Context::get().stream()), "cudaMemcpyAsync (upload)");
  }
  // Synchronous: the caller reads the result.
  static void download(void* dst, const void* src, size_t bytes) {
    if (bytes) copy_to_host(dst, src, bytes);
  }
  static void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    cuda::sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  // bf16 A and B, float32 accumulation (tensor cores): cuBLASLt (gemm_lt.cuh, algorithm cached
  // per shape) unless KFAC_CUBLASLT=0 or Lt has no algorithm, else cublasGemmEx CUDA_R_16BF with
  // CUBLAS_COMPUTE_32F. gemm_bf16 writes a float32 C; gemm_bf16_bf16c a bf16 C (the float32
  // result, beta·C included, rounded once).
  static void gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                        int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);
  static void gemm_bf16_bf16c(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                              const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta, uint16_t* C,
                              int64_t ldc);
};

}  // namespace kfac::cuda
