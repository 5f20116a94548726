// AMX kernel of gemm_bf16_nt (Intel Sapphire Rapids and later): tdpbf16ps multiplies a 16×32
// bf16 tile of A by a 32×16 tile of B held in VNNI order (pairs of k side by side) and adds
// into a 16×16 float tile. Rows of A and B are copied into zero-padded, tile-shaped buffers
// first (so no tile load reads past a tensor, and tails of M, N and K need no special case);
// each C tile is stored to a small buffer and added into C for the rows and columns that exist.
// The OS must grant the tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM) before the first
// tile instruction; bf16_kernel_supported(Amx) asks once and the dispatch never picks AMX
// without it. The tile configuration is per thread, so every call loads and releases it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "bf16.h"

#include <algorithm>
#include <vector>

#if defined(__linux__) && defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 11))
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KFAC_AMX __attribute__((target("amx-tile,amx-bf16,avx512f")))

namespace kfac::cpu::bf16k {

namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

constexpr int64_t TM = 16, TN = 16, TK = 32;  // C tile 16×16 f32; A tile 16×32 bf16; B tile 16 (k pairs) × 32

}  // namespace

bool amx_compiled() { return true; }

bool amx_request_permission() {
  static const bool granted = [] {
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
}

KFAC_AMX void amx(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B, float* C,
                  int64_t ldc, bool accumulate) {
  const int64_t Kp = (K + TK - 1) / TK * TK;
  const int64_t Np = (N + TN - 1) / TN * TN;
  // B in VNNI tiles: for column block jb and k block kb, 16 rows (k pairs) × 16 columns × 2.
  std::vector<uint16_t> bp(size_t(Np * Kp), 0);
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t jb = j / TN, jj = j % TN, kb = k / TK, kk = k % TK;
      bp[size_t(((jb * (Kp / TK) + kb) * (TK / 2) + kk / 2) * (TN * 2) + jj * 2 + (kk & 1))] = B.at(k, j);
    }
  std::vector<uint16_t> ap(size_t(TM * Kp));
  alignas(64) float ct[TM * TN];
  TileConfig cfg;
  cfg.rows[0] = TM; cfg.colsb[0] = TN * 4;          // tmm0: C
  cfg.rows[1] = TM; cfg.colsb[1] = TK * 2;          // tmm1: A
  cfg.rows[2] = TK / 2; cfg.colsb[2] = TN * 4;      // tmm2: B (VNNI)
  _tile_loadconfig(&cfg);
  for (int64_t i0 = m0; i0 < m1; i0 += TM) {
    const int64_t mr = m1 - i0 < TM ? m1 - i0 : TM;
    std::fill(ap.begin(), ap.end(), uint16_t(0));
    for (int64_t r = 0; r < mr; ++r)
      for (int64_t k = 0; k < K; ++k) ap[size_t(r * Kp + k)] = A[(i0 + r) * lda + k];
    for (int64_t jb = 0; jb < Np / TN; ++jb) {
      _tile_zero(0);
      for (int64_t kb = 0; kb < Kp / TK; ++kb) {
        _tile_loadd(1, ap.data() + kb * TK, Kp * 2);
        _tile_loadd(2, bp.data() + (jb * (Kp / TK) + kb) * (TK / 2) * (TN * 2), TN * 4);
        _tile_dpbf16ps(0, 1, 2);
      }
      _tile_stored(0, ct, TN * 4);
      const int64_t nc = N - jb * TN < TN ? N - jb * TN : TN;
      for (int64_t r = 0; r < mr; ++r)
        for (int64_t c = 0; c < nc; ++c) {
          float* dst = C + (i0 + r) * ldc + jb * TN + c;
          *dst = accumulate ? *dst + ct[r * TN + c] : ct[r * TN + c];
        }
    }
  }
  _tile_release();
}

}  // namespace kfac::cpu::bf16k

#else

namespace kfac::cpu::bf16k {
bool amx_compiled() { return false; }
bool amx_request_permission() { return false; }
void amx(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B, float* C,
         int64_t ldc, bool accumulate) {
  portable(m0, m1, N, K, A, lda, B, C, ldc, accumulate);
}
}  // namespace kfac::cpu::bf16k

#endif
