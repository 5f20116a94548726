#include "eigh.cuh"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "../core/check.h"
#include "../core/record_math.h"
#include "context.cuh"
#include "gemm.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

__global__ void to_f64_kernel(const float* x, double* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = double(x[i]);
}

__global__ void to_f32_kernel(const double* x, float* y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = float(x[i]);
}

// out[0] += Σ (x − y)², out[1] += Σ x² (y may be null: then only out[0] = Σ x²), float64.
__global__ void sq_kernel(const float* x, const float* y, int64_t n, double* out) {
  double a = 0, b = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = x[i];
    double dlt = y ? v - double(y[i]) : v;
    a += dlt * dlt;
    b += v * v;
  }
  for (int o = 16; o > 0; o /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(out, a);
    atomicAdd(out + 1, b);
  }
}

// Σ S_ij² and Σ_{i≠j} S_ij² of the symmetrised S [n, n] → out[0], out[1].
__global__ void offdiag_kernel(const float* S, int64_t n, double* out) {
  double t = 0, o = 0;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n * n; k += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = k / n, j = k % n;
    double v = 0.5 * (double(S[i * n + j]) + double(S[j * n + i]));
    t += v * v;
    if (i != j) o += v * v;
  }
  for (int w = 16; w > 0; w /= 2) {
    t += __shfl_down_sync(0xffffffffu, t, w);
    o += __shfl_down_sync(0xffffffffu, o, w);
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(out, t);
    atomicAdd(out + 1, o);
  }
}

// Y[n, p] = diag(w) G[n, p]
__global__ void row_scale_kernel(const float* G, const float* w, float* Y, int64_t n, int64_t p) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n * p; k += int64_t(gridDim.x) * blockDim.x)
    Y[k] = G[k] * w[k / p];
}

// values[i] = S[i][i]
__global__ void diag_kernel(const float* S, float* values, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    values[i] = S[i * n + i];
}

// Two float64 sums (x − y)² and x² over n elements.
void sums(const float* x, const float* y, int64_t n, double out[2]) {
  Context& c = Context::get();
  double* d = static_cast<double*>(c.scratch(3, 2 * sizeof(double)));
  check(cudaMemsetAsync(d, 0, 2 * sizeof(double), c.stream()), "cudaMemset");
  if (n > 0) {
    unsigned b = std::min(blocks_for(n), 1024u);
    sq_kernel<<<b, kThreads, 0, c.stream()>>>(x, y, n, d);
    check(cudaGetLastError(), "sum-of-squares kernel");
  }
  copy_to_host(out, d, 2 * sizeof(double));
}

// Solves one symmetric matrix held column-major in W [n, n] (eigenvectors overwrite it),
// values into w [n]; float32 first, then float64. Returns 0 (float32 ok), 1 (float64
// needed) or -1 (both failed).
int syevd_one(float* W, float* w, int64_t n) {
  Context& c = Context::get();
  const int N = int(n);
  int* info = static_cast<int*>(c.scratch(2, sizeof(int)));
  int lwork = 0;
  check(cusolverDnSsyevd_bufferSize(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, N, W, N, w, &lwork),
        "cusolverDnSsyevd_bufferSize");
  DeviceBuffer save(size_t(n) * size_t(n) * sizeof(float));
  copy_device(save.as<float>(), W, size_t(n) * size_t(n) * sizeof(float));
  DeviceBuffer work(size_t(std::max(lwork, 1)) * sizeof(float));
  check(cusolverDnSsyevd(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, N, W, N, w, work.as<float>(),
                         lwork, info),
        "cusolverDnSsyevd");
  int h = 0;
  copy_to_host(&h, info, sizeof h);
  if (h == 0 && all_finite(w, n) && all_finite(W, n * n)) return 0;
  // float64 retry from the saved input
  DeviceBuffer Wd(size_t(n) * size_t(n) * sizeof(double)), wd(size_t(n) * sizeof(double));
  to_f64_kernel<<<blocks_for(n * n), kThreads, 0, c.stream()>>>(save.as<float>(), Wd.as<double>(), n * n);
  check(cudaGetLastError(), "float64 conversion kernel");
  check(cusolverDnDsyevd_bufferSize(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, N, Wd.as<double>(), N,
                                    wd.as<double>(), &lwork),
        "cusolverDnDsyevd_bufferSize");
  DeviceBuffer workd(size_t(std::max(lwork, 1)) * sizeof(double));
  check(cusolverDnDsyevd(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, N, Wd.as<double>(), N,
                         wd.as<double>(), workd.as<double>(), lwork, info),
        "cusolverDnDsyevd");
  copy_to_host(&h, info, sizeof h);
  to_f32_kernel<<<blocks_for(n * n), kThreads, 0, c.stream()>>>(Wd.as<double>(), W, n * n);
  to_f32_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(wd.as<double>(), w, n);
  check(cudaGetLastError(), "float32 conversion kernel");
  if (h == 0 && all_finite(w, n) && all_finite(W, n * n)) return 1;
  return -1;
}

}  // namespace

EighResult eigh(const Tensor& a, const Tensor& values, const Tensor& vectors, bool clamp) {
  const int64_t n = a.dim(0);  // shapes, devices and aliasing checked in core
  if (n > 46340) throw_arg(ErrorCode::Shape, "a", "n below 46341 (cuSOLVER int API)", std::to_string(n));
  EighResult r;
  if (n == 0) return r;
  if (!all_finite(a.f32(), n * n)) throw_arg(ErrorCode::NotFinite, "a", "finite values", "NaN or Inf");
  DeviceBuffer W(size_t(n) * size_t(n) * sizeof(float));
  copy_device(W.as<float>(), a.f32(), a.nbytes());
  int s = syevd_one(W.as<float>(), values.f32(), n);
  if (s < 0) throw_arg(ErrorCode::Numerical, "a", "a matrix cuSOLVER can decompose", "no convergence in float32 or float64");
  r.retried_double = s == 1;
  transpose(W.as<float>(), vectors.f32(), 1, n, n);  // column-major eigenvectors → row-major columns
  if (clamp) clamp_nonneg(values.f32(), n);
  Context::get().synchronize();
  return r;
}

int64_t eigh_batched(const Tensor& a, const Tensor& values, const Tensor& vectors, bool clamp) {
  const int64_t B = a.dim(0), n = a.dim(1);  // shapes, devices and aliasing checked in core
  if (B == 0 || n == 0) return 0;
  if (B > 2147483647LL / (n * n)) throw_arg(ErrorCode::Shape, "a", "fewer than 2^31 elements", shape_str(a.shape()));
  if (!all_finite(a.f32(), a.numel())) throw_arg(ErrorCode::NotFinite, "a", "finite values", "NaN or Inf");
  Context& c = Context::get();
  const size_t nn = size_t(n) * size_t(n);
  DeviceBuffer W(size_t(B) * nn * sizeof(float));
  copy_device(W.as<float>(), a.f32(), a.nbytes());
  int64_t retried = 0;
  if (n <= 32) {
    syevjInfo_t params = nullptr;
    check(cusolverDnCreateSyevjInfo(&params), "cusolverDnCreateSyevjInfo");
    struct Guard {
      syevjInfo_t p;
      ~Guard() { cusolverDnDestroySyevjInfo(p); }
    } guard{params};
    check(cusolverDnXsyevjSetSortEig(params, 1), "cusolverDnXsyevjSetSortEig");
    int lwork = 0;
    check(cusolverDnSsyevjBatched_bufferSize(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n),
                                             W.as<float>(), int(n), values.f32(), &lwork, params, int(B)),
          "cusolverDnSsyevjBatched_bufferSize");
    DeviceBuffer work(size_t(std::max(lwork, 1)) * sizeof(float)), info(size_t(B) * sizeof(int));
    check(cusolverDnSsyevjBatched(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), W.as<float>(),
                                  int(n), values.f32(), work.as<float>(), lwork, info.as<int>(), params, int(B)),
          "cusolverDnSsyevjBatched");
    std::vector<int> h(static_cast<size_t>(B));
    copy_to_host(h.data(), info.as<int>(), h.size() * sizeof(int));
    for (int64_t b = 0; b < B; ++b) {
      if (h[size_t(b)] == 0) continue;  // others: redo this matrix with syevd (float64 if needed)
      copy_device(W.as<float>() + size_t(b) * nn, a.f32() + size_t(b) * nn, nn * sizeof(float));
      int s = syevd_one(W.as<float>() + size_t(b) * nn, values.f32() + b * n, n);
      if (s < 0)
        throw_arg(ErrorCode::Numerical, "a[" + std::to_string(b) + "]", "a matrix cuSOLVER can decompose", "no convergence");
      ++retried;
    }
  } else {
    for (int64_t b = 0; b < B; ++b) {
      int s = syevd_one(W.as<float>() + size_t(b) * nn, values.f32() + b * n, n);
      if (s < 0)
        throw_arg(ErrorCode::Numerical, "a[" + std::to_string(b) + "]", "a matrix cuSOLVER can decompose", "no convergence");
      retried += s;
    }
  }
  transpose(W.as<float>(), vectors.f32(), B, n, n);
  if (clamp) clamp_nonneg(values.f32(), B * n);
  c.synchronize();
  return retried;
}

namespace {

// The record's value slot at `flag` = 1 when every info[b] is 0 and every value and vector
// element is finite, else 0. One block; fixed-order shared-memory AND.
__global__ void solved_kernel(const int* info, int64_t B, const float* values, int64_t nv, const float* vectors,
                              int64_t nq, float* flag) {
  __shared__ int ok[kThreads];
  int mine = 1;
  for (int64_t i = threadIdx.x; i < B; i += blockDim.x) mine &= info[i] == 0;
  for (int64_t i = threadIdx.x; i < nv; i += blockDim.x) mine &= isfinite(values[i]) ? 1 : 0;
  for (int64_t i = threadIdx.x; i < nq; i += blockDim.x) mine &= isfinite(vectors[i]) ? 1 : 0;
  ok[threadIdx.x] = mine;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) ok[threadIdx.x] &= ok[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) record_math::put(flag, 0, ok[0] ? 1.0 : 0.0);
}

}  // namespace

void eigh_batched_to(const Tensor& a, const Tensor& values, const Tensor& vectors, bool clamp, float* flag) {
  const int64_t B = a.dim(0), n = a.dim(1);  // shapes, devices, aliasing and the slot checked in core
  Context& c = Context::get();
  const size_t nn = size_t(n) * size_t(n);
  DeviceBuffer info(size_t(std::max<int64_t>(B, 1)) * sizeof(int));
  check(cudaMemsetAsync(info.as<int>(), 0, size_t(std::max<int64_t>(B, 1)) * sizeof(int), c.stream()), "cudaMemset");
  if (B > 0 && n > 0) {
    if (B > 2147483647LL / (n * n)) throw_arg(ErrorCode::Shape, "a", "fewer than 2^31 elements", shape_str(a.shape()));
    DeviceBuffer W(size_t(B) * nn * sizeof(float));
    copy_device(W.as<float>(), a.f32(), a.nbytes());
    if (n <= 32) {
      // the solver's settings (sorted values), made once: the launch below is not waited for, so
      // they must outlive it
      static const syevjInfo_t params = [] {
        syevjInfo_t p = nullptr;
        check(cusolverDnCreateSyevjInfo(&p), "cusolverDnCreateSyevjInfo");
        check(cusolverDnXsyevjSetSortEig(p, 1), "cusolverDnXsyevjSetSortEig");
        return p;
      }();
      int lwork = 0;
      check(cusolverDnSsyevjBatched_bufferSize(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n),
                                               W.as<float>(), int(n), values.f32(), &lwork, params, int(B)),
            "cusolverDnSsyevjBatched_bufferSize");
      DeviceBuffer work(size_t(std::max(lwork, 1)) * sizeof(float));
      check(cusolverDnSsyevjBatched(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), W.as<float>(),
                                    int(n), values.f32(), work.as<float>(), lwork, info.as<int>(), params, int(B)),
            "cusolverDnSsyevjBatched");
    } else {
      // one syevd per matrix, each writing its own info (nothing read here)
      int lwork = 0;
      check(cusolverDnSsyevd_bufferSize(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n),
                                        W.as<float>(), int(n), values.f32(), &lwork),
            "cusolverDnSsyevd_bufferSize");
      DeviceBuffer work(size_t(std::max(lwork, 1)) * sizeof(float));
      for (int64_t b = 0; b < B; ++b)
        check(cusolverDnSsyevd(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n),
                               W.as<float>() + size_t(b) * nn, int(n), values.f32() + b * n, work.as<float>(), lwork,
                               info.as<int>() + b),
              "cusolverDnSsyevd");
    }
    transpose(W.as<float>(), vectors.f32(), B, n, n);
  }
  // judged before the clamp (which would turn a NaN value into 0)
  solved_kernel<<<1, kThreads, 0, c.stream()>>>(info.as<int>(), B, values.f32(), B * n, vectors.f32(), B * int64_t(nn),
                                                flag);
  check(cudaGetLastError(), "solved kernel");
  if (clamp && B > 0 && n > 0) clamp_nonneg(values.f32(), B * n);
}

namespace {

// Σx² of x [nx] and of y [ny] in float64, in one read: out[0], out[1] (NaN or Inf when an
// element is: a float32's square never overflows float64, so a finite sum means finite values).
void sum_squares2(const float* x, int64_t nx, const float* y, int64_t ny, double out[2]) {
  Context& c = Context::get();
  double* d = static_cast<double*>(c.scratch(3, 4 * sizeof(double)));
  check(cudaMemsetAsync(d, 0, 4 * sizeof(double), c.stream()), "cudaMemset");
  if (nx > 0) sq_kernel<<<std::min(blocks_for(nx), 1024u), kThreads, 0, c.stream()>>>(x, nullptr, nx, d);
  if (ny > 0) sq_kernel<<<std::min(blocks_for(ny), 1024u), kThreads, 0, c.stream()>>>(y, nullptr, ny, d + 2);
  check(cudaGetLastError(), "sum-of-squares kernel");
  double h[4];
  copy_to_host(h, d, sizeof h);
  out[0] = h[0];
  out[1] = h[2];
}

// ‖A Q − Q Λ‖_F / ‖A‖_F from 16 Gaussian probes (the generator and seed of the CPU code), with
// ‖A‖²_F given (the caller read it): one read. A non-finite Q or Λ makes it NaN, which no bound
// accepts.
double probe_residual(int64_t n, const float* A, const float* Q, const float* w, double a_sq) {
  Context& c = Context::get();
  const int64_t p = 16;
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> gauss;
  std::vector<float> g(size_t(n * p));
  for (auto& v : g) v = float(gauss(rng));
  DeviceBuffer G(g.size() * sizeof(float)), Y(g.size() * sizeof(float)), Z(g.size() * sizeof(float)),
      U(g.size() * sizeof(float));
  copy_to_device(G.as<float>(), g.data(), g.size() * sizeof(float));
  sgemm(false, false, n, p, n, 1.f, Q, n, G.as<float>(), p, 0.f, Y.as<float>(), p);  // Y = Q G
  sgemm(false, false, n, p, n, 1.f, A, n, Y.as<float>(), p, 0.f, Z.as<float>(), p);  // Z = A Y
  row_scale_kernel<<<blocks_for(n * p), kThreads, 0, c.stream()>>>(G.as<float>(), w, Y.as<float>(), n, p);
  check(cudaGetLastError(), "row scale kernel");
  sgemm(false, false, n, p, n, 1.f, Q, n, Y.as<float>(), p, 0.f, U.as<float>(), p);  // U = Q Λ G
  double r[2];
  sums(Z.as<float>(), U.as<float>(), n * p, r);
  if (a_sq == 0) return std::sqrt(r[0] / double(p));
  return std::sqrt(r[0] / double(p) / a_sq);
}

}  // namespace

cpu::RefreshReport eigh_refresh(const Tensor& a, const Tensor& prev, const Tensor* prev_values, const Tensor& values,
                                const Tensor& vectors, const cpu::RefreshOptions& opt) {
  const int64_t n = a.dim(0);  // shapes, devices, aliasing and options checked in core
  cpu::RefreshReport rep;
  if (n == 0) return rep;
  // The host decides here (accept the warm basis or solve cold), so it reads: ‖A‖² and ‖Q‖² (their
  // finiteness) in one read, the off-diagonal mass, syevj's info, the residual. The results stay
  // on the device, queued: no wait at the end.
  Context& c = Context::get();
  const size_t nn = size_t(n) * size_t(n);
  double sq[2];
  sum_squares2(a.f32(), n * n, prev.f32(), n * n, sq);
  if (!std::isfinite(sq[0])) throw_arg(ErrorCode::NotFinite, "a", "finite values", "NaN or Inf");
  if (!std::isfinite(sq[1])) throw_arg(ErrorCode::NotFinite, "previousVectors", "finite values", "NaN or Inf");
  const double a_sq = sq[0];
  if (a_sq == 0) {  // A = 0: any basis is an eigenbasis
    if (vectors.raw() != prev.raw()) copy_device(vectors.f32(), prev.f32(), nn * sizeof(float));
    check(cudaMemsetAsync(values.f32(), 0, size_t(n) * sizeof(float), c.stream()), "cudaMemset");
    return rep;
  }
  DeviceBuffer T(nn * sizeof(float)), S(nn * sizeof(float)), Qn(nn * sizeof(float)), w(size_t(n) * sizeof(float));
  sgemm(false, false, n, n, n, 1.f, a.f32(), n, prev.f32(), n, 0.f, T.as<float>(), n);   // T = A Q
  sgemm(true, false, n, n, n, 1.f, prev.f32(), n, T.as<float>(), n, 0.f, S.as<float>(), n);  // S = Qᵀ T
  double od[2];
  {
    double* d = static_cast<double*>(c.scratch(3, 2 * sizeof(double)));
    check(cudaMemsetAsync(d, 0, 2 * sizeof(double), c.stream()), "cudaMemset");
    offdiag_kernel<<<std::min(blocks_for(int64_t(nn)), 1024u), kThreads, 0, c.stream()>>>(S.as<float>(), n, d);
    check(cudaGetLastError(), "off-diagonal kernel");
    copy_to_host(od, d, sizeof od);
  }
  rep.offdiag = od[0] > 0 ? std::sqrt(od[1] / od[0]) : 0;
  bool warm = rep.offdiag <= opt.max_offdiag && n <= 46340;
  if (warm) {
    // Jacobi on the nearly diagonal S (its lower triangle), at most 8 sweeps.
    syevjInfo_t params = nullptr;
    check(cusolverDnCreateSyevjInfo(&params), "cusolverDnCreateSyevjInfo");
    struct Guard {
      syevjInfo_t p;
      ~Guard() { cusolverDnDestroySyevjInfo(p); }
    } guard{params};
    check(cusolverDnXsyevjSetMaxSweeps(params, 8), "cusolverDnXsyevjSetMaxSweeps");
    check(cusolverDnXsyevjSetTolerance(params, 1e-7), "cusolverDnXsyevjSetTolerance");
    check(cusolverDnXsyevjSetSortEig(params, 1), "cusolverDnXsyevjSetSortEig");  // ascending, as the CPU
    int lwork = 0;
    check(cusolverDnSsyevj_bufferSize(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), S.as<float>(),
                                      int(n), w.as<float>(), &lwork, params),
          "cusolverDnSsyevj_bufferSize");
    DeviceBuffer work(size_t(std::max(lwork, 1)) * sizeof(float));
    int* info = static_cast<int*>(c.scratch(2, sizeof(int)));
    check(cusolverDnSsyevj(c.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, int(n), S.as<float>(), int(n),
                           w.as<float>(), work.as<float>(), lwork, info, params),
          "cusolverDnSsyevj");
    int h = 0;
    copy_to_host(&h, info, sizeof h);
    int sweeps = 0;
    check(cusolverDnXsyevjGetSweeps(c.solver(), params, &sweeps), "cusolverDnXsyevjGetSweeps");
    rep.sweeps = sweeps;
    warm = h == 0;
    if (warm) {
      // S holds V column-major, i.e. row-major Vᵀ: Q_new = Q · (Vᵀ)ᵀ.
      sgemm(false, true, n, n, n, 1.f, prev.f32(), n, S.as<float>(), n, 0.f, Qn.as<float>(), n);
      // a non-finite Q_new (or w) gives a NaN residual: refused by the bound, solved cold below
      const double residual = probe_residual(n, a.f32(), Qn.as<float>(), w.as<float>(), a_sq);
      if (std::isfinite(residual)) rep.residual = residual;
      if (residual <= opt.max_residual) {
        copy_device(vectors.f32(), Qn.as<float>(), nn * sizeof(float));
        copy_device(values.f32(), w.as<float>(), size_t(n) * sizeof(float));
        if (opt.clamp_nonneg) clamp_nonneg(values.f32(), n);
        return rep;
      }
    }
  }
  // Cold solve.
  rep.fell_back = true;
  copy_device(T.as<float>(), a.f32(), nn * sizeof(float));
  int s = n <= 46340 ? syevd_one(T.as<float>(), w.as<float>(), n) : -1;
  if (s >= 0) {
    rep.retried_double = s == 1;
    transpose(T.as<float>(), vectors.f32(), 1, n, n);
    copy_device(values.f32(), w.as<float>(), size_t(n) * sizeof(float));
    if (opt.clamp_nonneg) clamp_nonneg(values.f32(), n);
    rep.residual = probe_residual(n, a.f32(), vectors.f32(), values.f32(), a_sq);
    return rep;
  }
  // Every solve failed: keep the previous basis, with the previous values or the Rayleigh
  // quotients diag(Qᵀ A Q).
  rep.retried_double = true;
  rep.kept_previous = true;
  if (prev_values) {
    copy_device(w.as<float>(), prev_values->f32(), size_t(n) * sizeof(float));
  } else {
    sgemm(false, false, n, n, n, 1.f, a.f32(), n, prev.f32(), n, 0.f, T.as<float>(), n);
    sgemm(true, false, n, n, n, 1.f, prev.f32(), n, T.as<float>(), n, 0.f, S.as<float>(), n);
    diag_kernel<<<blocks_for(n), kThreads, 0, c.stream()>>>(S.as<float>(), w.as<float>(), n);
    check(cudaGetLastError(), "diagonal kernel");
  }
  if (vectors.raw() != prev.raw()) copy_device(vectors.f32(), prev.f32(), nn * sizeof(float));
  copy_device(values.f32(), w.as<float>(), size_t(n) * sizeof(float));
  if (opt.clamp_nonneg) clamp_nonneg(values.f32(), n);
  rep.residual = probe_residual(n, a.f32(), vectors.f32(), values.f32(), a_sq);
  return rep;
}

}  // namespace kfac::cuda
