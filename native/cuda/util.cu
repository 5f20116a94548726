#include "util.cuh"

#include <cuda_bf16.h>

#include <string>

#include "../core/check.h"
#include "context.cuh"

namespace kfac::cuda {

namespace {

constexpr int kTile = 32;

// grid (ceil(C/32), ceil(R/32), B), block (32, 8)
__global__ void transpose_kernel(const float* __restrict__ in, float* __restrict__ out, int64_t R, int64_t C) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t off = int64_t(blockIdx.z) * R * C;
  int64_t c = int64_t(blockIdx.x) * kTile + threadIdx.x;
  for (int k = threadIdx.y; k < kTile; k += 8) {
    int64_t r = int64_t(blockIdx.y) * kTile + k;
    if (r < R && c < C) tile[k][threadIdx.x] = in[off + r * C + c];
  }
  __syncthreads();
  int64_t r = int64_t(blockIdx.y) * kTile + threadIdx.x;
  for (int k = threadIdx.y; k < kTile; k += 8) {
    int64_t cc = int64_t(blockIdx.x) * kTile + k;
    if (cc < C && r < R) out[off + cc * R + r] = tile[threadIdx.x][k];
  }
}

// grid (t, t), block (32, 8): destination tile (row block y, column block x) of the upper
// triangle, read as the transposed lower tile (x, y) through shared memory.
__global__ void mirror_kernel(float* A, int64_t n, int64_t lda) {
  __shared__ float tile[kTile][kTile + 1];
  int64_t bi = blockIdx.y, bj = blockIdx.x;  // destination tile (row block bi, column block bj), bj >= bi
  if (bj < bi) return;
  // load source tile (rows bj, cols bi) — lower triangle
  for (int k = threadIdx.y; k < kTile; k += 8) {
    int64_t r = bj * kTile + k, c = bi * kTile + threadIdx.x;
    if (r < n && c < n) tile[k][threadIdx.x] = A[r * lda + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += 8) {
    int64_t i = bi * kTile + k, j = bj * kTile + threadIdx.x;
    if (i < n && j < n && j > i) A[i * lda + j] = tile[threadIdx.x][k];
  }
}

__global__ void finite_kernel(const float* __restrict__ x, int64_t n, int* bad) {
  int local = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    unsigned u = __float_as_uint(x[i]);
    local |= (u & 0x7f800000u) == 0x7f800000u;
  }
  if (__syncthreads_or(local) && threadIdx.x == 0) atomicOr(bad, 1);
}

__global__ void trace_kernel(const float* A, int64_t n, double* out) {
  __shared__ double s[kThreads];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += double(A[i * n + i]);
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = s[0];
}

__global__ void to_bf16_kernel(const float* x, __nv_bfloat16* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void from_bf16_kernel(const __nv_bfloat16* x, float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}

__global__ void clamp_kernel(float* x, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = fmaxf(x[i], 0.f);
}

__global__ void diag_kernel(float* A, int64_t n, float delta) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    A[i * n + i] += delta;
}

__global__ void identity_kernel(float* A, int64_t n) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n * n; k += int64_t(gridDim.x) * blockDim.x)
    A[k] = (k / n == k % n) ? 1.f : 0.f;
}

}  // namespace

void transpose(const float* in, float* out, int64_t batch, int64_t R, int64_t C) {
  if (batch <= 0 || R <= 0 || C <= 0) return;
  Context& c = Context::get();
  dim3 grid(unsigned((C + kTile - 1) / kTile), unsigned((R + kTile - 1) / kTile), unsigned(batch));
  transpose_kernel<<<grid, dim3(kTile, 8), 0, c.stream()>>>(in, out, R, C);
  check(cudaGetLastError(), "transpose kernel");
}

void mirror_lower(float* A, int64_t n, int64_t lda) {
  if (n <= 1) return;
  Context& c = Context::get();
  unsigned t = unsigned((n + kTile - 1) / kTile);
  mirror_kernel<<<dim3(t, t), dim3(kTile, 8), 0, c.stream()>>>(A, n, lda);
  check(cudaGetLastError(), "mirror kernel");
}

bool all_finite(const float* x, int64_t n) {
  if (n <= 0) return true;
  Context& c = Context::get();
  int* flag = static_cast<int*>(c.scratch(3, sizeof(int)));
  check(cudaMemsetAsync(flag, 0, sizeof(int), c.stream()), "cudaMemset");
  finite_kernel<<<blocks_for(n) > 1024 ? 1024 : blocks_for(n), kThreads, 0, c.stream()>>>(x, n, flag);
  check(cudaGetLastError(), "finite kernel");
  int bad = 0;
  copy_to_host(&bad, flag, sizeof bad);
  return bad == 0;
}

double trace(const float* A, int64_t n) {
  if (n <= 0) return 0.0;
  Context& c = Context::get();
  double* d = static_cast<double*>(c.scratch(3, sizeof(double)));
  trace_kernel<<<1, kThreads, 0, c.stream()>>>(A, n, d);
  check(cudaGetLastError(), "trace kernel");
  double t = 0;
  copy_to_host(&t, d, sizeof t);
  return t;
}

void f32_to_bf16(const float* x, void* y, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  to_bf16_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(x, static_cast<__nv_bfloat16*>(y), n);
  check(cudaGetLastError(), "bf16 conversion kernel");
}

void bf16_to_f32(const void* x, float* y, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  from_bf16_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(static_cast<const __nv_bfloat16*>(x), y, n);
  check(cudaGetLastError(), "bf16 conversion kernel");
}

void clamp_nonneg(float* x, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  clamp_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(x, n);
  check(cudaGetLastError(), "clamp kernel");
}

void add_diagonal(float* A, int64_t n, float delta) {
  if (n <= 0) return;
  Context& c = Context::get();
  diag_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(A, n, delta);
  check(cudaGetLastError(), "diagonal kernel");
}

void set_identity(float* A, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  identity_kernel<<<blocks_for(n * n), kThreads, 0, c.stream()>>>(A, n);
  check(cudaGetLastError(), "identity kernel");
}

}  // namespace kfac::cuda
