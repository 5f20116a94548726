#include "clip.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../core/check.h"
#include "context.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per block of both launches
constexpr int kClipThreads = 256;

struct Chunk {
  int32_t tensor;
  int64_t begin, end;
};

// The device-side layout of one call (uploaded in one copy).
struct Meta {
  float** steps;
  const float** grads;      // null unless Fisher
  const Chunk* chunks;
  const int32_t* first;     // first[i] .. first[i+1]: the chunks of tensor i
  int32_t count;            // tensors
  int32_t mode;             // 0 global, 1 per-tensor, 2 fisher
  double max_norm, c, lr;
};

// What the last block writes (downloaded once at the end).
struct Out {
  double total_sq, vg;
  int32_t bad_step, bad_grad;  // first tensor with a non-finite Σx² / Σxy, or -1
};

__device__ double block_sum(double v, double* sh) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  double t = 0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kClipThreads / 32; ++w) t += sh[w];
  __syncthreads();
  return t;
}

// grid = chunks, block = 256. partial[2k], partial[2k+1]: Σx², Σxy of chunk k.
// The last block to finish writes ss[t] = Σx², vg[t] = the scale as double, scales[t] as float, and *out.
__global__ void reduce_kernel(Meta m, double* partial, double* ss, double* vg, float* scales, Out* out,
                              unsigned* counter) {
  __shared__ double sh[kClipThreads / 32];
  __shared__ bool last;
  const Chunk ch = m.chunks[blockIdx.x];
  const float* x = m.steps[ch.tensor];
  const float* y = m.grads ? m.grads[ch.tensor] : nullptr;
  double a = 0, b = 0;
  for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += kClipThreads) {
    double v = x[i];
    a += v * v;
    if (y) b += v * double(y[i]);
  }
  a = block_sum(a, sh);
  if (y) b = block_sum(b, sh);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = a;
    partial[2 * blockIdx.x + 1] = b;
    __threadfence();
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  // Last block: per-tensor sums (chunks in order), then the scales.
  for (int32_t t = threadIdx.x; t < m.count; t += kClipThreads) {
    double s = 0, d = 0;
    for (int32_t k = m.first[t]; k < m.first[t + 1]; ++k) {
      s += __ldcg(&partial[2 * k]);
      d += __ldcg(&partial[2 * k + 1]);
    }
    ss[t] = s;
    vg[t] = d;
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  Out o{0.0, 0.0, -1, -1};
  for (int32_t t = 0; t < m.count; ++t) {
    if (!isfinite(ss[t]) && o.bad_step < 0) o.bad_step = t;
    if (m.grads && !isfinite(vg[t]) && o.bad_grad < 0) o.bad_grad = t;
    o.total_sq += ss[t];
    o.vg += vg[t];
  }
  const bool bad = o.bad_step >= 0 || o.bad_grad >= 0;
  const double total = sqrt(o.total_sq);
  for (int32_t t = 0; t < m.count; ++t) {
    double s = 1.0;
    if (!bad) {
      if (m.mode == 0) {
        s = total > m.max_norm ? m.max_norm / total : 1.0;
      } else if (m.mode == 1) {
        double nt = sqrt(ss[t]);
        s = nt > m.max_norm ? m.max_norm / nt : 1.0;
      } else {
        double q = m.lr * m.lr * fabs(o.vg);
        s = q > 0.0 ? fmin(1.0, sqrt(m.c / q)) : 1.0;
      }
    }
    scales[t] = float(s);
    vg[t] = s;  // the double scale, for the report
  }
  *out = o;
  *counter = 0;  // ready for the next call
}

// grid = chunks, block = 256: x *= scale of its tensor (skipped when exactly 1).
__global__ void scale_kernel(Meta m, const float* scales) {
  const Chunk ch = m.chunks[blockIdx.x];
  const float s = scales[ch.tensor];
  if (s == 1.f) return;
  float* x = m.steps[ch.tensor];
  for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += kClipThreads) x[i] *= s;
}

size_t align8(size_t n) { return (n + 7) / 8 * 8; }

}  // namespace

ops::ClipResult clip_newton_step(const std::vector<Tensor>& steps, const std::vector<Tensor>* grads,
                                 const ops::ClipOptions& opt) {
  const size_t n = steps.size();
  auto name = [](const char* what, size_t i) { return std::string(what) + "[" + std::to_string(i) + "]"; };
  // Checked in core (native/core/kfac_ops.cpp): devices, shapes, aliasing, options.
  const int mode = opt.mode == ops::ClipMode::Fisher ? 2 : opt.mode == ops::ClipMode::Global ? 0 : 1;
  ops::ClipResult r;
  r.norms.assign(n, 0.0);
  r.scales.assign(n, 1.0);
  r.clipped.assign(n, false);
  if (n > size_t(1) << 30) throw_arg(ErrorCode::InvalidArgument, "tensors", "fewer than 2^30 tensors", std::to_string(n));
  // Host-side layout: steps, grads, first, chunks.
  std::vector<Chunk> chunks;
  std::vector<int32_t> first(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    first[i] = int32_t(chunks.size());
    for (int64_t b = 0; b < steps[i].numel(); b += kChunk)
      chunks.push_back({int32_t(i), b, std::min(steps[i].numel(), b + kChunk)});
  }
  first[n] = int32_t(chunks.size());
  if (chunks.empty()) return r;  // nothing to measure or scale: every norm is 0
  if (chunks.size() > size_t(2147483647)) throw_arg(ErrorCode::Shape, "tensors", "fewer than 2^31 chunks", "more");
  const size_t o_steps = 0, o_grads = align8(n * sizeof(float*)), o_first = o_grads + align8(n * sizeof(float*)),
               o_chunks = o_first + align8((n + 1) * sizeof(int32_t)), meta_bytes = o_chunks + chunks.size() * sizeof(Chunk);
  std::vector<unsigned char> host(meta_bytes);
  for (size_t i = 0; i < n; ++i) {
    float* p = steps[i].f32();
    std::memcpy(&host[o_steps + i * sizeof(float*)], &p, sizeof p);
    const float* g = grads && mode == 2 ? (*grads)[i].f32() : nullptr;
    std::memcpy(&host[o_grads + i * sizeof(float*)], &g, sizeof g);
  }
  std::memcpy(&host[o_first], first.data(), first.size() * sizeof(int32_t));
  std::memcpy(&host[o_chunks], chunks.data(), chunks.size() * sizeof(Chunk));
  Context& c = Context::get();
  unsigned char* meta = static_cast<unsigned char*>(c.scratch(0, meta_bytes));
  // Work area: counter, Out, ss[n], vg[n], scales[n], partial[2·chunks] (the first four are
  // what comes back to the host).
  const size_t w_out = 8, w_ss = w_out + align8(sizeof(Out)), w_vg = w_ss + n * sizeof(double),
               w_scales = w_vg + n * sizeof(double), w_partial = w_scales + align8(n * sizeof(float)),
               work_bytes = w_partial + 2 * chunks.size() * sizeof(double);
  unsigned char* work = static_cast<unsigned char*>(c.scratch(1, work_bytes));
  check(cudaMemcpyAsync(meta, host.data(), meta_bytes, cudaMemcpyHostToDevice, c.stream()), "cudaMemcpy (clip layout)");
  check(cudaMemsetAsync(work, 0, 8, c.stream()), "cudaMemset");
  Meta m;
  m.steps = reinterpret_cast<float**>(meta + o_steps);
  m.grads = mode == 2 ? reinterpret_cast<const float**>(meta + o_grads) : nullptr;
  m.first = reinterpret_cast<const int32_t*>(meta + o_first);
  m.chunks = reinterpret_cast<const Chunk*>(meta + o_chunks);
  m.count = int32_t(n);
  m.mode = mode;
  m.max_norm = opt.max_norm;
  m.c = opt.c;
  m.lr = opt.lr;
  double* ss = reinterpret_cast<double*>(work + w_ss);
  double* vg = reinterpret_cast<double*>(work + w_vg);
  float* scales = reinterpret_cast<float*>(work + w_scales);
  Out* out = reinterpret_cast<Out*>(work + w_out);
  const unsigned grid = unsigned(chunks.size());
  reduce_kernel<<<grid, kClipThreads, 0, c.stream()>>>(m, reinterpret_cast<double*>(work + w_partial), ss, vg, scales, out,
                                                       reinterpret_cast<unsigned*>(work));
  check(cudaGetLastError(), "clip reduce kernel");
  scale_kernel<<<grid, kClipThreads, 0, c.stream()>>>(m, scales);
  check(cudaGetLastError(), "clip scale kernel");
  // The one download: Out, ss[n], vg[n] (which now holds the double scales).
  std::vector<unsigned char> res(w_scales - w_out);
  copy_to_host(res.data(), work + w_out, res.size());
  Out o;
  std::memcpy(&o, res.data(), sizeof o);
  const double* hss = reinterpret_cast<const double*>(res.data() + (w_ss - w_out));
  const double* hs = reinterpret_cast<const double*>(res.data() + (w_vg - w_out));
  if (o.bad_step >= 0) throw_arg(ErrorCode::NotFinite, name("tensors", size_t(o.bad_step)), "a finite step", "NaN or Inf");
  if (o.bad_grad >= 0)
    throw_arg(ErrorCode::NotFinite, name("grads", size_t(o.bad_grad)), "a finite gradient", "NaN or Inf (or an overflowing ⟨P, ∇W⟩)");
  r.total_norm = std::sqrt(o.total_sq);
  r.vg = mode == 2 ? o.vg : 0.0;
  for (size_t i = 0; i < n; ++i) {
    r.norms[i] = std::sqrt(hss[i]);
    r.scales[i] = hs[i];
    r.clipped[i] = hs[i] < 1.0;
    r.any_clipped = r.any_clipped || r.clipped[i];
  }
  return r;
}

}  // namespace kfac::cuda
