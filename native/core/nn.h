// The neural-network op list: checked entry points for the layer kernels (linear, embedding,
// norms, activations, cross-entropy, attention, RoPE, dropout). Each checks dtype, device,
// shapes and index ranges, then dispatches to the backend of its tensors' device.
// Conventions (llm.c style): every op has a paired forward/backward; activations and input
// gradients are overwritten (=), parameter gradients accumulate (+=). Optional gradients
// (nullptr) are skipped: a frozen weight costs no work. N = B·T rows; the leading dimensions
// of row-wise ops may have any shape.
// Defined one family per file (native/core/nn_linear.cpp, nn_embedding.cpp, nn_norms.cpp,
// nn_activations.cpp, nn_loss.cpp, nn_attention.cpp, and those named below) over the shared
// argument checks of native/core/nn_args.h.
#pragma once
#include <cstdint>

#include "tensor.h"

namespace kfac::nn {

// x [..., IN], W [OUT, IN] (or [IN, OUT] when conv1d), b [OUT] | null → y [..., OUT] (=).
void linear_forward(const Tensor& x, const Tensor& W, const Tensor* b, const Tensor& y, bool conv1d);
// dy [..., OUT] → dx [..., IN] (= dy·W, or += with accumulate_dx), dW (+=), db (+=); each skipped when null.
void linear_backward(const Tensor& x, const Tensor& W, const Tensor& dy, const Tensor* dx, const Tensor* dW,
                     const Tensor* db, bool conv1d, bool accumulate_dx);

// ids [N] in [0, V), W [V, C] → out [..., C] with N·C elements (=).
void embedding_forward(const int32_t* ids, int64_t n, const Tensor& W, const Tensor& out);
// dout [..., C] → dW [V, C] (+=, deterministic scatter-add).
void embedding_backward(const int32_t* ids, int64_t n, const Tensor& dout, const Tensor& dW);

// x [..., C], w [C], b [C] | null → out [..., C] (=, may alias x), mean, rstd [N] (=, any shape of N elements).
// With `residual` (x's shape and storage) the row normalised is x + residual, stored first into
// `sum` (=, required then; aliases nothing): the residual add fused with the norm that follows it,
// the same values as add(x, residual, sum) followed by the norm of sum.
void layernorm_forward(const Tensor& x, const Tensor& w, const Tensor* b, float eps, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd, const Tensor* residual = nullptr,
                       const Tensor* sum = nullptr);
// → dx (=, may alias dout), dw (+=), db (+=); each skipped when null.
void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dout, const Tensor* dx, const Tensor* dw, const Tensor* db);
// x [..., C], w [C] → out [..., C] (=, may alias x), rstd [N] (=); `residual` and `sum` as layernorm_forward's.
void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& out, const Tensor& rstd,
                     const Tensor* residual = nullptr, const Tensor* sum = nullptr);
// → dx (=, may alias dout), dw (+=); each skipped when null.
void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dout,
                      const Tensor* dx, const Tensor* dw);

// Pointwise, any shape, in place allowed. kind: 0 erf, 1 tanh.
void gelu_forward(const Tensor& x, const Tensor& out, int kind);
void gelu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx, int kind);
// Pointwise with the derivative read from the output y = f(x) (native/core/nn_outact.cpp), any
// shape, in place allowed. kind: 0 tanh, 1 relu.
void act_out_forward(const Tensor& x, const Tensor& out, int kind);
void act_out_backward(const Tensor& y, const Tensor& dout, const Tensor& dx, int kind);
// IA3's column scaling (native/core/nn_colscale.cpp), x [..., n], l [n]: out (= or +=, may be x)
// = x ⊙ (l + shift); backward u (=, may be a or b) = a ⊙ b and dl [n] (+=, skipped when null) = Σ_rows u.
void col_scale(const Tensor& x, const Tensor& l, float shift, const Tensor& out, bool accumulate);
void col_scale_backward(const Tensor& a, const Tensor& b, const Tensor& u, const Tensor* dl);
void silu_forward(const Tensor& x, const Tensor& out);
void silu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx);
// out = silu(gate)·up; gate, up, out the same shape.
void swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out);
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                     const Tensor& dup);
void relu_forward(const Tensor& x, const Tensor& out);
void relu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx);
// out = act(gate)·up; act: 0 GELU (erf), 1 GELU (tanh), 2 ReLU, 3 SiLU.
void gated_forward(const Tensor& gate, const Tensor& up, const Tensor& out, int act);
void gated_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                    const Tensor& dup, int act);

struct CrossEntropyResult {
  double loss;    // mean over counted rows (0 when none); NaN when it stayed on the device (loss_to)
  int64_t count;  // rows whose target is not ignore_index
};
// logits [..., V] with N rows, targets [N] in [0, V) or ignore_index → loss; dlogits (=) when
// given: dscale·∂loss/∂logits (may alias logits). With loss_to (float32, 2 elements, on the
// logits' device) the loss, as a float64 in two floats (record_math.h), is written there instead
// of being downloaded: no wait, and no finiteness check (whoever reads it checks); the CPU also
// returns it.
CrossEntropyResult cross_entropy(const Tensor& logits, const int32_t* targets, int64_t n,
                                 const Tensor* dlogits, int32_t ignore_index, float dscale,
                                 const Tensor* loss_to = nullptr);

// q [B, Tq, H, D], k, v [B, Tcap, Hkv, D] (Hkv | H) of which the first Tk = kv_len (all when
// kv_len < 0) are used, mask [B, Tcap] | null (0 = padding) → out [B, Tq, H, D] (=),
// lse [B, H, Tq] (=). Causal: query i sees keys j ≤ i + (Tk − Tq). dropout in [0, 1) on the
// probabilities with a counter-based mask from seed (the backward must get the same two).
// bias [H, Tq, Tk] | null is added to the scaled scores of every batch row (T5's relative
// position bias); the backward's dbias [B, H, Tq, Tk] | null receives its gradient (=) per row.
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                       const Tensor& out, const Tensor& lse, bool causal, float scale, int64_t kv_len = -1,
                       float dropout = 0.f, uint64_t seed = 0, const Tensor* bias = nullptr);
// dout [B, Tq, H, D] → dq (=), dk, dv (=, rows ≥ Tk zero). out: the forward's output (or null:
// the kernel then rebuilds rowsum(dO ∘ O) from the probabilities, which costs a pass over the keys).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor* mask,
                        const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv, bool causal, float scale, int64_t kv_len = -1, float dropout = 0.f,
                        uint64_t seed = 0, const Tensor* out = nullptr, const Tensor* bias = nullptr,
                        const Tensor* dbias = nullptr);
// KV cache: cache [B, Tcap, Hkv, D] time steps offset .. offset + T − 1 ← src [B, T, Hkv, D] (=).
void kv_cache_write(const Tensor& src, const Tensor& cache, int64_t offset);
// Its reverse (native/core/nn_timeslice.cpp): dst [B, T, H, D] (=) ← time steps offset .. offset + T − 1
// of src [B, Tsrc, H, D] (apart from dst).
void time_slice(const Tensor& src, const Tensor& dst, int64_t offset);

// x [B, T, H, D], D even → out (=, may alias x). kind: 0 rotate-half (HF), 1 interleaved (Meta).
void rope_forward(const Tensor& x, const Tensor& out, int64_t offset, double base, int kind);
void rope_backward(const Tensor& dout, const Tensor& dx, int64_t offset, double base, int kind);

// Any shape; p in [0, 1]; out/dx (=), may alias the input.
void dropout_forward(const Tensor& x, const Tensor& out, float p, uint64_t seed);
void dropout_backward(const Tensor& dout, const Tensor& dx, float p, uint64_t seed);

}  // namespace kfac::nn
