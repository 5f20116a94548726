// The CUDA emulation's op table and executor services: the CPU table with every nn op the
// CUDA build has a kernel for replaced by the host run of that kernel (native/cuda/nn_kernels.h),
// scratch memory per slot, and the cuBLAS stand-ins (the CPU GEMM).
#include <vector>

#include "../core/dispatch.h"
#include "../cpu/bf16.h"
#include "../cpu/gemm.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac {

namespace emu {

void* Exec::scratch(int slot, size_t bytes) {
  static std::vector<double> slots[4];
  std::vector<double>& s = slots[slot];
  if (s.size() * sizeof(double) < bytes) s.resize((bytes + sizeof(double) - 1) / sizeof(double));
  return s.data();
}

void Exec::sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  cpu::sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void Exec::gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                     int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  // The stored extents of A and B (rows × leading dimension), widened to float32 (exact).
  const int64_t a_rows = transA ? K : M, a_cols = transA ? M : K, b_rows = transB ? N : K, b_cols = transB ? K : N;
  std::vector<float> a(size_t(a_rows ? (a_rows - 1) * lda + a_cols : 0)),
      b(size_t(b_rows ? (b_rows - 1) * ldb + b_cols : 0));
  cpu::convert_bf16_to_f32(A, a.data(), int64_t(a.size()));
  cpu::convert_bf16_to_f32(B, b.data(), int64_t(b.size()));
  cpu::sgemm(transA, transB, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, C, ldc);
}

void Exec::gemm_bf16_bf16c(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                           int64_t lda, const uint16_t* B, int64_t ldb, float beta, uint16_t* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  std::vector<float> c(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) c[size_t(i * N + j)] = beta != 0.f ? cpu::bf16_to_f32(C[i * ldc + j]) : 0.f;
  gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, c.data(), N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = cpu::f32_to_bf16(c[size_t(i * N + j)]);
}

}  // namespace emu

namespace {
// factor_update with a bf16 x (bf16 activations): the device's GEMM takes the bf16 values with
// float32 accumulation; here they are widened (exactly) and the CPU kernel runs on the copy.
void (*cpu_factor_update)(const Tensor&, const Tensor&, const ops::FactorUpdateOptions&) = nullptr;
void emu_factor_update(const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt) {
  if (x.dtype() != DType::BF16) return cpu_factor_update(x, F, opt);
  Tensor xf = Tensor::empty(x.shape(), DType::F32, Device::CPU);
  cpu::convert_bf16_to_f32(static_cast<const uint16_t*>(x.raw()), xf.f32(), x.numel());
  cpu_factor_update(xf, F, opt);
}
}  // namespace

const Kernels& emulated_cuda_kernels() {
  static const Kernels k = [] {
    Kernels t = cpu_kernels();
    cpu_factor_update = t.factor_update;
    t.factor_update = emu_factor_update;
#define KFAC_EMU_FAMILY(f) emu::f##_kernels(t);
    KFAC_NN_FAMILIES(KFAC_EMU_FAMILY)
#undef KFAC_EMU_FAMILY
    t.bf16_activations = true;
    return t;
  }();
  return k;
}

}  // namespace kfac
