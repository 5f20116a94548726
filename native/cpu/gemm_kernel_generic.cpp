// Portable micro-kernel of the single-precision GEMM (see gemm_kernels.h for the panel layouts):
// plain C++ the compiler may vectorise for the baseline ISA. Tile: C[4×16] row-major.
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm_kernels.h"

namespace kfac::cpu::gemm {

namespace {

constexpr int MR = 4, NR = 16, KCS = 512;

// C[R×nr] = alpha · A[R×kc] · B[kc×16] + beta · C, R <= 4 rows, nr <= 16 columns.
template <int R, bool KMAJ>
void tile(int nr, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc,
          float alpha, float beta) {
  float acc[R][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* b = pb + p * NR;
    for (int i = 0; i < R; ++i) {
      const float a = KMAJ ? pa[p * MR + i] : pa[i * KCS + p];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * b[j];
    }
  }
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.f)
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j];
    else
      for (int j = 0; j < nr; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
  }
}

using TileFn = void (*)(int, int64_t, const float*, const float*, float*, int64_t, float, float);

template <bool KMAJ>
constexpr TileFn kTiles[MR + 1] = {nullptr, tile<1, KMAJ>, tile<2, KMAJ>, tile<3, KMAJ>,
                                   tile<4, KMAJ>};

void kernel(APack layout, int mr, int nr, int64_t kc, const float* pa, const float* pb, float* c,
            int64_t ldc, float alpha, float beta) {
  if (layout == APack::KMajor)
    kTiles<true>[mr](nr, kc, pa, pb, c, ldc, alpha, beta);
  else
    kTiles<false>[mr](nr, kc, pa, pb, c, ldc, alpha, beta);
}

}  // namespace

const KernelSet& kernels_generic() {
  static const KernelSet k{"generic", MR, NR, KCS, 256, 64, 2048, kernel, pack_b_portable};
  return k;
}

}  // namespace kfac::cpu::gemm
