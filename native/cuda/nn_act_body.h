// GELU (erf / tanh), SiLU, SwiGLU, ReLU and gated units act(gate)·up: pointwise bodies (one grid-stride thread each, in place
// allowed: an element is read before it is written by the same thread) and their adapters,
// templates over the executor (native/cuda/exec.cuh on the device, native/emu/exec.h on the
// host). Float32 math with expf/erff/tanhf; the activations are stored as T (float, or bf16 on
// the cuda device: read widened, each result rounded once when it is stored).
#pragma once
#include "../core/dispatch.h"
#include "hd.h"

namespace kfac::nnk {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kGeluC = 0.044715f;

KFAC_HD float sigmoid(float x) { return 1.f / (1.f + hd::expf_(-x)); }

KFAC_HD float gelu(float x, int kind) {
  if (kind == 0) return 0.5f * x * (1.f + hd::erff_(x * kInvSqrt2));
  if (x > 10.f) return x;  // tanh(u) = ±1 to float precision; keeps x³ finite
  if (x < -10.f) return 0.f;
  return 0.5f * x * (1.f + hd::tanhf_(kSqrt2OverPi * (x + kGeluC * x * x * x)));
}

KFAC_HD float gelu_grad(float x, int kind) {
  if (kind == 0) return 0.5f * (1.f + hd::erff_(x * kInvSqrt2)) + x * kInvSqrt2Pi * hd::expf_(-0.5f * x * x);
  if (x > 10.f) return 1.f;
  if (x < -10.f) return 0.f;
  const float t = hd::tanhf_(kSqrt2OverPi * (x + kGeluC * x * x * x));
  const float du = kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du;
}

// act(x) and act'(x) of a gated unit: kind 0 GELU (erf), 1 GELU (tanh), 2 ReLU, 3 SiLU.
KFAC_HD float gate_act(float x, int kind) {
  if (kind <= 1) return gelu(x, kind);
  if (kind == 2) return x > 0.f ? x : 0.f;
  return x * sigmoid(x);
}
KFAC_HD float gate_grad(float x, int kind) {
  if (kind <= 1) return gelu_grad(x, kind);
  if (kind == 2) return x > 0.f ? 1.f : 0.f;
  const float s = sigmoid(x);
  return s * (1.f + x * (1.f - s));
}

// op 0 gelu, 1 gelu', 2 silu, 3 silu', 4 swiglu, 5 swiglu' (dgate into out, dup into out2),
// 6 relu, 7 relu', 8 gated act(a)·b, 9 gated' (as 5, with gate_act of `kind`).
template <class T>
struct Pointwise {
  const T *a, *b, *c;
  T *out, *out2;
  int64_t n;
  int op, kind;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) {
      const float x = hd::ld(a, j);
      switch (op) {
        case 0: hd::st(out, j, gelu(x, kind)); break;
        case 1: hd::st(out, j, hd::ld(b, j) * gelu_grad(x, kind)); break;
        case 2: hd::st(out, j, x * sigmoid(x)); break;
        case 3: {
          const float s = sigmoid(x);
          hd::st(out, j, hd::ld(b, j) * s * (1.f + x * (1.f - s)));
          break;
        }
        case 4: hd::st(out, j, x * sigmoid(x) * hd::ld(b, j)); break;
        case 6: hd::st(out, j, x > 0.f ? x : 0.f); break;
        case 7: hd::st(out, j, x > 0.f ? hd::ld(b, j) : 0.f); break;
        case 8: hd::st(out, j, gate_act(x, kind) * hd::ld(b, j)); break;
        case 9: {  // gate a, up b, dout c
          const float up = hd::ld(b, j), d = hd::ld(c, j);
          const float act = gate_act(x, kind), da = gate_grad(x, kind);
          hd::st(out2, j, d * act);     // dup (may alias up: up read above)
          hd::st(out, j, d * up * da);  // dgate (may alias dout: read above)
          break;
        }
        default: {  // gate a, up b, dout c
          const float s = sigmoid(x), up = hd::ld(b, j), d = hd::ld(c, j);
          hd::st(out2, j, d * x * s);                        // dup (may alias up: up read above)
          hd::st(out, j, d * up * s * (1.f + x * (1.f - s)));  // dgate (may alias dout: read above)
        }
      }
    }
  }
};

template <class E, class T>
void run_pointwise_as(const Tensor* a, const Tensor* b, const Tensor* c, const Tensor* out, const Tensor* out2, int op,
                      int kind) {
  auto p = [](const Tensor* t) { return t ? static_cast<T*>(t->raw()) : nullptr; };
  const int64_t n = a->numel();
  if (n > 0) E::grid(hd::grid_blocks(n), hd::kThreads, Pointwise<T>{p(a), p(b), p(c), p(out), p(out2), n, op, kind});
}

// All tensors of a call share one storage type (core checks it): that of the first.
template <class E>
void run_pointwise(const Tensor* a, const Tensor* b, const Tensor* c, const Tensor* out, const Tensor* out2, int op,
                   int kind) {
  if (a->dtype() == DType::BF16) run_pointwise_as<E, hd::bf16>(a, b, c, out, out2, op, kind);
  else run_pointwise_as<E, float>(a, b, c, out, out2, op, kind);
}

template <class E>
void gelu_forward(const Tensor& x, const Tensor& out, int kind) {
  run_pointwise<E>(&x, nullptr, nullptr, &out, nullptr, 0, kind);
}
template <class E>
void gelu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx, int kind) {
  run_pointwise<E>(&x, &dout, nullptr, &dx, nullptr, 1, kind);
}
template <class E>
void silu_forward(const Tensor& x, const Tensor& out) {
  run_pointwise<E>(&x, nullptr, nullptr, &out, nullptr, 2, 0);
}
template <class E>
void silu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  run_pointwise<E>(&x, &dout, nullptr, &dx, nullptr, 3, 0);
}
template <class E>
void swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  run_pointwise<E>(&gate, &up, nullptr, &out, nullptr, 4, 0);
}
template <class E>
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                     const Tensor& dup) {
  run_pointwise<E>(&gate, &up, &dout, &dgate, &dup, 5, 0);
}

template <class E>
void relu_forward(const Tensor& x, const Tensor& out) {
  run_pointwise<E>(&x, nullptr, nullptr, &out, nullptr, 6, 0);
}
template <class E>
void relu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  run_pointwise<E>(&x, &dout, nullptr, &dx, nullptr, 7, 0);
}
template <class E>
void gated_forward(const Tensor& gate, const Tensor& up, const Tensor& out, int act) {
  run_pointwise<E>(&gate, &up, nullptr, &out, nullptr, 8, act);
}
template <class E>
void gated_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate, const Tensor& dup,
                    int act) {
  run_pointwise<E>(&gate, &up, &dout, &dgate, &dup, 9, act);
}

template <class E>
void act_kernels(Kernels& k) {
  k.gelu_forward = gelu_forward<E>;
  k.gelu_backward = gelu_backward<E>;
  k.silu_forward = silu_forward<E>;
  k.silu_backward = silu_backward<E>;
  k.swiglu_forward = swiglu_forward<E>;
  k.swiglu_backward = swiglu_backward<E>;
  k.relu_forward = relu_forward<E>;
  k.relu_backward = relu_backward<E>;
  k.gated_forward = gated_forward<E>;
  k.gated_backward = gated_backward<E>;
}

}  // namespace kfac::nnk
