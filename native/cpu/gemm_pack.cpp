// Portable packing of GEMM operands into the panel layouts of gemm_kernels.h.
// Row-major throughout; op(A) is M×K, op(B) is K×N.
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <cstring>

#include "gemm_kernels.h"

namespace kfac::cpu::gemm {

// B panels: kc×NR k-major. Not transposed (B stored K×N): each panel row is a copy of NR
// contiguous floats. Transposed (B stored N×K): each column j of the panel is a contiguous
// run of B's row j, so read along rows and write with stride NR.
void pack_b_portable(bool transB, const float* B, int64_t ldb, int64_t k0, int64_t kc, int64_t j0,
                     int64_t nc, int nr_panel, float* out) {
  const int64_t NR = nr_panel;
  for (int64_t j = 0; j < nc; j += NR) {
    const int64_t nr = nc - j < NR ? nc - j : NR;
    float* dst = out + (j / NR) * kc * NR;
    if (!transB) {
      const float* src = B + k0 * ldb + (j0 + j);
      for (int64_t p = 0; p < kc; ++p) {
        std::memcpy(dst + p * NR, src + p * ldb, size_t(nr) * sizeof(float));
        for (int64_t q = nr; q < NR; ++q) dst[p * NR + q] = 0.f;
      }
    } else {
      for (int64_t q = 0; q < nr; ++q) {
        const float* src = B + (j0 + j + q) * ldb + k0;
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + q] = src[p];
      }
      for (int64_t q = nr; q < NR; ++q)
        for (int64_t p = 0; p < kc; ++p) dst[p * NR + q] = 0.f;
    }
  }
}

// A panels of MR rows. Not transposed (A stored M×K): row-major panels with row stride kcs,
// a copy of kc contiguous floats per row. Transposed (A stored K×M): k-major panels, a copy
// of mr contiguous floats per k. Rows past the edge are left unwritten (never read).
APack pack_a(bool transA, const float* A, int64_t lda, int64_t i0, int64_t mc, int64_t k0,
             int64_t kc, int mr_panel, int kcs, float* out) {
  const int64_t MR = mr_panel;
  const int64_t panel = MR * kcs;
  for (int64_t i = 0; i < mc; i += MR) {
    const int64_t mr = mc - i < MR ? mc - i : MR;
    float* dst = out + (i / MR) * panel;
    if (!transA) {
      for (int64_t r = 0; r < mr; ++r)
        std::memcpy(dst + r * kcs, A + (i0 + i + r) * lda + k0, size_t(kc) * sizeof(float));
    } else {
      for (int64_t p = 0; p < kc; ++p)
        std::memcpy(dst + p * MR, A + (k0 + p) * lda + (i0 + i), size_t(mr) * sizeof(float));
    }
  }
  return transA ? APack::KMajor : APack::RowMajor;
}

}  // namespace kfac::cpu::gemm
