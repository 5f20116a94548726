// Pointwise activations over n = N·F elements (any shape, e.g. [B, T, 4C]).
// Forward outputs and input gradients are overwritten (=); these ops have no parameters.
// Every kernel works in place (out may alias x, dx may alias dout).
#pragma once
#include <cstdint>

namespace kfac::cpu {

enum class GeluKind { Erf = 0, Tanh = 1 };

// out = x·Φ(x) (erf) or 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) (tanh).
void gelu_forward(const float* x, float* out, int64_t n, GeluKind kind);
// dx = dout · gelu'(x)
void gelu_backward(const float* x, const float* dout, float* dx, int64_t n, GeluKind kind);

// out = x·σ(x)
void silu_forward(const float* x, float* out, int64_t n);
// dx = dout · σ(x)(1 + x(1 − σ(x)))
void silu_backward(const float* x, const float* dout, float* dx, int64_t n);

// SwiGLU: gate, up [N, F] → out [N, F] = silu(gate)·up (=).
void swiglu_forward(const float* gate, const float* up, float* out, int64_t n);
// dout [N, F] → dgate = dout·up·silu'(gate) (=), dup = dout·silu(gate) (=).
void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                     int64_t n);

// out = max(x, 0); dx = dout where x > 0, else 0.
void relu_forward(const float* x, float* out, int64_t n);
void relu_backward(const float* x, const float* dout, float* dx, int64_t n);

// Gated units (T5 v1.1's gated-GELU, ReGLU, SwiGLU): out = act(gate)·up (=).
enum class GateAct { GeluErf = 0, GeluTanh = 1, Relu = 2, Silu = 3 };
void gated_forward(const float* gate, const float* up, float* out, int64_t n, GateAct act);
// dout → dgate = dout·up·act'(gate) (=), dup = dout·act(gate) (=).
void gated_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                    GateAct act);

}  // namespace kfac::cpu
