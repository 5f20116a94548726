// Small device kernels every op family shares (row-major [R, C] matrices throughout).
// Argument checks live in core (native/core), never here.
#pragma once
#include <cstdint>

#include "../core/tensor.h"

namespace kfac::cuda {

// out[B, C, R] = in[B, R, C]ᵀ per batch (out must not alias in).
void transpose(const float* in, float* out, int64_t batch, int64_t R, int64_t C);
// A[n, n] (leading dimension lda): A[i][j] = A[j][i] for j > i (lower → upper).
void mirror_lower(float* A, int64_t n, int64_t lda);
// True when every element of x[n] is finite (one reduction, one 4-byte download).
bool all_finite(const float* x, int64_t n);
// Σ A[i][i] of A[n, n], accumulated in float64 (one small download).
double trace(const float* A, int64_t n);
// y[n] = bf16(x[n]) and back.
void f32_to_bf16(const float* x, void* y, int64_t n);
void bf16_to_f32(const void* x, float* y, int64_t n);
// x[n] = max(x, 0)
void clamp_nonneg(float* x, int64_t n);
// A[n, n] += delta·I
void add_diagonal(float* A, int64_t n, float delta);
// out[n, n] = I
void set_identity(float* out, int64_t n);

}  // namespace kfac::cuda
