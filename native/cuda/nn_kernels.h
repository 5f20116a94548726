// The nn entries of a CUDA-shaped op table, one function per op family: each fills its slots of
// KFAC_NN_OP_LIST with the adapters of native/cuda/nn_<family>_body.h instantiated for one
// executor — kfac::cuda (native/cuda/nn_<family>.cu, the device) or kfac::emu
// (native/emu/nn_<family>.cpp, the host emulation).
// Families: act (gelu, silu, swiglu, relu, gated), linear, embedding (and kv_cache_write), norm (layernorm,
// rmsnorm), loss (cross_entropy), rope, dropout, attention (forward and backward), reduce
// (sum_squares_many, a tensor op of the list written as a body so that the emulation runs it),
// outact (tanh, relu with the derivative from the output), colscale (IA3's column scaling), ew
// (add / scale / axpy when an operand is bf16: the float32 calls keep the table's kernels),
// timeslice (time_slice, kv_cache_write's reverse), ekfac (ekfac_moments, precondition_ekfac and precondition_eigen, tensor
// ops of the list written as bodies like reduce), quadratic (kron_quadratic, adaptive damping's ⟨D, G D A⟩), record (sum_squares_to, trust_clip,
// ema_commit, copy_range_if: the step record, tensor ops written as bodies).
#pragma once
#include "../core/dispatch.h"

#define KFAC_NN_FAMILIES(F) F(act) F(linear) F(embedding) F(norm) F(loss) F(rope) F(dropout) F(attention) F(reduce) F(outact) F(colscale) F(ew) F(timeslice) F(ekfac) F(quadratic) F(record)

namespace kfac::cuda {
void act_kernels(Kernels& k);
void linear_kernels(Kernels& k);
void embedding_kernels(Kernels& k);
void norm_kernels(Kernels& k);
void loss_kernels(Kernels& k);
void rope_kernels(Kernels& k);
void dropout_kernels(Kernels& k);
void attention_kernels(Kernels& k);
void reduce_kernels(Kernels& k);
void outact_kernels(Kernels& k);
void colscale_kernels(Kernels& k);
void ew_kernels(Kernels& k);
void timeslice_kernels(Kernels& k);
void ekfac_kernels(Kernels& k);
void quadratic_kernels(Kernels& k);
void record_kernels(Kernels& k);
}  // namespace kfac::cuda

namespace kfac::emu {
void act_kernels(Kernels& k);
void linear_kernels(Kernels& k);
void embedding_kernels(Kernels& k);
void norm_kernels(Kernels& k);
void loss_kernels(Kernels& k);
void rope_kernels(Kernels& k);
void dropout_kernels(Kernels& k);
void attention_kernels(Kernels& k);
void reduce_kernels(Kernels& k);
void outact_kernels(Kernels& k);
void colscale_kernels(Kernels& k);
void ew_kernels(Kernels& k);
void timeslice_kernels(Kernels& k);
void ekfac_kernels(Kernels& k);
void quadratic_kernels(Kernels& k);
void record_kernels(Kernels& k);
}  // namespace kfac::emu
