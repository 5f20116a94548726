// Tensor-core tile products for the block bodies (hd.h): one warp multiplies 16×16 tiles of
// bfloat16 operands held in shared memory and accumulates in float32. On the device this is
// nvcuda::wmma (sm_80+: bf16 inputs, float32 accumulator); in the host emulation the warp's
// lane 0 does the same sums in loops (the products of bf16 values are exact in float32, only
// the order of the float32 additions differs), and the other lanes do nothing.
//
// A call is warp-collective: every lane of a warp must make it, with the same arguments (the
// tile a warp works on is chosen from `warp_of(i)`, never from the lane). What it writes is read
// only after the next barrier (the rule of hd.h), so on the device the wmma fragments never
// cross a phase: the accumulator lives in shared memory between phases.
//
// Alignment (wmma's): every tile's first element at a multiple of 32 bytes, leading dimensions
// a multiple of 8 elements for bf16 and of 4 for float — the attention bodies lay out their
// shared memory so (attn_tc_ld, nn_attention_tc_body.h).
#pragma once
#include <type_traits>

#include "hd.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <mma.h>
#endif

namespace kfac::hd {

constexpr int kWarp = 32;
constexpr int kTile = 16;

KFAC_HD int warp_of(const Idx& i) { return i.thread / kWarp; }
KFAC_HD int warps_of(const Idx& i) { return i.threads / kWarp; }

// C[16×16] (float, row-major, ldc) = (acc ? C : 0) + A·B over k = 0..K−1 (K a multiple of 16):
//   A is 16×K, row-major (A[r·lda + k]) or, with TransA, stored transposed (A[k·lda + r]);
//   B is K×16, row-major (B[k·ldb + c]) or, with TransB, stored transposed (B[c·ldb + k]).
template <bool TransA, bool TransB>
KFAC_HD void mma_tile(float* C, int ldc, const bf16* A, int lda, const bf16* B, int ldb, int K, bool acc,
                      const Idx& i) {
#if defined(__CUDA_ARCH__)
  using namespace nvcuda;
  using LA = typename std::conditional<TransA, wmma::col_major, wmma::row_major>::type;
  using LB = typename std::conditional<TransB, wmma::col_major, wmma::row_major>::type;
  (void)i;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
  if (acc)
    wmma::load_matrix_sync(c, C, unsigned(ldc), wmma::mem_row_major);
  else
    wmma::fill_fragment(c, 0.f);
  const __nv_bfloat16* a = reinterpret_cast<const __nv_bfloat16*>(A);
  const __nv_bfloat16* b = reinterpret_cast<const __nv_bfloat16*>(B);
  for (int k0 = 0; k0 < K; k0 += kTile) {
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LB> fb;
    wmma::load_matrix_sync(fa, a + (TransA ? int64_t(k0) * lda : k0), unsigned(lda));
    wmma::load_matrix_sync(fb, b + (TransB ? k0 : int64_t(k0) * ldb), unsigned(ldb));
    wmma::mma_sync(c, fa, fb, c);
  }
  wmma::store_matrix_sync(C, c, unsigned(ldc), wmma::mem_row_major);
#else
  if (i.thread % kWarp != 0) return;
  for (int r = 0; r < kTile; ++r)
    for (int c = 0; c < kTile; ++c) {
      float s = acc ? C[r * ldc + c] : 0.f;
      for (int k = 0; k < K; ++k) {
        const float a = bf16_to_f32((TransA ? A[k * lda + r] : A[r * lda + k]).bits);
        const float b = bf16_to_f32((TransB ? B[c * ldb + k] : B[k * ldb + c]).bits);
        s += a * b;
      }
      C[r * ldc + c] = s;
    }
#endif
}

}  // namespace kfac::hd
