// The CPU backend's nn entries of the op table (KFAC_NN_OP_LIST in native/core/dispatch.h):
// adapters from the checked tensor-level arguments of native/core/nn_*.cpp to the raw kernels
// of this folder (nn_*.cpp). No checks here; core made them.
#include "../core/dispatch.h"
#include "../core/record_math.h"
#include "nn_activation.h"
#include "nn_attention.h"
#include "nn_dropout.h"
#include "nn_embedding.h"
#include "nn_linear.h"
#include "nn_linear_bf16.h"
#include "nn_loss.h"
#include "nn_colscale.h"
#include "nn_norm.h"
#include "nn_outact.h"
#include "nn_rope.h"
#include "nn_timeslice.h"

namespace kfac {

namespace {

float* f(TensorOpt t) { return t ? t->f32() : nullptr; }

int64_t rows_of(const Tensor& t) {
  int64_t n = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) n *= t.dim(i);
  return n;
}

void linear_forward(const Tensor& x, const Tensor& W, TensorOpt b, const Tensor& y, bool conv1d) {
  const int64_t IN = x.dim(-1), OUT = y.dim(-1);
  if (W.dtype() == DType::BF16)
    cpu::linear_forward_bf16(x.f32(), W, f(b), y.f32(), rows_of(x), IN, OUT);
  else
    cpu::linear_forward(x.f32(), W.f32(), f(b), y.f32(), rows_of(x), IN, OUT, conv1d);
}

void linear_backward(const Tensor& x, const Tensor& W, const Tensor& dy, TensorOpt dx, TensorOpt dW, TensorOpt db,
                     bool conv1d, bool accumulate_dx) {
  const int64_t IN = x.dim(-1), OUT = dy.dim(-1);
  if (W.dtype() == DType::BF16)
    cpu::linear_backward_bf16(W, dy.f32(), f(dx), f(db), rows_of(x), IN, OUT,
                              accumulate_dx);
  else
    cpu::linear_backward(x.f32(), W.f32(), dy.f32(), f(dx), f(dW), f(db), rows_of(x), IN, OUT, conv1d,
                         accumulate_dx);
}

void embedding_forward(const int32_t* ids, int64_t n, const Tensor& W, const Tensor& out) {
  cpu::embedding_forward(ids, W.f32(), out.f32(), n, W.dim(1));
}

void embedding_backward(const int32_t* ids, int64_t n, const Tensor& dout, const Tensor& dW) {
  cpu::embedding_backward(ids, dout.f32(), dW.f32(), n, dW.dim(1));
}

void layernorm_forward(const Tensor& x, const Tensor& w, TensorOpt b, float eps, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd, TensorOpt residual, TensorOpt sum) {
  cpu::layernorm_forward(x.f32(), w.f32(), f(b), eps, out.f32(), mean.f32(), rstd.f32(), rows_of(x), x.dim(-1),
                         f(residual), f(sum));
}

void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                        const Tensor& dout, TensorOpt dx, TensorOpt dw, TensorOpt db) {
  cpu::layernorm_backward(x.f32(), w.f32(), mean.f32(), rstd.f32(), dout.f32(), f(dx), f(dw), f(db), rows_of(x),
                          x.dim(-1));
}

void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& out, const Tensor& rstd,
                     TensorOpt residual, TensorOpt sum) {
  cpu::rmsnorm_forward(x.f32(), w.f32(), eps, out.f32(), rstd.f32(), rows_of(x), x.dim(-1), f(residual), f(sum));
}

void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dout, TensorOpt dx,
                      TensorOpt dw) {
  cpu::rmsnorm_backward(x.f32(), w.f32(), rstd.f32(), dout.f32(), f(dx), f(dw), rows_of(x), x.dim(-1));
}

cpu::GeluKind gelu_kind(int kind) { return kind == 0 ? cpu::GeluKind::Erf : cpu::GeluKind::Tanh; }

void gelu_forward(const Tensor& x, const Tensor& out, int kind) {
  cpu::gelu_forward(x.f32(), out.f32(), x.numel(), gelu_kind(kind));
}
void gelu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx, int kind) {
  cpu::gelu_backward(x.f32(), dout.f32(), dx.f32(), x.numel(), gelu_kind(kind));
}
void silu_forward(const Tensor& x, const Tensor& out) { cpu::silu_forward(x.f32(), out.f32(), x.numel()); }
void silu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  cpu::silu_backward(x.f32(), dout.f32(), dx.f32(), x.numel());
}
void swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  cpu::swiglu_forward(gate.f32(), up.f32(), out.f32(), gate.numel());
}
void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                     const Tensor& dup) {
  cpu::swiglu_backward(gate.f32(), up.f32(), dout.f32(), dgate.f32(), dup.f32(), gate.numel());
}
void relu_forward(const Tensor& x, const Tensor& out) { cpu::relu_forward(x.f32(), out.f32(), x.numel()); }
void relu_backward(const Tensor& x, const Tensor& dout, const Tensor& dx) {
  cpu::relu_backward(x.f32(), dout.f32(), dx.f32(), x.numel());
}
void gated_forward(const Tensor& gate, const Tensor& up, const Tensor& out, int act) {
  cpu::gated_forward(gate.f32(), up.f32(), out.f32(), gate.numel(), cpu::GateAct(act));
}
void gated_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate, const Tensor& dup,
                    int act) {
  cpu::gated_backward(gate.f32(), up.f32(), dout.f32(), dgate.f32(), dup.f32(), gate.numel(), cpu::GateAct(act));
}

nn::CrossEntropyResult cross_entropy(const Tensor& logits, const int32_t* targets, int64_t n, TensorOpt dlogits,
                                     int32_t ignore_index, float dscale, TensorOpt loss_to) {
  int64_t count = 0;
  double loss = cpu::cross_entropy(logits.f32(), targets, f(dlogits), n, logits.dim(-1), ignore_index, dscale, &count);
  if (loss_to) record_math::put(loss_to->f32(), 0, loss);
  return {loss, count};
}

cpu::AttentionDims attention_dims(const Tensor& q, const Tensor& k, int64_t kv_len) {
  return {q.dim(0), q.dim(1), kv_len, q.dim(2), k.dim(2), q.dim(3), k.dim(1)};
}

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, TensorOpt mask, const Tensor& out,
                       const Tensor& lse, bool causal, float scale, int64_t kv_len, float dropout, uint64_t seed,
                       TensorOpt bias) {
  cpu::DropoutMask drop = cpu::DropoutMask::make(dropout, seed);
  cpu::attention_forward(q.f32(), k.f32(), v.f32(), f(mask), out.f32(), lse.f32(), attention_dims(q, k, kv_len), causal,
                         scale, dropout > 0.f ? &drop : nullptr, f(bias));
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, TensorOpt mask, const Tensor& lse,
                        TensorOpt out, const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                        bool causal, float scale, int64_t kv_len, float dropout, uint64_t seed, TensorOpt bias,
                        TensorOpt dbias) {
  cpu::DropoutMask drop = cpu::DropoutMask::make(dropout, seed);
  cpu::attention_backward(q.f32(), k.f32(), v.f32(), f(mask), lse.f32(), f(out), dout.f32(), dq.f32(), dk.f32(), dv.f32(),
                          attention_dims(q, k, kv_len), causal, scale, dropout > 0.f ? &drop : nullptr, f(bias),
                          f(dbias));
}

void kv_cache_write(const Tensor& src, const Tensor& cache, int64_t offset) {
  cpu::kv_cache_write(src.f32(), cache.f32(), src.dim(0), src.dim(1), cache.dim(1), src.dim(2) * src.dim(3), offset);
}

cpu::RopeKind rope_kind(int kind) { return kind == 0 ? cpu::RopeKind::Half : cpu::RopeKind::Interleaved; }

void rope_forward(const Tensor& x, const Tensor& out, int64_t offset, double base, int kind) {
  cpu::rope_forward(x.f32(), out.f32(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), offset, base, rope_kind(kind));
}
void rope_backward(const Tensor& dout, const Tensor& dx, int64_t offset, double base, int kind) {
  cpu::rope_backward(dout.f32(), dx.f32(), dout.dim(0), dout.dim(1), dout.dim(2), dout.dim(3), offset, base,
                     rope_kind(kind));
}

void dropout_forward(const Tensor& x, const Tensor& out, float p, uint64_t seed) {
  cpu::dropout_forward(x.f32(), out.f32(), x.numel(), p, seed);
}
void dropout_backward(const Tensor& dout, const Tensor& dx, float p, uint64_t seed) {
  cpu::dropout_backward(dout.f32(), dx.f32(), dout.numel(), p, seed);
}

}  // namespace

void cpu_nn_kernels(Kernels& k) {
#define KFAC_CPU_NN_ENTRY(name, ret, params) k.name = name;
  KFAC_NN_OP_LIST(KFAC_CPU_NN_ENTRY)
#undef KFAC_CPU_NN_ENTRY
}

}  // namespace kfac
