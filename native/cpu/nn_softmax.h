// Vectorisable softmax helpers shared by attention and cross-entropy: a float exp without
// library calls or branches, and eight-lane row reductions. Include them after
// `#pragma GCC optimize("no-trapping-math")` (see nn_attention.cpp): without it GCC keeps the
// clamps and selects as branches and nothing vectorises. Numerics do not depend on it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

namespace kfac::cpu::softmax {

constexpr float kInf = std::numeric_limits<float>::infinity();

#if defined(__GNUC__) || defined(__clang__)
#define KFAC_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define KFAC_ALWAYS_INLINE __forceinline
#else
#define KFAC_ALWAYS_INLINE inline
#endif

// exp(x) in float by Cephes' expf (range reduction by ln 2 split in two, degree-6 polynomial;
// within 0.99 ulp of the exact exp for every float in [−87, 0], checked exhaustively). Written
// without branches or library calls so the row loops vectorise; x < −87.3 (−inf included) gives 0, x > 88.3 is clamped (scores never get there:
// they are shifted by their row maximum).
KFAC_ALWAYS_INLINE float exp_approx(float x) {
  const float lo = -87.3365447504f, hi = 88.3762626647949f;
  float xc = std::min(std::max(x, lo), hi);
  // n = round(x·log2 e) by the 1.5·2²³ trick (SSE2 has no vector round).
  float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  n = n == n ? n : 0.f;  // NaN in: keep the int conversion defined (the result stays NaN via r)
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.f;
  uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < lo ? 0.f : p * scale;
}

// max of x[0, n), n ≥ 1 (eight lanes so that it vectorises).
inline float row_max(const float* x, int64_t n) {
  float m[8];
  for (int l = 0; l < 8; ++l) m[l] = -kInf;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) m[l] = x[j + l] > m[l] ? x[j + l] : m[l];
  float r = -kInf;
  for (; j < n; ++j) r = x[j] > r ? x[j] : r;
  for (int l = 0; l < 8; ++l) r = m[l] > r ? m[l] : r;
  return r;
}

// x[j] ← exp(x[j] − shift) for j < n; returns Σ x[j] (eight float lanes, summed in double).
inline double exp_shift_sum(float* x, int64_t n, float shift) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) {
      float e = exp_approx(x[j + l] - shift);
      x[j + l] = e;
      acc[l] += e;
    }
  double s = 0;
  for (; j < n; ++j) {
    x[j] = exp_approx(x[j] - shift);
    s += x[j];
  }
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// Σ a[j]·b[j] for j < n (eight float lanes, summed in double).
inline double row_dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  double s = 0;
  for (; j < n; ++j) s += double(a[j]) * b[j];
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// out[j] ← exp(x[j] − shift) for j < n (out may be x); returns Σ out[j].
inline double exp_shift_sum_to(const float* x, float* out, int64_t n, float shift) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) {
      float e = exp_approx(x[j + l] - shift);
      out[j + l] = e;
      acc[l] += e;
    }
  double s = 0;
  for (; j < n; ++j) {
    out[j] = exp_approx(x[j] - shift);
    s += out[j];
  }
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// Σ exp(x[j] − shift) for j < n.
inline double exp_shift_sum_only(const float* x, int64_t n, float shift) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += exp_approx(x[j + l] - shift);
  double s = 0;
  for (; j < n; ++j) s += exp_approx(x[j] - shift);
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

}  // namespace kfac::cpu::softmax
