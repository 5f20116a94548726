// AMX kernel of gemm_bf16 (Intel Sapphire Rapids and later): tdpbf16ps multiplies a 16×32
// bf16 tile of A by a 32×16 tile of B held in VNNI order (pairs of k side by side) and adds
// into a 16×16 float tile. op(B) is packed once (amx_pack, before the thread pool runs, or
// cached with a frozen weight) into zero-padded tiles; a tile of A is loaded straight from A
// when it is whole (16 rows, 32 k) and otherwise copied into a zero-padded stack buffer, so no
// tile load reads past a tensor and nothing is allocated inside the pool. Each C tile is
// stored to a stack buffer and added into C for the rows and columns that exist.
// The OS must grant the tile data permission (arch_prctl ARCH_REQ_XCOMP_PERM) before the first
// tile instruction; bf16_kernel_supported(Amx) asks once and the dispatch never picks AMX
// without it. The tile configuration is per thread, so every call loads and releases it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "bf16.h"

#include <algorithm>

#include "threadpool.h"

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

int64_t amx_packed_size(int64_t N, int64_t K) { return (N + TN - 1) / TN * TN * ((K + TK - 1) / TK * TK); }

void amx_pack(int64_t N, int64_t K, Bf16B B, uint16_t* out) {
  const int64_t nkb = (K + TK - 1) / TK, njb = (N + TN - 1) / TN;
  parallel_for(njb, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t jb = j0; jb < j1; ++jb)
      for (int64_t kb = 0; kb < nkb; ++kb) {
        uint16_t* t = out + (jb * nkb + kb) * (TK / 2) * (TN * 2);
        for (int64_t kk = 0; kk < TK; ++kk)
          for (int64_t jj = 0; jj < TN; ++jj) {
            const int64_t k = kb * TK + kk, j = jb * TN + jj;
            t[(kk / 2) * (TN * 2) + jj * 2 + (kk & 1)] = k < K && j < N ? B.at(k, j) : uint16_t(0);
          }
      }
  });
}

KFAC_AMX void amx(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* Bp,
                  float* C, int64_t ldc, bool accumulate) {
  const int64_t nkb = (K + TK - 1) / TK, njb = (N + TN - 1) / TN;
  alignas(64) uint16_t at[TM * TK];  // an A tile with tails zero padded
  alignas(64) float ct[TM * TN];
  TileConfig cfg;
  cfg.rows[0] = TM; cfg.colsb[0] = TN * 4;          // tmm0: C
  cfg.rows[1] = TM; cfg.colsb[1] = TK * 2;          // tmm1: A
  cfg.rows[2] = TK / 2; cfg.colsb[2] = TN * 4;      // tmm2: B (VNNI)
  _tile_loadconfig(&cfg);
  for (int64_t i0 = m0; i0 < m1; i0 += TM) {
    const int64_t mr = m1 - i0 < TM ? m1 - i0 : TM;
    for (int64_t jb = 0; jb < njb; ++jb) {
      _tile_zero(0);
      for (int64_t kb = 0; kb < nkb; ++kb) {
        const int64_t k0 = kb * TK, kn = K - k0 < TK ? K - k0 : TK;
        if (mr == TM && kn == TK) {
          _tile_loadd(1, A + i0 * lda + k0, lda * 2);
        } else {
          std::fill(at, at + TM * TK, uint16_t(0));
          for (int64_t r = 0; r < mr; ++r)
            for (int64_t k = 0; k < kn; ++k) at[r * TK + k] = A[(i0 + r) * lda + k0 + k];
          _tile_loadd(1, at, TK * 2);
        }
        _tile_loadd(2, Bp + (jb * nkb + kb) * (TK / 2) * (TN * 2), TN * 4);
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
// Never called: bf16_kernel_supported(Amx) is false in this build.
int64_t amx_packed_size(int64_t N, int64_t K) { return 0; }
void amx_pack(int64_t N, int64_t K, Bf16B B, uint16_t* out) {}
void amx(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* Bp, float* C,
         int64_t ldc, bool accumulate) {}
}  // namespace kfac::cpu::bf16k

#endif
