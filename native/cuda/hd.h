// Host-device helpers: what a kernel body (native/cuda/nn_*_body.h) needs so that one source
// runs both as a CUDA thread (nvcc) and in the host emulator (native/emu, g++).
//
// A body is a functor. Grid bodies: `KFAC_HD void operator()(const Idx& i) const`, one call per
// thread, no shared memory (grid-stride loops over the work). Block bodies: phases separated
// by barriers, `KFAC_HD int phases(int threads) const` and
// `KFAC_HD void phase(int p, const Idx& i, unsigned char* shared) const`; the CUDA launcher runs
// phase p on every thread, then __syncthreads(), p = 0, 1, ...; the emulator runs phase p for
// thread 0, 1, ... of a block, then phase p + 1. The two agree exactly when a phase reads only
// what earlier phases wrote to shared or global memory: state that crosses a barrier lives in
// shared memory, never in a thread's locals. Block sizes are powers of two.
#pragma once
#include <cstdint>
#include <cstring>

#include "../core/bf16_round.h"

#ifdef __CUDACC__
#define KFAC_HD __host__ __device__ inline
#else
#define KFAC_HD inline
#endif

#ifdef __CUDACC__
#include <cuda_runtime.h>
#else
#include <math.h>
#endif

namespace kfac::hd {

// A thread's place in the launch: block index and count, thread index and count (blockDim.x).
struct Idx {
  int64_t block;
  int thread;
  int64_t blocks;
  int threads;
  KFAC_HD int64_t global() const { return block * threads + thread; }
  KFAC_HD int64_t stride() const { return blocks * threads; }
};

// Launch geometry of a grid-stride kernel over n items (at least one block, at most
// 65535·16 blocks).
constexpr int kThreads = 256;
KFAC_HD int64_t grid_blocks(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return b < 1 ? 1 : (b > 65535LL * 16 ? 65535LL * 16 : b);
}

// log2 of a power of two.
KFAC_HD int log2i(int n) {
  int l = 0;
  while ((1 << l) < n) ++l;
  return l;
}

// One step of a shared-memory tree reduction: step s = 0 .. log2(threads) − 1 folds the upper
// half of the live range onto the lower (fixed order, so the result does not depend on
// scheduling). T is float or double; `sh` holds one value per thread.
template <class T>
KFAC_HD void tree_step(T* sh, const Idx& i, int s) {
  const int half = i.threads >> (s + 1);
  if (i.thread < half) sh[i.thread] += sh[i.thread + half];
}

// float math with the same functions on both sides.
KFAC_HD float expf_(float x) { return ::expf(x); }
KFAC_HD float erff_(float x) { return ::erff(x); }
KFAC_HD float tanhf_(float x) { return ::tanhf(x); }
KFAC_HD float sqrtf_(float x) { return ::sqrtf(x); }
KFAC_HD double exp_(double x) { return ::exp(x); }
KFAC_HD double log_(double x) { return ::log(x); }

// bfloat16 ↔ float32: the one rounding helper of native/core/bf16_round.h (round to nearest
// even; NaN stays NaN), shared with the CPU (native/cpu/bf16.h).
using ::kfac::bf16r::bf16_to_f32;
using ::kfac::bf16r::f32_to_bf16;

// Activation storage. A body templated on its storage type T (float or bf16) reads with ld and
// writes with st and computes in float32; for T = float both are plain loads and stores, so the
// float32 instantiation is the code it was. bf16 is the 16 bits of a bfloat16 in a distinct type
// (not uint16_t, so that an integer buffer cannot be mistaken for activations).
struct bf16 {
  uint16_t bits;
};
KFAC_HD float ld(const float* p, int64_t i) { return p[i]; }
KFAC_HD float ld(const bf16* p, int64_t i) { return bf16_to_f32(p[i].bits); }
KFAC_HD void st(float* p, int64_t i, float v) { p[i] = v; }
KFAC_HD void st(bf16* p, int64_t i, float v) { p[i].bits = f32_to_bf16(v); }

}  // namespace kfac::hd
