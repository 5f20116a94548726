#include "elementwise.cuh"

#include "context.cuh"

namespace kfac::cuda {

namespace {

__global__ void fill_kernel(float* x, int64_t n, float v) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) x[i] = v;
}

__global__ void add_kernel(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

__global__ void scale_kernel(const float* x, float alpha, float* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = alpha * x[i];
}

// y += alpha·x, rounded like the CPU's (one multiply, one add; no FMA contraction).
__global__ void axpy_kernel(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}

// One float64 partial per block (grid-stride), combined on the host in block order: the
// result does not depend on scheduling.
__global__ void reduce_kernel(const float* x, const float* y, int64_t n, int kind, double* partial) {
  __shared__ double s[kThreads];
  double acc = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = double(x[i]);
    acc += kind == 0 ? v : kind == 1 ? v * v : v * double(y[i]);
  }
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

unsigned grid(int64_t n) {
  unsigned b = blocks_for(n);
  return b > 1024 ? 1024 : b;
}

}  // namespace

void fill(float* x, int64_t n, float value) {
  if (n <= 0) return;
  Context& c = Context::get();
  fill_kernel<<<grid(n), kThreads, 0, c.stream()>>>(x, n, value);
  check(cudaGetLastError(), "fill kernel");
}

void add(const float* a, const float* b, float* out, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  add_kernel<<<grid(n), kThreads, 0, c.stream()>>>(a, b, out, n);
  check(cudaGetLastError(), "add kernel");
}

void scale(const float* x, float alpha, float* out, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  scale_kernel<<<grid(n), kThreads, 0, c.stream()>>>(x, alpha, out, n);
  check(cudaGetLastError(), "scale kernel");
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  if (n <= 0) return;
  Context& c = Context::get();
  axpy_kernel<<<grid(n), kThreads, 0, c.stream()>>>(alpha, x, y, n);
  check(cudaGetLastError(), "axpy kernel");
}

double reduce(const float* x, const float* y, int64_t n, int kind) {
  if (n <= 0) return 0.0;
  Context& c = Context::get();
  const unsigned g = grid(n);
  double* partial = static_cast<double*>(c.scratch(3, g * sizeof(double)));
  reduce_kernel<<<g, kThreads, 0, c.stream()>>>(x, y, n, kind, partial);
  check(cudaGetLastError(), "reduction kernel");
  double host[1024];
  copy_to_host(host, partial, g * sizeof(double));
  double total = 0;
  for (unsigned i = 0; i < g; ++i) total += host[i];
  return total;
}

}  // namespace kfac::cuda
