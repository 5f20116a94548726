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
#include "ops.h"
#include "tensor.h"

namespace kfac {

using TensorOpt = const Tensor*;  // an optional tensor argument (null when absent)

// X(name, return type, parameter list)
#define KFAC_OP_LIST(X)                                                                                    \
  X(matmul, void, (const Tensor& a, const Tensor& b, const Tensor& out, const ops::MatmulOptions& opt))   \
  X(fill, void, (const Tensor& x, float value))                                                          \
  X(copy, void, (const Tensor& src, const Tensor& dst))                                                  \
  X(cast, void, (const Tensor& src, const Tensor& dst))                                                  \
  X(add, void, (const Tensor& a, const Tensor& b, const Tensor& out))                                    \
  X(scale, void, (const Tensor& x, float alpha, const Tensor& out))                                      \
  X(axpy, void, (float alpha, const Tensor& x, const Tensor& y))                                         \
  X(transpose, void, (const Tensor& x, const Tensor& out))                                               \
  X(sum, double, (const Tensor& x))                                                                      \
  X(sum_squares, double, (const Tensor& x))                                                              \
  X(dot, double, (const Tensor& x, const Tensor& y))                                                     \
  X(factor_update, void, (const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt))        \
  X(damped_inverse, bool, (const Tensor& a, float delta, const Tensor& out))                             \
  X(precondition_eigen, void,                                                                            \
    (const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& dA, const Tensor& QG,               \
     const Tensor& dG, float lambda, const Tensor& PW, TensorOpt Pb))                                    \
  X(precondition_inverse, void,                                                                          \
    (const Tensor& gW, TensorOpt gb, const Tensor& Ainv, const Tensor& Ginv, const Tensor& PW,           \
     TensorOpt Pb))                                                                                      \
  X(pi_damping, ops::PiDampingResult, (const Tensor& A, const Tensor& G, float lambda))                  \
  X(precondition_inverse_factors, ops::PiDampingResult,                                                  \
    (const Tensor& gW, TensorOpt gb, const Tensor& A, const Tensor& G, float lambda, const Tensor& PW,   \
     TensorOpt Pb))                                                                                      \
  X(clip_newton_step, ops::ClipResult,                                                                   \
    (const std::vector<Tensor>& steps, const std::vector<Tensor>* grads, const ops::ClipOptions& opt))   \
  X(eigh, bool, (const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt)) \
  X(eigh_refresh, cpu::RefreshReport,                                                                    \
    (const Tensor& a, const Tensor& prev_vectors, TensorOpt prev_values, const Tensor& values,            \
     const Tensor& vectors, const cpu::RefreshOptions& opt))                                             \
  X(eigh_batched, int64_t,                                                                               \
    (const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt))         \
  X(adamw_step, void,                                                                                    \
    (const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,           \
     TensorOpt max_exp_avg_sq, const cpu::AdamWParams& p))                                               \
  X(sgd_step, void, (const Tensor& param, const Tensor& grad, TensorOpt momentum_buf, const cpu::SgdParams& p))

// The neural-network ops: entries of the op list whose only kernels are the CPU ones
// (native/core/nn.cpp checks, then calls native/cpu on the tensors' memory). They run on a
// device whose table sets `cpu_nn` (its memory is host memory): the CPU, and the CPU loopback,
// which registers the CPU table under the cuda id. On any other device (a real CUDA backend)
// they raise "op X has no <device> kernel".
#define KFAC_CPU_ONLY_OP_LIST(X)                                                                     \
  X(linear_forward) X(linear_backward) X(embedding_forward) X(embedding_backward)                    \
  X(layernorm_forward) X(layernorm_backward) X(rmsnorm_forward) X(rmsnorm_backward) X(gelu_forward)   \
  X(gelu_backward) X(silu_forward) X(silu_backward) X(swiglu_forward) X(swiglu_backward)             \
  X(relu_forward) X(relu_backward) X(gated_forward) X(gated_backward)                                \
  X(cross_entropy) X(attention_forward) X(attention_backward) X(kv_cache_write) X(rope_forward)       \
  X(rope_backward) X(dropout_forward) X(dropout_backward)

struct Kernels {
#define KFAC_KERNEL_SLOT(name, ret, params) ret(*name) params = nullptr;
  KFAC_OP_LIST(KFAC_KERNEL_SLOT)
#undef KFAC_KERNEL_SLOT
  // The CPU kernels of KFAC_CPU_ONLY_OP_LIST run on this device's memory (set by cpu_kernels()).
  bool cpu_nn = false;
};

// Installs a backend: its memory functions and its kernels. Replaces what was there.
void register_backend(Device device, const DeviceAllocator& memory, const Kernels& kernels);
bool backend_registered(Device device);
const Kernels& kernels_of(Device device);

// The CPU kernels and, for tests, the CPU loopback: the CPU kernels and host memory
// registered under the cuda id, so that dispatch, transfers and device errors run without
// a GPU. Refused (Device error) when a real CUDA backend is registered.
const Kernels& cpu_kernels();
void enable_cpu_loopback();
bool cpu_loopback_enabled();
// Host↔device copies made through the loopback's memory functions since it was enabled
// (tensor transfers `to`, uploads and downloads); device-to-device copies are not counted.
struct LoopbackTransfers {
  int64_t uploads = 0, downloads = 0, upload_bytes = 0, download_bytes = 0;
};
LoopbackTransfers loopback_transfers();

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

// For the ops of KFAC_CPU_ONLY_OP_LIST: DeviceError "op <name> has no <device> kernel" unless
// the device's table has the CPU nn kernels (cpu_nn).
void require_nn_kernels(Device device, const char* op);

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
