// bfloat16 ↔ float32, the one rounding every backend uses: round to nearest even, NaN stays a
// (quiet) NaN, ±Inf stays ±Inf. Plain C++ that nvcc also compiles as device code, so the CPU
// (native/cpu/bf16.h), the CUDA kernel bodies (native/cuda/hd.h) and their host emulation round
// bit for bit alike.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KFAC_BF16_HD __host__ __device__ inline
#else
#define KFAC_BF16_HD inline
#endif

namespace kfac::bf16r {

KFAC_BF16_HD uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

KFAC_BF16_HD float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace kfac::bf16r
