// Internal interface between the GEMM driver (gemm.cpp) and its per-ISA micro-kernels.
//
// The driver packs op(A) and op(B) into contiguous panels and calls one micro-kernel per
// MR×NR tile of C. Layouts of the packed panels (row-major, letters as in gemm.h):
//   A panel, MR rows × kc:  row-major ("RowMajor": element (i, p) at pa[i·KCS + p], KCS the
//                           kernel's fixed panel stride) or k-major ("KMajor": pa[p·MR + i]).
//                           The driver picks whichever makes packing a plain copy.
//   B panel, kc × NR:       k-major, pb[p·NR + j], columns past the edge padded with zeros.
// Rows of an A panel past the edge are never read: the kernel is told how many rows (mr) exist.
#pragma once
#include <cstdint>

namespace kfac::cpu::gemm {

enum class APack { RowMajor = 0, KMajor = 1 };

// C[mr×nr] = alpha · Apanel[mr×kc] · Bpanel[kc×nr] + beta · C  (C row-major, leading dim ldc).
// beta == 0 stores without reading C. 1 <= mr <= MR, 1 <= nr <= NR, kc >= 1.
using MicroKernel = void (*)(APack layout, int mr, int nr, int64_t kc, const float* pa,
                             const float* pb, float* c, int64_t ldc, float alpha, float beta);

// Packs B[k0:k0+kc, j0:j0+nc] of op(B) (rows of op(B) = K) into ceil(nc/NR) k-major panels
// of kc×NR each, one after the other, zero-padded. transB: B is stored N×K.
using PackB = void (*)(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc,
                       int64_t j0, int64_t nc, int nr_panel, float* out);

struct KernelSet {
  const char* name;
  int mr, nr;          // register tile
  int kcs;             // fixed row stride of a RowMajor A panel (>= KC)
  int kc, mc, nc;      // cache blocking: depth, rows of A per block, columns of B per block
  MicroKernel kernel;
  PackB pack_b;        // may be the portable packer
};

const KernelSet& kernels_generic();
// Only valid on CPUs with the ISA (the driver asks kernel_isa() first).
const KernelSet& kernels_avx2();
const KernelSet& kernels_avx512();

// Transposed-B packer with 16×16 register transposes (gemm_pack_avx512.cpp); NR = 32 only,
// AVX-512F CPUs only.
void pack_b_avx512(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
                   int64_t nc, int nr_panel, float* out);

// The same with 8×8 transposes (gemm_pack_avx2.cpp); NR = 16 only, AVX2 CPUs only.
void pack_b_avx2(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
                 int64_t nc, int nr_panel, float* out);

// Portable packers used by every ISA (gemm_pack.cpp).
void pack_b_portable(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
                     int64_t nc, int nr_panel, float* out);
// Packs rows [i0, i0+mc) × cols [k0, k0+kc) of op(A) into ceil(mc/MR) panels of MR×kcs floats.
// Returns the layout used: RowMajor when A is not transposed, KMajor when it is.
APack pack_a(bool transA, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0,
             int64_t kc, int mr_panel, int kcs, float* out);

}  // namespace kfac::cpu::gemm
