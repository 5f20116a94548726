// Elementwise ops and float64 reductions on the GPU (the tensor basics of the op list):
// fill, add, scale, axpy; sum, Σx², ⟨x, y⟩ accumulated in float64 like the CPU's.
#pragma once
#include <cstdint>

namespace kfac::cuda {

void fill(float* x, int64_t n, float value);
void add(const float* a, const float* b, float* out, int64_t n);
void scale(const float* x, float alpha, float* out, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);
// kind 0: Σx, 1: Σx², 2: Σx·y (y used only for kind 2). Waits for the result.
double reduce(const float* x, const float* y, int64_t n, int kind);

}  // namespace kfac::cuda
