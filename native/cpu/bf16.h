// bfloat16 on the CPU: conversion to and from float32 and the GEMM C (f32) = A·Bᵀ of two bf16
// matrices stored row-major along k (a Linear weight [OUT, IN] is such a B). Three kernels,
// chosen at run time: AMX tiles (tdpbf16ps; the tile permission is requested from the OS on
// first use), AVX512-BF16 (vdpbf16ps), and a portable one that widens to float32. Products are
// exact in float32 and summed in float32, as every kernel does.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "../core/bf16_round.h"

namespace kfac::cpu {

// Round to nearest even; NaN stays NaN (quiet), ±Inf stays ±Inf (native/core/bf16_round.h, the
// helper the CUDA kernel bodies use too).
using bf16r::bf16_to_f32;
using bf16r::f32_to_bf16;

// Element-wise conversions (threaded for large n).
void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n);
void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n);

enum class Bf16Kernel { Portable = 0, Avx512Bf16 = 1, Amx = 2 };

// The kernel gemm_bf16 runs: set_bf16_kernel()'s choice, else KFAC_BF16_KERNEL=auto|amx|
// avx512bf16|portable when this machine runs it, else the best this CPU and OS allow. A request
// that cannot be honoured (unknown name, kernel not supported here) is not silent:
// bf16_kernel_warning() says what was asked and what runs instead (info() shows it).
Bf16Kernel bf16_kernel();
const char* bf16_kernel_request();  // KFAC_BF16_KERNEL as given ("" when unset)
std::string bf16_kernel_warning();  // "" when the request (if any) is honoured
bool bf16_kernel_supported(Bf16Kernel k);  // AMX: asks the OS for tile permission once
void set_bf16_kernel(Bf16Kernel k);        // throws InvalidArgument when unsupported
void reset_bf16_kernel();
const char* bf16_kernel_name(Bf16Kernel k);

// B as the kernels read it: element (k, j) of op(B).
struct Bf16B {
  const uint16_t* p;
  int64_t ld;
  bool nk;
  uint16_t at(int64_t k, int64_t j) const { return nk ? p[j * ld + k] : p[k * ld + j]; }
};

// C[M×N] (ldc) = A[M×K] (lda) · op(B) + (accumulate ? C : 0), A and B bf16; op(B) = Bᵀ for
// B stored [N, K] (b_nk: a Linear weight in the forward), else B stored [K, N] (the backward).
// Packs op(B) for the kernel in use into a block from the host allocator, then runs
// gemm_bf16_packed.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
               bool b_nk, float* C, int64_t ldc, bool accumulate);
inline void gemm_bf16_nt(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                         int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  gemm_bf16(M, N, K, A, lda, B, ldb, true, C, ldc, accumulate);
}

// Packing op(B) once for many products (a frozen weight's panels, cached with it): the number
// of bf16 elements kernel k's packed form of an N×K op(B) takes (0 for the portable kernel,
// which reads B as it is), and the packing itself (threaded; writes every element of out).
int64_t bf16_packed_elems(Bf16Kernel k, int64_t N, int64_t K);
void bf16_pack(Bf16Kernel k, int64_t N, int64_t K, Bf16B B, uint16_t* out);
// The product with op(B) already packed for kernel k (Bp; unused by the portable kernel,
// which reads B). No allocation: the threads only read Bp and A and write their rows of C.
void gemm_bf16_packed(Bf16Kernel k, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B,
                      const uint16_t* Bp, float* C, int64_t ldc, bool accumulate);

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
// op(B) in AMX B tiles: for each block of 16 columns and 32 k, 16 rows (k pairs) × 16 columns
// × 2, zero padded to multiples of 16 columns and 32 k.
int64_t amx_packed_size(int64_t N, int64_t K);
void amx_pack(int64_t N, int64_t K, Bf16B B, uint16_t* out);
void amx(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* Bp, float* C,
         int64_t ldc, bool accumulate);
}  // namespace bf16k

}  // namespace kfac::cpu
