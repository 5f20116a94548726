// The op list and the backend table. Every op is one line of KFAC_OP_LIST: its name and
// the signature of its kernel. A kernel receives arguments that core has already checked
// (dtype, device, shapes, aliasing, ranges) and outputs already allocated on the device;
// it only computes. Each backend fills one Kernels table and registers it with its memory
// functions under a device id: the CPU at start-up, the CUDA build when the addon loads.
// A null entry means "no kernel on that device": core raises DeviceError("op X has no
// cuda kernel"); nothing is ever routed through the host behind the caller's back.
#pragma once
#include <initializer_list>
#include <string>
#include <vector>

#include "../cpu/eigh.h"
#include "../cpu/optim.h"
#include "kfac_ops.h"
#include "nn.h"
#include "ops.h"
#include "tensor.h"

namespace kfac {

using TensorOpt = const Tensor*;  // an optional tensor argument (null when absent)

// X(name, return type, parameter list). The op list is the tensor ops plus the nn ops.
#define KFAC_OP_LIST(X) KFAC_TENSOR_OP_LIST(X) KFAC_NN_OP_LIST(X)

#define KFAC_TENSOR_OP_LIST(X)                                                                             \
  X(matmul, void, (const Tensor& a, const Tensor& b, const Tensor& out, const ops::MatmulOptions& opt))   \
  X(fill, void, (const Tensor& x, float value))                                                          \
  X(copy, void, (const Tensor& src, const Tensor& dst))                                                  \
  X(copy_range, void,                                                                                    \
    (const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count))       \
  X(cast, void, (const Tensor& src, const Tensor& dst))                                                  \
  X(add, void, (const Tensor& a, const Tensor& b, const Tensor& out))                                    \
  X(scale, void, (const Tensor& x, float alpha, const Tensor& out))                                      \
  X(axpy, void, (float alpha, const Tensor& x, const Tensor& y))                                         \
  X(transpose, void, (const Tensor& x, const Tensor& out))                                               \
  X(sum, double, (const Tensor& x))                                                                      \
  X(sum_squares, double, (const Tensor& x))                                                              \
  X(sum_squares_many, std::vector<double>, (const std::vector<Tensor>& xs))                              \
  X(dot, double, (const Tensor& x, const Tensor& y))                                                     \
  X(dot_many, std::vector<double>, (const std::vector<Tensor>& xs, const std::vector<Tensor>& ys))        \
  X(factor_update, void, (const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt))        \
  X(damped_inverse, bool, (const Tensor& a, float delta, const Tensor& out))                             \
  X(precondition_eigen, void,                                                                            \
    (const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& dA, const Tensor& QG,               \
     const Tensor& dG, float lambda, const Tensor& PW, TensorOpt Pb))                                    \
  X(precondition_inverse, void,                                                                          \
    (const Tensor& gW, TensorOpt gb, const Tensor& Ainv, const Tensor& Ginv, const Tensor& PW,           \
     TensorOpt Pb))                                                                                      \
  X(precondition_ekfac, void,                                                                            \
    (const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& QG, const Tensor& S, float c,       \
     float lambda, const Tensor& PW, TensorOpt Pb))                                                      \
  X(ekfac_moments, void,                                                                                 \
    (const Tensor& x, const Tensor& g, const Tensor& QA, const Tensor& QG,                               \
     const ops::EkfacMomentsOptions& opt, const Tensor& acc))                                            \
  X(kron_quadratic_many, std::vector<double>,                                                           \
    (const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs, const std::vector<Tensor>& As,   \
     const std::vector<Tensor>& Gs))                                                                     \
  X(pi_damping, ops::PiDampingResult, (const Tensor& A, const Tensor& G, float lambda))                  \
  X(precondition_inverse_factors, ops::PiDampingResult,                                                  \
    (const Tensor& gW, TensorOpt gb, const Tensor& A, const Tensor& G, float lambda, const Tensor& PW,   \
     TensorOpt Pb))                                                                                      \
  X(clip_newton_step, ops::ClipResult,                                                                   \
    (const std::vector<Tensor>& steps, const std::vector<Tensor>* grads, const ops::ClipOptions& opt))   \
  X(sum_squares_to, void,                                                                                \
    (const std::vector<Tensor>& xs, const Tensor& record, int64_t offset, int64_t flag, int64_t check_at,   \
     int64_t check_count))                                                                               \
  X(trust_clip, void,                                                                                    \
    (const std::vector<Tensor>& steps, const std::vector<Tensor>& params, const ops::TrustClipOptions& opt, \
     const Tensor& record, int64_t offset))                                                              \
  X(ema_commit, void, (const Tensor& F, const Tensor& X, double beta, const Tensor& record, int64_t slot)) \
  X(dot_many_to, void,                                                                                   \
    (const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& record, int64_t offset))  \
  X(kron_quadratic_many_to, void,                                                                        \
    (const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs, const std::vector<Tensor>& As,   \
     const std::vector<Tensor>& Gs, const Tensor& record, int64_t offset))                               \
  X(copy_range_if, void,                                                                                 \
    (const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count,        \
     const Tensor& record, int64_t slot))                                                                \
  X(eigh, bool, (const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt)) \
  X(eigh_refresh, cpu::RefreshReport,                                                                    \
    (const Tensor& a, const Tensor& prev_vectors, TensorOpt prev_values, const Tensor& values,            \
     const Tensor& vectors, const cpu::RefreshOptions& opt))                                             \
  X(eigh_batched, int64_t,                                                                               \
    (const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt))         \
  X(eigh_batched_to, void,                                                                               \
    (const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt,          \
     const Tensor& record, int64_t slot))                                                                \
  X(adamw_step, void,                                                                                    \
    (const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,           \
     TensorOpt max_exp_avg_sq, const cpu::AdamWParams& p))                                               \
  X(sgd_step, void, (const Tensor& param, const Tensor& grad, TensorOpt momentum_buf, const cpu::SgdParams& p))

// The neural-network ops (native/core/nn.h), after nn_*.cpp's checks. Same conventions as nn.h:
// activations and input gradients are written (=), parameter gradients accumulate (+=), a
// null optional is skipped. Token ids and targets stay host arrays (`ids`, `n`): a device
// kernel uploads them itself. kv_len is resolved (the Tk used, ≥ 0); kinds are the ints of
// nn.h (gelu 0 erf / 1 tanh; gated act 0 GELU erf / 1 GELU tanh / 2 ReLU / 3 SiLU; rope 0
// rotate-half / 1 interleaved); attention's bias [H, Tq, Tk] and dbias [B, H, Tq, Tk] are
// null or checked. W of linear may be bfloat16 ([OUT, IN], never with conv1d; then dW is null).
#define KFAC_NN_OP_LIST(X)                                                                                 \
  X(linear_forward, void, (const Tensor& x, const Tensor& W, TensorOpt b, const Tensor& y, bool conv1d))   \
  X(linear_backward, void,                                                                               \
    (const Tensor& x, const Tensor& W, const Tensor& dy, TensorOpt dx, TensorOpt dW, TensorOpt db,       \
     bool conv1d, bool accumulate_dx))                                                                   \
  X(embedding_forward, void, (const int32_t* ids, int64_t n, const Tensor& W, const Tensor& out))        \
  X(embedding_backward, void, (const int32_t* ids, int64_t n, const Tensor& dout, const Tensor& dW))     \
  X(layernorm_forward, void,                                                                             \
    (const Tensor& x, const Tensor& w, TensorOpt b, float eps, const Tensor& out, const Tensor& mean,    \
     const Tensor& rstd, TensorOpt residual, TensorOpt sum))                                             \
  X(layernorm_backward, void,                                                                            \
    (const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dout,       \
     TensorOpt dx, TensorOpt dw, TensorOpt db))                                                          \
  X(rmsnorm_forward, void,                                                                               \
    (const Tensor& x, const Tensor& w, float eps, const Tensor& out, const Tensor& rstd, TensorOpt residual, \
     TensorOpt sum))                                                                                     \
  X(rmsnorm_backward, void,                                                                              \
    (const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dout, TensorOpt dx, TensorOpt dw)) \
  X(gelu_forward, void, (const Tensor& x, const Tensor& out, int kind))                                  \
  X(gelu_backward, void, (const Tensor& x, const Tensor& dout, const Tensor& dx, int kind))              \
  X(silu_forward, void, (const Tensor& x, const Tensor& out))                                            \
  X(silu_backward, void, (const Tensor& x, const Tensor& dout, const Tensor& dx))                        \
  X(swiglu_forward, void, (const Tensor& gate, const Tensor& up, const Tensor& out))                     \
  X(swiglu_backward, void,                                                                               \
    (const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate, const Tensor& dup))  \
  X(relu_forward, void, (const Tensor& x, const Tensor& out))                                            \
  X(relu_backward, void, (const Tensor& x, const Tensor& dout, const Tensor& dx))                        \
  X(gated_forward, void, (const Tensor& gate, const Tensor& up, const Tensor& out, int act))             \
  X(gated_backward, void,                                                                                \
    (const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate, const Tensor& dup,   \
     int act))                                                                                           \
  X(cross_entropy, nn::CrossEntropyResult,                                                               \
    (const Tensor& logits, const int32_t* targets, int64_t n, TensorOpt dlogits, int32_t ignore_index,   \
     float dscale, TensorOpt loss_to))                                                                   \
  X(attention_forward, void,                                                                             \
    (const Tensor& q, const Tensor& k, const Tensor& v, TensorOpt mask, const Tensor& out,               \
     const Tensor& lse, bool causal, float scale, int64_t kv_len, float dropout, uint64_t seed,          \
     TensorOpt bias))                                                                                    \
  X(attention_backward, void,                                                                            \
    (const Tensor& q, const Tensor& k, const Tensor& v, TensorOpt mask, const Tensor& lse, TensorOpt out, \
     const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv, bool causal, float scale, \
     int64_t kv_len, float dropout, uint64_t seed, TensorOpt bias, TensorOpt dbias))                     \
  X(kv_cache_write, void, (const Tensor& src, const Tensor& cache, int64_t offset))                      \
  X(time_slice, void, (const Tensor& src, const Tensor& dst, int64_t offset))                           \
  X(rope_forward, void, (const Tensor& x, const Tensor& out, int64_t offset, double base, int kind))      \
  X(rope_backward, void, (const Tensor& dout, const Tensor& dx, int64_t offset, double base, int kind))  \
  X(dropout_forward, void, (const Tensor& x, const Tensor& out, float p, uint64_t seed))                 \
  X(dropout_backward, void, (const Tensor& dout, const Tensor& dx, float p, uint64_t seed))              \
  X(act_out_forward, void, (const Tensor& x, const Tensor& out, int kind))                               \
  X(act_out_backward, void, (const Tensor& y, const Tensor& dout, const Tensor& dx, int kind))            \
  X(col_scale, void, (const Tensor& x, const Tensor& l, float shift, const Tensor& out, bool accumulate)) \
  X(col_scale_backward, void, (const Tensor& a, const Tensor& b, const Tensor& u, TensorOpt dl))

struct Kernels {
#define KFAC_KERNEL_SLOT(name, ret, params) ret(*name) params = nullptr;
  KFAC_OP_LIST(KFAC_KERNEL_SLOT)
#undef KFAC_KERNEL_SLOT
  // Whether the nn kernels take bfloat16 activations (native/core/nn_*.cpp list which arguments
  // may be): the CUDA kernels and their emulation do, the CPU kernels (and the loopback) do not.
  bool bf16_activations = false;
};

// Installs a backend: its memory functions and its kernels. Replaces what was there.
void register_backend(Device device, const DeviceAllocator& memory, const Kernels& kernels);
bool backend_registered(Device device);
const Kernels& kernels_of(Device device);

// The CPU kernels and, for tests, the CPU loopback: the CPU kernels and host memory
// registered under the cuda id, so that dispatch, transfers and device errors run without
// a GPU. Refused (Device error) when a real CUDA backend is registered.
// cpu_nn_kernels fills the nn entries (native/cpu/kernels_nn.cpp).
const Kernels& cpu_kernels();
void cpu_nn_kernels(Kernels& k);
void enable_cpu_loopback();
bool cpu_loopback_enabled();
// The CUDA emulation (tests): the loopback's host memory under the cuda id, with the table of
// emulated_cuda_kernels() (native/emu): the CPU table whose nn entries run the CUDA kernels'
// own bodies and adapters on the host. Refused like the loopback when a real CUDA backend is
// registered. The loopback and the emulation replace each other (same memory, other table).
void enable_cuda_emulation();
bool cuda_emulation_enabled();
const Kernels& emulated_cuda_kernels();
// Host↔device copies made through the loopback's memory functions since it was enabled
// (tensor transfers `to`, uploads and downloads); device-to-device copies are not counted.
struct LoopbackTransfers {
  int64_t uploads = 0, downloads = 0, upload_bytes = 0, download_bytes = 0;
};
LoopbackTransfers loopback_transfers();

// Whether bf16 attention on the cuda device (and in its emulation) runs on tensor cores where
// the head dimension allows (native/cuda/nn_attention_launch.h). On unless the environment says
// KFAC_ATTN_TENSOR_CORES=0 when first asked; the setter (the parity checks' switch) returns the
// previous setting.
bool attention_tensor_cores();
bool set_attention_tensor_cores(bool on);

// The op list, for the parity suite and the docs: every op's name and whether `device`
// has a kernel for it.
struct OpEntry {
  const char* name;
  bool has_kernel;
};
std::vector<OpEntry> op_list(Device device);

// The kernel of op `name` on `device`; DeviceError "op <name> has no <device> kernel" when
// the backend lacks it (or the device has no backend in this build).
[[noreturn]] void throw_no_kernel(const char* op, Device device);
template <class F>
F kernel(Device device, F Kernels::*slot, const char* op) {
  F f = backend_registered(device) ? kernels_of(device).*slot : nullptr;
  if (!f) throw_no_kernel(op, device);
  return f;
}
#define KFAC_DISPATCH(device, op) ::kfac::kernel(device, &::kfac::Kernels::op, #op)

// The common device of an op's tensor arguments (nulls skipped). The first tensor sets it;
// any other on a different device is a DeviceError naming that argument. Each tensor is
// also checked to be live (not disposed).
struct NamedTensor {
  const Tensor* t;
  const char* name;
};
Device common_device(std::initializer_list<NamedTensor> args);

// A copy of t on `device` (same dtype); t itself when it is already there.
Tensor to_device(const Tensor& t, Device device);
// Whether tensors can be placed on `device` now: a backend is registered and a device answers.
bool device_available(Device device);
// Waits for the device's queued work (no-op on the CPU).
void synchronize(Device device);

}  // namespace kfac
