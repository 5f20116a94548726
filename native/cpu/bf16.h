// bfloat16 on the CPU: conversion to and from float32 and the GEMM C (f32) = A·Bᵀ of two bf16
// matrices stored row-major along k (a Linear weight [OUT, IN] is such a B). Three kernels,
// chosen at run time: AMX tiles (tdpbf16ps; the tile permission is requested from the OS on
// first use), AVX512-BF16 (vdpbf16ps), and a portable one that widens to float32. Products are
// exact in float32 and summed in float32, as every kernel does.
#pragma once
#include <cstdint>
#include <cstring>

namespace kfac::cpu {

// Round to nearest even; NaN stays NaN (quiet), ±Inf stays ±Inf.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Element-wise conversions (threaded for large n).
void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n);
void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n);

enum class Bf16Kernel { Portable = 0, Avx512Bf16 = 1, Amx = 2 };

// The kernel gemm_bf16_nt runs: the best this CPU and OS allow, unless KFAC_BF16_KERNEL=
// portable|avx512bf16|amx or set_bf16_kernel() chose another one that is supported.
Bf16Kernel bf16_kernel();
bool bf16_kernel_supported(Bf16Kernel k);  // AMX: asks the OS for tile permission once
void set_bf16_kernel(Bf16Kernel k);        // throws InvalidArgument when unsupported
void reset_bf16_kernel();
const char* bf16_kernel_name(Bf16Kernel k);

// C[M×N] (ldc) = A[M×K] (lda) · op(B) + (accumulate ? C : 0), A and B bf16; op(B) = Bᵀ for
// B stored [N, K] (b_nk: a Linear weight in the forward), else B stored [K, N] (the backward).
void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
               bool b_nk, float* C, int64_t ldc, bool accumulate);
inline void gemm_bf16_nt(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                         int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_bf16(M, N, K, A, lda, B, ldb, true, C, ldc, accumulate);
}

// B as the kernels read it: element (k, j) of op(B).
struct Bf16B {
  const uint16_t* p;
  int64_t ld;
  bool nk;
  uint16_t at(int64_t k, int64_t j) const { return nk ? p[j * ld + k] : p[k * ld + j]; }
};

// The kernels (gemm_bf16*.cpp); each serves a block of rows [m0, m1) of C.
namespace bf16k {
void portable(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B, float* C,
              int64_t ldc, bool accumulate);
bool avx512bf16_compiled();
// op(B) packed by pack_vnni32: panels of 32 columns, each ⌈K/2⌉ rows of 32 (k, k+1) pairs, zero padded.
int64_t vnni32_size(int64_t N, int64_t K);
void pack_vnni32(int64_t N, int64_t K, Bf16B B, uint16_t* out);
void avx512bf16(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* Bp,
                float* C, int64_t ldc, bool accumulate);
bool amx_compiled();
bool amx_request_permission();  // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), once
void amx(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B, float* C,
         int64_t ldc, bool accumulate);
}  // namespace bf16k

}  // namespace kfac::cpu
