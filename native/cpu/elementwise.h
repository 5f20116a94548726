// Elementwise kernels on contiguous f32 buffers. Outputs are overwritten (=),
// except axpy which accumulates into y (+=) as BLAS does.
#pragma once
#include <cstdint>

namespace kfac::cpu {

void fill(float* x, int64_t n, float value);
void copy(const float* src, float* dst, int64_t n);
// out = a + b (out may alias a or b)
void add(const float* a, const float* b, float* out, int64_t n);
// out = alpha · x (out may alias x)
void scale(const float* x, float alpha, float* out, int64_t n);
// y += alpha · x
void axpy(float alpha, const float* x, float* y, int64_t n);
// out[b][j][i] = in[b][i][j] for `batch` row-major rows×cols matrices (no aliasing)
void transpose(const float* in, float* out, int64_t batch, int64_t rows, int64_t cols);

}  // namespace kfac::cpu
