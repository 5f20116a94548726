// The step record on the device (ops::sum_squares_to, dot_many_to, trust_clip, ema_commit, copy_range_if;
// kfac_ops.h):
// a K-FAC step's reductions and its trust-ratio clip leave their results in a record tensor
// where the tensors live, instead of one download each, and the step reads the record once.
//
// sum_squares_to, dot_many_to: the multi-tensor reduction of nn_reduce_body.h
// (products_on_device), then one thread writes the sums' value slots (and the all-finite flag).
// trust_clip: one reduction over [params | steps], one thread computes the scales with the
// CPU's formulas (record_math::trust_scales) and writes the record, then one block per chunk
// of a step scales it by its tensor's scale (a scale of 1, or a step with NaN or Inf: nothing).
// ema_commit: a grid-stride F ← β·F + (1 − β)·X that does nothing when the guard slot is 0;
// copy_range_if: a grid-stride copy guarded the same way (the small factors' eigenpairs).
#pragma once
#include <vector>

#include "../core/dispatch.h"
#include "../core/record_math.h"
#include "hd.h"
#include "nn_reduce_body.h"

namespace kfac::nnk {

// One thread: record[offset + t] = totals[t]; record[flag] = every total finite and every value
// in slots [check_at, check_at + check_count) finite (flag ≥ 0).
struct PutSums {
  const double* totals;
  int64_t count;
  float* record;
  int64_t offset, flag, check_at, check_count;
  KFAC_HD void operator()(const hd::Idx& i) const {
    if (i.global() != 0) return;
    bool ok = true;
    for (int64_t s = check_at; s < check_at + check_count; ++s) ok = ok && record_math::finite(record_math::get(record, s));
    for (int64_t t = 0; t < count; ++t) {
      ok = ok && record_math::finite(totals[t]);
      record_math::put(record, offset + t, totals[t]);
    }
    if (flag >= 0) record_math::put(record, flag, ok ? 1.0 : 0.0);
  }
};

// One thread: the trust ratio's scales from totals = [Σθ_i² | ΣP_i²] and sizes |θ_i|.
struct TrustScales {
  const double* totals;
  const double* sizes;
  int64_t count;
  double k, floor;
  bool per_tensor, fixed;
  double eps;
  float* scales;
  float* record;
  int64_t offset;
  KFAC_HD void operator()(const hd::Idx& i) const {
    if (i.global() != 0) return;
    for (int64_t t = 0; t < count; ++t) scales[t] = 1.f;
    const record_math::TrustOutcome r =
        record_math::trust_scales(totals, sizes, totals + count, count, k, floor, per_tensor, fixed, eps, scales);
    record_math::put_trust(record, offset, r);
  }
};

// One block per chunk of the reduction's table; chunks of tensors ≥ first are steps[tensor − first],
// scaled in place by scales[tensor − first] unless it is 1.
struct ScaleChunks {
  const float* const* table;
  const ReduceChunk* chunks;
  const float* scales;
  int64_t first;
  KFAC_HD void operator()(const hd::Idx& i) const {
    const ReduceChunk c = chunks[i.block];
    if (c.tensor < first) return;
    const float s = scales[c.tensor - first];
    if (s == 1.f) return;
    // the table holds the steps' own (writable) storage; the reduction only read it
    float* x = const_cast<float*>(table[c.tensor]);
    for (int64_t j = c.begin + i.thread; j < c.end; j += i.threads) x[j] = s * x[j];
  }
};

// F ← β·F, F ← F + (1 − β)·X when guard ≠ 0 (the two roundings of scale and axpy).
struct GuardedEma {
  float* F;
  const float* X;
  const float* guard;
  float beta, rest;
  int64_t n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    if (record_math::get(guard, 0) == 0.0) return;
    for (int64_t j = i.global(); j < n; j += i.stride()) {
      const float f = beta * F[j];
      F[j] = f + rest * X[j];
    }
  }
};

// dst[j] = src[j] for j < n when guard ≠ 0.
struct GuardedCopy {
  const float* src;
  float* dst;
  const float* guard;
  int64_t n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    if (record_math::get(guard, 0) == 0.0) return;
    for (int64_t j = i.global(); j < n; j += i.stride()) dst[j] = src[j];
  }
};

template <class E>
void sum_squares_to(const std::vector<Tensor>& xs, const Tensor& record, int64_t offset, int64_t flag, int64_t check_at,
                    int64_t check_count) {
  const DeviceSums d = products_on_device<E>(xs, nullptr);
  E::grid(1, 1, PutSums{d.totals, int64_t(xs.size()), record.f32(), offset, flag, check_at, check_count});
}

template <class E>
void dot_many_to(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& record, int64_t offset) {
  const DeviceSums d = products_on_device<E>(xs, &ys);
  E::grid(1, 1, PutSums{d.totals, int64_t(xs.size()), record.f32(), offset, -1, 0, 0});
}

template <class E>
void trust_clip(const std::vector<Tensor>& steps, const std::vector<Tensor>& params, const ops::TrustClipOptions& opt,
                const Tensor& record, int64_t offset) {
  const int64_t n = int64_t(steps.size());
  std::vector<Tensor> xs(params);
  xs.insert(xs.end(), steps.begin(), steps.end());
  const DeviceSums d = products_on_device<E>(xs, nullptr);
  // scratch slot 2: |θ_i| (uploaded), then the scales
  std::vector<double> sizes(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) sizes[size_t(t)] = double(params[size_t(t)].numel());
  double* dev_sizes = static_cast<double*>(E::scratch(2, size_t(n) * (sizeof(double) + sizeof(float))));
  float* scales = reinterpret_cast<float*>(dev_sizes + n);
  E::upload(dev_sizes, sizes.data(), sizes.size() * sizeof(double));
  E::grid(1, 1, TrustScales{d.totals, dev_sizes, n, opt.k, opt.floor, opt.per_tensor, opt.fixed, opt.eps, scales, record.f32(), offset});
  if (d.chunk_count > 0) E::grid(d.chunk_count, kReduceThreads, ScaleChunks{d.table, d.chunks, scales, n});
}

template <class E>
void ema_commit(const Tensor& F, const Tensor& X, double beta, const Tensor& record, int64_t slot) {
  const int64_t n = F.numel();
  if (n == 0) return;
  E::grid(hd::grid_blocks(n), hd::kThreads,
          GuardedEma{F.f32(), X.f32(), record.f32() + 2 * slot, float(beta), float(1.0 - beta), n});
}

template <class E>
void copy_range_if(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count,
                   const Tensor& record, int64_t slot) {
  E::grid(hd::grid_blocks(count), hd::kThreads,
          GuardedCopy{src.f32() + src_offset, dst.f32() + dst_offset, record.f32() + 2 * slot, count});
}

template <class E>
void record_kernels(Kernels& k) {
  k.copy_range_if = copy_range_if<E>;
  k.sum_squares_to = sum_squares_to<E>;
  k.dot_many_to = dot_many_to<E>;
  k.trust_clip = trust_clip<E>;
  k.ema_commit = ema_commit<E>;
}

}  // namespace kfac::nnk
