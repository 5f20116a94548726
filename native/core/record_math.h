// The step record's arithmetic (ops::sum_squares_to, trust_clip in kfac_ops.h), shared by the
// CPU kernels (native/cpu/record.cpp) and the device bodies (native/cuda/record_body.h), so both
// compute the trust ratio's scales with the same formulas, in the same order, from their sums.
// Plain C++ that nvcc also compiles as device code (as bf16_round.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KFAC_REC_HD __host__ __device__ inline
#else
#define KFAC_REC_HD inline
#endif

namespace kfac::record_math {

// Finite (not NaN, not ±Inf), without the library's classification functions.
KFAC_REC_HD bool finite(double v) { return v - v == 0.0; }
// max and min that return NaN when an operand is NaN (as the host's Math.max and Math.min did).
KFAC_REC_HD double nan_max(double a, double b) { return a != a || b != b ? a + b : (a > b ? a : b); }
KFAC_REC_HD double nan_min(double a, double b) { return a != a || b != b ? a + b : (a < b ? a : b); }

// Value slot `slot` of a record: the float64's 8 bytes in floats 2·slot and 2·slot + 1 (the host
// reads the downloaded floats' buffer as float64s, so every value arrives exactly).
KFAC_REC_HD void put(float* record, int64_t slot, double v) { memcpy(record + 2 * slot, &v, sizeof v); }
KFAC_REC_HD double get(const float* record, int64_t slot) {
  double v;
  memcpy(&v, record + 2 * slot, sizeof v);
  return v;
}

struct TrustOutcome {
  double norm = 0.0;       // ‖P‖ before scaling
  double scale = 1.0;      // the smallest scale applied
  double threshold = 0.0;  // τ (global) or the smallest τ_i (per-tensor)
  bool clipped = false;    // any step scaled down
  int64_t bad = 0;         // 1 + the first step whose Σx² is not finite, or 0
};

// The trust ratio's scales (docs/KFAC.md#default-threshold) from Σθ_i² (pSq), |θ_i| (pSize) and
// ΣP_i² (sSq) of n tensors: scales[i] (float, 1 when not scaled; untouched when a step is not
// finite, since nothing is then scaled) and the outcome the record keeps. With `fixed`, k is the
// threshold itself (the norm clip newtonClip: { maxNorm }: ‖P‖ ≤ k, or ‖P_i‖ ≤ k per tensor, θ
// unread) and ‖P‖ is summed as clip_newton_step sums it; eps > 0 (fixed, global) scales by
// k/(‖P‖ + eps) when that is below 1, as clip_grad_norm_ does.
KFAC_REC_HD TrustOutcome trust_scales(const double* pSq, const double* pSize, const double* sSq, int64_t n, double k,
                                      double floor, bool per_tensor, bool fixed, double eps, float* scales) {
  TrustOutcome r;
  for (int64_t i = 0; i < n && r.bad == 0; ++i)
    if (!finite(sSq[i])) r.bad = i + 1;
  double size = 0.0, sq = 0.0;
  for (int64_t i = 0; i < n; ++i) size += pSize[i];
  for (int64_t i = 0; i < n; ++i) sq += pSq[i];
  const double rms = nan_max(sqrt(sq / size), floor);
  if (!per_tensor) {
    double total = 0.0;
    for (int64_t i = 0; i < n; ++i) total += sSq[i];
    r.norm = sqrt(total);
    r.threshold = fixed ? k : k * rms * sqrt(size);
    if (r.bad > 0) return r;
    double s = r.norm > r.threshold ? r.threshold / r.norm : 1.0;
    if (eps > 0) {
      const double c = r.threshold / (r.norm + eps);
      s = c < 1.0 ? c : 1.0;
    }
    for (int64_t i = 0; i < n; ++i) scales[i] = float(s);
    r.scale = s;
    r.clipped = s < 1.0;
    return r;
  }
  double norm_sq = 0.0, total = 0.0;
  double threshold = HUGE_VAL;
  for (int64_t i = 0; i < n; ++i) {
    const double norm = sqrt(sSq[i]);
    norm_sq += norm * norm;
    total += sSq[i];
    const double tau = fixed ? k : k * sqrt(pSize[i]) * nan_max(sqrt(pSq[i] / pSize[i]), rms);
    threshold = nan_min(threshold, tau);
    if (r.bad == 0 && norm > tau) {
      const double s = tau / norm;
      scales[i] = float(s);
      r.scale = nan_min(r.scale, s);
    }
  }
  r.norm = fixed ? sqrt(total) : sqrt(norm_sq);
  r.threshold = threshold;
  r.clipped = r.scale < 1.0;
  return r;
}

// The outcome into kTrustClipSlots value slots from `offset`.
KFAC_REC_HD void put_trust(float* record, int64_t offset, const TrustOutcome& r) {
  put(record, offset, r.norm);
  put(record, offset + 1, r.scale);
  put(record, offset + 2, r.threshold);
  put(record, offset + 3, r.clipped ? 1.0 : 0.0);
  put(record, offset + 4, double(r.bad));
}

}  // namespace kfac::record_math
