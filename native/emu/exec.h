// The host executor of the CUDA emulation: runs the kernel bodies of native/cuda/nn_*_body.h
// with the launch geometry the CUDA executor (native/cuda/exec.cuh) gives them — every block,
// every thread, block kernels phase by phase — and stands in for the cuBLAS calls with the CPU
// GEMM, so the adapters of the body headers (templates over the executor) are the same code on
// both. Memory is host memory (the emulation's device memory is the loopback's).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/tensor.h"
#include "../cuda/hd.h"

namespace kfac::emu {

struct Exec {
  // A grid-stride kernel: f(Idx) for every thread of `blocks` blocks of `threads`.
  // Threads of a block (or of a phase) run in ascending order or, every other time, descending:
  // a body whose result depends on the order of threads between two barriers (a race on the
  // device) then gives different rows different answers, which the tests see.
  template <class F>
  static void grid(int64_t blocks, int threads, const F& f) {
    for (int64_t b = 0; b < blocks; ++b)
      for (int k = 0; k < threads; ++k) f(hd::Idx{b, (b & 1) ? threads - 1 - k : k, blocks, threads});
  }
  // A block kernel: per block, phase p for every thread, then phase p + 1 (the barrier).
  template <class F>
  static void block(int64_t blocks, int threads, size_t shared_bytes, const F& f) {
    std::vector<double> shared((shared_bytes + sizeof(double) - 1) / sizeof(double) + 1);
    unsigned char* sh = reinterpret_cast<unsigned char*>(shared.data());
    const int phases = f.phases(threads);
    for (int64_t b = 0; b < blocks; ++b) {
      std::memset(sh, 0xcd, shared.size() * sizeof(double));  // shared memory starts undefined
      for (int p = 0; p < phases; ++p)
        for (int k = 0; k < threads; ++k)
          f.phase(p, hd::Idx{b, ((b + p) & 1) ? threads - 1 - k : k, blocks, threads}, sh);
    }
  }
  // Scratch device memory, reused per slot (0..3) across calls.
  static void* scratch(int slot, size_t bytes);
  // Host↔device copies go through the registered memory functions, so the loopback's
  // transfer counter sees the ones a device kernel makes (ids, targets, the loss rows).
  static void upload(void* dst, const void* src, size_t bytes) {
    if (bytes) device_allocator(Device::CUDA).upload(dst, src, bytes);
  }
  static void download(void* dst, const void* src, size_t bytes) {
    if (bytes) device_allocator(Device::CUDA).download(dst, src, bytes);
  }
  // Row-major C[M, N] = alpha·op(A)·op(B) + beta·C (cuBLAS SGEMM on the device).
  static void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
  // The same with bfloat16 A and B, float32 C and accumulation (cublasGemmEx CUDA_R_16BF on the
  // device): the products of bf16 values are exact in float32, so the host widens and runs sgemm.
  static void gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                        int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);
  // The same with a bfloat16 C (cuBLASLt / cublasGemmEx with a CUDA_R_16BF C): the float32
  // result alpha·AB + beta·C (C widened) rounded once to nearest even, as the device stores it.
  static void gemm_bf16_bf16c(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
                              const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta, uint16_t* C,
                              int64_t ldc);
};

}  // namespace kfac::emu
