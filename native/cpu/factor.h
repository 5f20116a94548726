// K-FAC factor update on the CPU: one fused exponential moving average of XᵀX.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// F[D×D] ← beta·F + alpha·X̃ᵀX̃, X[R×d] row-major with leading dimension ldx (≥ d),
// X̃ = X or [X | 1] when `bias` (D = d or d+1; the ones column is never built: the last
// row of X̃ᵀX̃ is the column sums of X and its corner is R). F has leading dimension ldf.
// Overwrites F (accumulates only through beta). Only F's lower triangle is read; the
// upper triangle is written as its mirror, so F comes out exactly symmetric.
// beta == 0 never reads F (NaN or Inf already there cannot leak into the result).
// The K-FAC weighting alpha = (1−beta)·scale/R is applied by the caller (see ops).
void factor_update(const float* X, int64_t R, int64_t d, int64_t ldx, bool bias, float beta,
                   float alpha, float* F, int64_t ldf);

// C[D×D] lower triangle (diagonal included) ← beta·C + alpha·X̃ᵀX̃ for X[K×n] (leading
// dimension ldx), X̃ = X (D = n) or, with `ones`, [X | 1] (D = n + 1, the ones column never
// built). The strictly upper triangle of C is never read; it is left alone, or with `mirror`
// written as the mirror of the lower one. beta == 0 never reads C.
// A packed symmetric driver on the GEMM micro-kernels (syrk.cpp).
void syrk_lower_t(int64_t n, int64_t K, float alpha, const float* X, int64_t ldx, float beta,
                  float* C, int64_t ldc, bool ones = false, bool mirror = false);

// C[n×n] lower triangle ← beta·C + alpha·X·Xᵀ for X[n×K] (leading dimension ldx).
// Same contract for the upper triangle as syrk_lower_t.
void syrk_lower_n(int64_t n, int64_t K, float alpha, const float* X, int64_t ldx, float beta,
                  float* C, int64_t ldc);

// Copies the strictly lower triangle of C[n×n] onto the upper one.
void mirror_lower(float* C, int64_t n, int64_t ldc);

}  // namespace kfac::cpu
