// Vectorised exp in the pointwise loops: see nn_softmax.h.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "nn_activation.h"

#include <cmath>

#include "cpu_features.h"
#include "nn_softmax.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;
constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kC = 0.044715f;

// σ(x) = 1/(1 + e^−x) with the branch-free exp (x < −88 saturates e^−x at 2.4e38: σ ≈ 4e−39
// instead of a smaller denormal, which is below anything a float32 consumer can see).
inline float sigmoid(float x) { return 1.f / (1.f + softmax::exp_approx(-x)); }

// tanh(u) = 1 − 2/(e^{2u} + 1): absolute error ~1e−7 (what GELU needs; not relative near 0).
KFAC_ALWAYS_INLINE float tanh_fast(float u) { return 1.f - 2.f / (softmax::exp_approx(2.f * u) + 1.f); }

// erf(x) by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e−7 in exact arithmetic, a few 1e−7 in
// float) with the branch-free exp, so that the GELU loops vectorise (std::erf is a library call
// per element: it was a tenth of a BERT training step). NaN gives NaN, ±inf gives ±1.
KFAC_ALWAYS_INLINE float erf_fast(float x) {
  const float ax = std::fabs(x);
  const float t = 1.f / (1.f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float r = 1.f - p * t * softmax::exp_approx(-ax * ax);
  return x < 0.f ? -r : r;
}

KFAC_ALWAYS_INLINE float gelu(float x, GeluKind k) {
  if (k == GeluKind::Erf) return 0.5f * x * (1.f + erf_fast(x * kInvSqrt2));
  // Beyond |x| = 10 the result is x or 0 to float precision; the guard keeps x³ finite.
  if (x > 10.f) return x;
  if (x < -10.f) return 0.f;
  float u = kSqrt2OverPi * (x + kC * x * x * x);
  return 0.5f * x * (1.f + tanh_fast(u));
}

KFAC_ALWAYS_INLINE float gelu_grad(float x, GeluKind k) {
  if (k == GeluKind::Erf)
    return 0.5f * (1.f + erf_fast(x * kInvSqrt2)) + x * kInvSqrt2Pi * softmax::exp_approx(-0.5f * x * x);
  // Beyond |x| = 10 tanh(u) is ±1 to float precision; the guard also keeps x³ from
  // overflowing into inf·0 = NaN.
  if (x > 10.f) return 1.f;
  if (x < -10.f) return 0.f;
  float u = kSqrt2OverPi * (x + kC * x * x * x);
  float t = tanh_fast(u);
  float du = kSqrt2OverPi * (1.f + 3.f * kC * x * x);
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du;
}
// The GELU loops, compiled twice: for the build's baseline ISA and for AVX-512 (16 lanes),
// picked at run time like the GEMM kernels.
template <GeluKind K>
void gelu_span(const float* x, float* out, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; ++i) out[i] = gelu(x[i], K);
}
template <GeluKind K>
void gelu_grad_span(const float* x, const float* dout, float* dx, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; ++i) dx[i] = dout[i] * gelu_grad(x[i], K);
}
#if defined(__x86_64__) && defined(__GNUC__)
#define KFAC_ACT_AVX512 1
template <GeluKind K>
__attribute__((target("avx512f"))) void gelu_span_avx512(const float* x, float* out, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; ++i) out[i] = gelu(x[i], K);
}
template <GeluKind K>
__attribute__((target("avx512f"))) void gelu_grad_span_avx512(const float* x, const float* dout, float* dx, int64_t s, int64_t e) {
  for (int64_t i = s; i < e; ++i) dx[i] = dout[i] * gelu_grad(x[i], K);
}
#endif

template <GeluKind K>
void gelu_forward_k(const float* x, float* out, int64_t n) {
#ifdef KFAC_ACT_AVX512
  if (kernel_isa_at_least(KernelIsa::Avx512)) {
    parallel_for(n, kGrain, [=](int64_t s, int64_t e) { gelu_span_avx512<K>(x, out, s, e); });
    return;
  }
#endif
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) { gelu_span<K>(x, out, s, e); });
}

template <GeluKind K>
void gelu_backward_k(const float* x, const float* dout, float* dx, int64_t n) {
#ifdef KFAC_ACT_AVX512
  if (kernel_isa_at_least(KernelIsa::Avx512)) {
    parallel_for(n, kGrain, [=](int64_t s, int64_t e) { gelu_grad_span_avx512<K>(x, dout, dx, s, e); });
    return;
  }
#endif
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) { gelu_grad_span<K>(x, dout, dx, s, e); });
}
}  // namespace

void gelu_forward(const float* x, float* out, int64_t n, GeluKind kind) {
  if (kind == GeluKind::Erf) gelu_forward_k<GeluKind::Erf>(x, out, n);
  else gelu_forward_k<GeluKind::Tanh>(x, out, n);
}

void gelu_backward(const float* x, const float* dout, float* dx, int64_t n, GeluKind kind) {
  if (kind == GeluKind::Erf) gelu_backward_k<GeluKind::Erf>(x, dout, dx, n);
  else gelu_backward_k<GeluKind::Tanh>(x, dout, dx, n);
}

void silu_forward(const float* x, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float v = x[i];
      out[i] = v * sigmoid(v);
    }
  });
}

void silu_backward(const float* x, const float* dout, float* dx, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float v = x[i], sg = sigmoid(v);
      dx[i] = dout[i] * sg * (1.f + v * (1.f - sg));
    }
  });
}

void swiglu_forward(const float* gate, const float* up, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float g = gate[i];
      out[i] = g * sigmoid(g) * up[i];
    }
  });
}

void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                     int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      float g = gate[i], u = up[i], d = dout[i], sg = sigmoid(g);
      float silu = g * sg;
      float dsilu = sg * (1.f + g * (1.f - sg));
      dgate[i] = d * u * dsilu;
      dup[i] = d * silu;
    }
  });
}

void relu_forward(const float* x, float* out, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = x[i] > 0.f ? x[i] : 0.f;
  });
}

void relu_backward(const float* x, const float* dout, float* dx, int64_t n) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) dx[i] = x[i] > 0.f ? dout[i] : 0.f;
  });
}

namespace {
// act(g) and act'(g) of a gated unit.
KFAC_ALWAYS_INLINE float gate_act(float g, GateAct a) {
  switch (a) {
    case GateAct::GeluErf: return gelu(g, GeluKind::Erf);
    case GateAct::GeluTanh: return gelu(g, GeluKind::Tanh);
    case GateAct::Relu: return g > 0.f ? g : 0.f;
    default: return g * sigmoid(g);
  }
}
KFAC_ALWAYS_INLINE float gate_grad(float g, GateAct a) {
  switch (a) {
    case GateAct::GeluErf: return gelu_grad(g, GeluKind::Erf);
    case GateAct::GeluTanh: return gelu_grad(g, GeluKind::Tanh);
    case GateAct::Relu: return g > 0.f ? 1.f : 0.f;
    default: {
      const float sg = sigmoid(g);
      return sg * (1.f + g * (1.f - sg));
    }
  }
}
}  // namespace

void gated_forward(const float* gate, const float* up, float* out, int64_t n, GateAct act) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = gate_act(gate[i], act) * up[i];
  });
}

void gated_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                    GateAct act) {
  parallel_for(n, kGrain, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) {
      const float g = gate[i], u = up[i], d = dout[i];
      const float a = gate_act(g, act), da = gate_grad(g, act);
      dgate[i] = d * u * da;
      dup[i] = d * a;
    }
  });
}

}  // namespace kfac::cpu
