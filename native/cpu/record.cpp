#include "record.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "../core/record_math.h"
#include "clip.h"
#include "elementwise.h"
#include "reduce.h"

namespace kfac::cpu_record {

namespace {

void put(const Tensor& record, int64_t slot, double v) { record_math::put(record.f32(), slot, v); }

}  // namespace

void sum_squares_to(const std::vector<Tensor>& xs, const Tensor& record, int64_t offset, int64_t flag, int64_t check_at,
                    int64_t check_count) {
  bool finite = true;
  for (int64_t s = check_at; s < check_at + check_count; ++s)
    finite = finite && record_math::finite(record_math::get(record.f32(), s));
  for (size_t i = 0; i < xs.size(); ++i) {
    // the kernel of sum_squares_many, tensor by tensor
    const double s = xs[i].numel() > 0 ? cpu::sum_squares(xs[i].f32(), xs[i].numel()) : 0.0;
    finite = finite && std::isfinite(s);
    put(record, offset + int64_t(i), s);
  }
  if (flag >= 0) put(record, flag, finite ? 1.0 : 0.0);
}

void dot_many_to(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& record, int64_t offset) {
  for (size_t i = 0; i < xs.size(); ++i)  // the kernel of dot_many, pair by pair
    put(record, offset + int64_t(i), xs[i].numel() > 0 ? cpu::dot(xs[i].f32(), ys[i].f32(), xs[i].numel()) : 0.0);
}

void trust_clip(const std::vector<Tensor>& steps, const std::vector<Tensor>& params, const ops::TrustClipOptions& opt,
                const Tensor& record, int64_t offset) {
  const size_t n = steps.size();
  std::vector<double> pSq(n), pSize(n), sSq(n);
  for (size_t i = 0; i < n; ++i) {
    pSq[i] = params[i].numel() > 0 ? cpu::sum_squares(params[i].f32(), params[i].numel()) : 0.0;
    pSize[i] = double(params[i].numel());
  }
  if ((opt.per_tensor && !opt.fixed) || opt.eps > 0) {
    // tensor by tensor: the sums of the sum_squares_many op (the per-tensor trust ratio's before
    // the record, and gradient clipping's, clipGradNorm)
    for (size_t i = 0; i < n; ++i) sSq[i] = steps[i].numel() > 0 ? cpu::sum_squares(steps[i].f32(), steps[i].numel()) : 0.0;
  } else {
    // the sums of clip_newton_step (the norm clip's, and the trust ratio's global mode)
    std::vector<const float*> xs(n);
    std::vector<int64_t> ns(n);
    for (size_t i = 0; i < n; ++i) {
      xs[i] = steps[i].f32();
      ns[i] = steps[i].numel();
    }
    cpu::sum_squares_many(xs.data(), ns.data(), int64_t(n), sSq.data());
  }
  std::vector<float> scales(n, 1.f);
  const record_math::TrustOutcome r = record_math::trust_scales(pSq.data(), pSize.data(), sSq.data(), int64_t(n), opt.k,
                                                                opt.floor, opt.per_tensor, opt.fixed, opt.eps, scales.data());
  record_math::put_trust(record.f32(), offset, r);
  if (r.bad > 0) return;  // nothing is scaled
  std::vector<float*> ptrs(n);
  std::vector<int64_t> ns(n);
  for (size_t i = 0; i < n; ++i) {
    ptrs[i] = steps[i].f32();
    ns[i] = steps[i].numel();
  }
  if (opt.per_tensor) {
    // one tensor at a time, as ops.scale did
    for (size_t i = 0; i < n; ++i)
      if (scales[i] != 1.f) cpu::scale(ptrs[i], scales[i], ptrs[i], ns[i]);
  } else {
    cpu::scale_many(ptrs.data(), ns.data(), scales.data(), int64_t(n));  // as clip_newton_step (skips 1)
  }
}

void ema_commit(const Tensor& F, const Tensor& X, double beta, const Tensor& record, int64_t slot) {
  if (record_math::get(record.f32(), slot) == 0.0) return;
  cpu::scale(F.f32(), float(beta), F.f32(), F.numel());
  cpu::axpy(float(1.0 - beta), X.f32(), F.f32(), F.numel());
}

void copy_range_if(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count,
                   const Tensor& record, int64_t slot) {
  if (record_math::get(record.f32(), slot) == 0.0) return;
  std::memcpy(dst.f32() + dst_offset, src.f32() + src_offset, size_t(count) * sizeof(float));
}

}  // namespace kfac::cpu_record
