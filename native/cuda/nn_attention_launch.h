// Attention's adapters: the op entries of native/core/dispatch.h over the executor E (the CUDA
// executor on the device, native/emu/exec.h in the emulation). bf16 activations with a head
// dimension that is a multiple of 16 run the tensor-core bodies (nn_attention_tc_body.h) unless
// they are switched off (attention_tensor_cores(), KFAC_ATTN_TENSOR_CORES=0); everything else runs
// the CUDA-core bodies (nn_attention_body.h), which are the tensor-core bodies' reference.
#pragma once
#include <string>
#include <type_traits>

#include "../core/dispatch.h"
#include "nn_attention_body.h"
#include "nn_attention_tc_body.h"

namespace kfac::nnk {

// Executor-specific preparation of a block launch needing `bytes` of shared memory (the CUDA
// build specialises it to opt in above 48 KiB and to refuse what the device cannot give).
template <class E, class F>
struct AttnSharedMemory {
  static void prepare(size_t) {}
};

template <class E, class F>
void attn_launch(int64_t blocks, const F& f) {
  const size_t bytes = size_t(F::shared_bytes(f.p.D));
  AttnSharedMemory<E, F>::prepare(bytes);
  E::block(blocks, kAttnThreads, bytes, f);
}

// Whether a call with storage S and head dimension D takes the tensor-core bodies.
template <class S>
bool attn_tensor_cores(int64_t D) {
  return std::is_same<S, hd::bf16>::value && attn_tc_applies(D) && attention_tensor_cores();
}

inline AttnParams attn_params(const Tensor& q, const Tensor& k, TensorOpt mask, bool causal, float scale,
                              int64_t kv_len, float dropout, uint64_t seed) {
  AttnParams p{};
  p.B = q.dim(0), p.Tq = q.dim(1), p.H = q.dim(2), p.D = q.dim(3), p.Hkv = k.dim(2), p.Tcap = k.dim(1), p.Tk = kv_len;
  if (p.D > kAttnMaxHeadDim)
    throw_arg(ErrorCode::InvalidArgument, "q", "a head dimension of at most " + std::to_string(kAttnMaxHeadDim) + " on cuda",
              std::to_string(p.D));
  p.mask = mask ? mask->f32() : nullptr;
  p.causal = causal ? 1 : 0;
  p.scale = scale;
  if (dropout > 0.f) {
    const cpu::DropoutMask m = cpu::DropoutMask::make(dropout, seed);
    p.dropout = 1, p.drop_key = m.key, p.drop_threshold = m.threshold, p.drop_scale = m.scale;
  }
  return p;
}

template <class E>
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, TensorOpt mask, const Tensor& out,
                       const Tensor& lse, bool causal, float scale, int64_t kv_len, float dropout, uint64_t seed,
                       TensorOpt bias) {
  AttnParams base = attn_params(q, k, mask, causal, scale, kv_len, dropout, seed);
  base.lse = lse.f32();
  base.bias = bias ? bias->f32() : nullptr;
  if (base.B <= 0 || base.H <= 0 || base.Tq <= 0) return;
  with_storage(q.dtype(), [&](auto tag) {
    using S = decltype(tag);
    AttnParamsT<S> p;
    static_cast<AttnParams&>(p) = base;
    p.q = as<S>(q), p.k = as<S>(k), p.v = as<S>(v), p.o = as<S>(out);
    const int64_t blocks = p.B * p.H * attn_query_tiles(p);
    if constexpr (std::is_same<S, hd::bf16>::value)
      if (attn_tensor_cores<S>(p.D)) return attn_launch<E>(blocks, AttnForwardTc{p});
    attn_launch<E>(blocks, AttnForward<S>{p});
  });
}

template <class E>
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, TensorOpt mask, const Tensor& lse,
                        TensorOpt out, const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                        bool causal, float scale, int64_t kv_len, float dropout, uint64_t seed, TensorOpt bias,
                        TensorOpt dbias) {
  AttnParams base = attn_params(q, k, mask, causal, scale, kv_len, dropout, seed);
  base.lse = lse.f32();
  base.bias = bias ? bias->f32() : nullptr, base.dbias = dbias ? dbias->f32() : nullptr;
  if (base.B <= 0 || base.Hkv <= 0) return;
  const int64_t rows = base.B * base.H * base.Tq;
  base.drow = static_cast<float*>(E::scratch(0, size_t(rows > 0 ? rows : 1) * sizeof(float)));
  with_storage(q.dtype(), [&](auto tag) {
    using S = decltype(tag);
    AttnParamsT<S> p;
    static_cast<AttnParams&>(p) = base;
    p.q = as<S>(q), p.k = as<S>(k), p.v = as<S>(v), p.out = as<S>(out);
    p.dout = as<S>(dout), p.dq = as<S>(dq), p.dk = as<S>(dk), p.dv = as<S>(dv);
    const int64_t qblocks = p.B * p.H * attn_query_tiles(p), kblocks = p.B * p.Hkv * attn_cap_tiles(p);
    if constexpr (std::is_same<S, hd::bf16>::value)
      if (attn_tensor_cores<S>(p.D)) {
        if (rows > 0) attn_launch<E>(qblocks, AttnDqTc{p});
        return attn_launch<E>(kblocks, AttnDkvTc{p});
      }
    if (rows > 0) attn_launch<E>(qblocks, AttnDq<S>{p});
    attn_launch<E>(kblocks, AttnDkv<S>{p});
  });
}

template <class E>
void attention_kernels(Kernels& k) {
  k.attention_forward = attention_forward<E>;
  k.attention_backward = attention_backward<E>;
}

}  // namespace kfac::nnk
