// The CUDA backend's entries of the op table (native/core/dispatch.h): adapters from the
// checked tensor-level arguments to the kernels of this folder, and the registration of
// the table with the device memory functions (context.cu). Ops without an entry here
// raise "op X has no cuda kernel" in core.
#include <cstring>

#include "../core/dispatch.h"
#include "clip.cuh"
#include "context.cuh"
#include "eigh.cuh"
#include "elementwise.cuh"
#include "factor.cuh"
#include "gemm.cuh"
#include "nn_kernels.h"
#include "optim.cuh"
#include "precondition.cuh"
#include "util.cuh"

namespace kfac::cuda {

namespace {

void fill_t(const Tensor& x, float v) { cuda::fill(x.f32(), x.numel(), v); }

void copy_t(const Tensor& src, const Tensor& dst) {
  cuda::copy_device(dst.raw(), src.raw(), src.nbytes());
}

// Stream-ordered, no host synchronisation: the copies of a stack/unstack queue behind each other.
void copy_range_t(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count) {
  const size_t es = dtype_size(src.dtype());
  cuda::copy_device(static_cast<char*>(dst.raw()) + size_t(dst_offset) * es,
                    static_cast<const char*>(src.raw()) + size_t(src_offset) * es, size_t(count) * es);
}

void cast_t(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == DType::F32) cuda::f32_to_bf16(src.f32(), dst.raw(), src.numel());
  else cuda::bf16_to_f32(src.raw(), dst.f32(), src.numel());
}

void add_t(const Tensor& a, const Tensor& b, const Tensor& out) { cuda::add(a.f32(), b.f32(), out.f32(), a.numel()); }
void scale_t(const Tensor& x, float alpha, const Tensor& out) { cuda::scale(x.f32(), alpha, out.f32(), x.numel()); }
void axpy_t(float alpha, const Tensor& x, const Tensor& y) { cuda::axpy(alpha, x.f32(), y.f32(), x.numel()); }

void transpose_t(const Tensor& x, const Tensor& out) {
  const int64_t rows = x.dim(-2), cols = x.dim(-1);
  const int64_t batch = (rows != 0 && cols != 0) ? x.numel() / (rows * cols) : 0;
  if (batch) cuda::transpose(x.f32(), out.f32(), batch, rows, cols);
}

double sum_t(const Tensor& x) { return cuda::reduce(x.f32(), nullptr, x.numel(), 0); }
double sum_squares_t(const Tensor& x) { return cuda::reduce(x.f32(), nullptr, x.numel(), 1); }
double dot_t(const Tensor& x, const Tensor& y) { return cuda::reduce(x.f32(), y.f32(), x.numel(), 2); }

void factor_update_t(const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt) {
  cuda::factor_update(x, F, opt);
}

bool eigh_t(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt) {
  return cuda::eigh(a, values, vectors, opt.clamp_nonneg).retried_double;
}

int64_t eigh_batched_t(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt) {
  return cuda::eigh_batched(a, values, vectors, opt.clamp_nonneg);
}

void eigh_batched_to_t(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt,
                       const Tensor& record, int64_t slot) {
  cuda::eigh_batched_to(a, values, vectors, opt.clamp_nonneg, record.f32() + 2 * slot);
}

}  // namespace

void register_backend() {
  Kernels k;
  k.matmul = cuda::matmul;
  k.fill = fill_t;
  k.copy = copy_t;
  k.copy_range = copy_range_t;
  k.cast = cast_t;
  k.add = add_t;
  k.scale = scale_t;
  k.axpy = axpy_t;
  k.transpose = transpose_t;
  k.sum = sum_t;
  k.sum_squares = sum_squares_t;
  k.dot = dot_t;
  k.factor_update = factor_update_t;
  k.damped_inverse = cuda::damped_inverse;
  k.precondition_inverse = cuda::precondition_inverse;
  k.pi_damping = cuda::pi_damping;
  k.precondition_inverse_factors = cuda::precondition_inverse_factors;
  k.clip_newton_step = cuda::clip_newton_step;
  k.eigh = eigh_t;
  k.eigh_refresh = cuda::eigh_refresh;
  k.eigh_batched = eigh_batched_t;
  k.eigh_batched_to = eigh_batched_to_t;
  k.adamw_step = cuda::adamw_step;
  k.sgd_step = cuda::sgd_step;
  // The nn families (nn_kernels.h).
#define KFAC_CUDA_FAMILY(f) f##_kernels(k);
  KFAC_NN_FAMILIES(KFAC_CUDA_FAMILY)
  k.bf16_activations = true;
#undef KFAC_CUDA_FAMILY
  kfac::register_backend(Device::CUDA, memory(), k);
}

}  // namespace kfac::cuda
