// The Kronecker eigenbasis on the device: EKFAC (George et al., 2018; docs/KFAC.md#ekfac) — the
// second moments of the gradients projected into the basis, and the step that divides by them —
// and the eigen method's step, which divides by the Kronecker eigenvalues instead (one template,
// as the CPU's eigenbasis_step).
//   ekfac_moments:      acc ← β·acc + α·(g Q_G)²ᵀ (x̃ Q_A)²   (x̃ = [x | 1] with a bias; squares
//                       elementwise; acc [dout, Da] is not read when β = 0)
//   precondition_ekfac: P = Q_G [(Q_Gᵀ [∇W|∇b] Q_A) ⊘ (c·S + λ)] Q_Aᵀ, a component whose
//                       denominator is not positive set to 0 (as the eigen method's pseudo-inverse).
//   precondition_eigen: the same with the denominators max(d_G,i, 0)·max(d_A,j, 0) + λ.
// Three or four SGEMMs and one elementwise body each, in the order of the CPU kernels
// (native/cpu/ekfac.cpp), which are the reference; arguments arrive checked (core/kfac_ops.cpp).
// ekfac_moments takes bf16 rows x and/or g (bf16 activations on the device): their projection is
// then a bf16 GEMM with float32 accumulation (tensor cores), Q_A[:din] / Q_G rounded to bf16 for it
// (each entry within 2⁻⁹ relative; the bias row is added in float32), instead of widening the rows
// to float32 first — the projection x̃ Q_A is EKFAC's largest GEMM (R·Da² per layer and step).
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

// Y[r, j] ← (Y[r, j] + b[j])² over [rows, n]; b is Q_A's last row (the bias column of x̃ times
// Q_A) or null.
struct AddRowSquare {
  float* y;
  const float* b;
  int64_t total, n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t k = i.global(); k < total; k += i.stride()) {
      const float v = b ? y[k] + b[k % n] : y[k];
      y[k] = v * v;
    }
  }
};

// Y [rows, n] = X [rows, k] · Q[:k] (Q row-major with n columns): an SGEMM for float32 rows; for
// bf16 rows Q[:k] is rounded into `qb` (k·n bf16) and the GEMM is bf16 × bf16 with float32 output.
template <class E>
void project(const Tensor& X, const float* Q, int64_t rows, int64_t k, int64_t n, uint16_t* qb, float* Y) {
  if (X.dtype() != DType::BF16) {
    E::sgemm(false, false, rows, n, k, 1.f, X.f32(), k, Q, n, 0.f, Y, n);
    return;
  }
  E::grid(hd::grid_blocks(k * n), hd::kThreads, ToBf16{Q, qb, k * n});
  E::gemm_bf16(false, false, rows, n, k, 1.f, static_cast<const uint16_t*>(X.raw()), k, qb, n, 0.f, Y, n);
}

// The denominators of the two steps at component (i, j) of [dout, Da] (k = i·Da + j).
struct MomentsDen {  // EKFAC: c·S[i, j] + λ
  const float* s;
  float c, lambda;
  KFAC_HD float operator()(int64_t k, int64_t, int64_t) const { return c * s[k] + lambda; }
};
struct KroneckerDen {  // eigen method: max(d_G,i, 0)·max(d_A,j, 0) + λ
  const float *dG, *dA;
  float lambda;
  KFAC_HD float operator()(int64_t, int64_t i, int64_t j) const {
    return (dG[i] > 0.f ? dG[i] : 0.f) * (dA[j] > 0.f ? dA[j] : 0.f) + lambda;
  }
};

// T[k] ← T[k] / den, 0 where den is not positive, over T [rows, n].
template <class Den>
struct Divide {
  float* t;
  Den den;
  int64_t total, n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t k = i.global(); k < total; k += i.stride()) {
      const float d = den(k, k / n, k % n);
      t[k] = d > 0.f ? t[k] / d : 0.f;
    }
  }
};

template <class E>
void ekfac_moments(const Tensor& x, const Tensor& g, const Tensor& QA, const Tensor& QG,
                   const ops::EkfacMomentsOptions& opt, const Tensor& acc) {
  const int64_t din = x.dim(-1), dout = g.dim(-1), Da = QA.dim(0);
  const int64_t R = x.numel() / din;  // din ≥ 1 and R ≥ 1, checked in core
  if (dout == 0) return;
  float* XA = static_cast<float*>(E::scratch(0, size_t(R * Da) * sizeof(float)));
  float* GQ = static_cast<float*>(E::scratch(1, size_t(R * dout) * sizeof(float)));
  // bf16 copies of Q_A[:din] and Q_G for bf16 rows, side by side in slot 2
  const int64_t qa_n = x.dtype() == DType::BF16 ? din * Da : 0, qg_n = g.dtype() == DType::BF16 ? dout * dout : 0;
  uint16_t* qb = qa_n + qg_n ? static_cast<uint16_t*>(E::scratch(2, size_t(qa_n + qg_n) * sizeof(uint16_t))) : nullptr;
  // x̃ Q_A = x Q_A[:din] + 1·Q_A[din] (the bias row added with the square)
  project<E>(x, QA.f32(), R, din, Da, qb, XA);
  E::grid(hd::grid_blocks(R * Da), hd::kThreads, AddRowSquare{XA, opt.bias ? QA.f32() + din * Da : nullptr, R * Da, Da});
  project<E>(g, QG.f32(), R, dout, dout, qb ? qb + qa_n : nullptr, GQ);
  E::grid(hd::grid_blocks(R * dout), hd::kThreads, AddRowSquare{GQ, nullptr, R * dout, dout});
  E::sgemm(true, false, dout, Da, R, opt.alpha, GQ, dout, XA, Da, opt.beta, acc.f32(), Da);
}

// P = Q_G [(Q_Gᵀ [∇W|∇b] Q_A) ⊘ den] Q_Aᵀ: four or six SGEMMs and the division.
template <class E, class Den>
void eigenbasis_step(const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& QG, const Den& den,
                     const Tensor& PW, TensorOpt Pb) {
  const int64_t dout = gW.dim(0), din = gW.dim(1), Da = din + (gb ? 1 : 0);
  if (dout == 0 || Da == 0) return;
  float* T1 = static_cast<float*>(E::scratch(0, size_t(dout * Da) * sizeof(float)));
  float* T2 = static_cast<float*>(E::scratch(1, size_t(dout * Da) * sizeof(float)));
  E::sgemm(false, false, dout, Da, din, 1.f, gW.f32(), din, QA.f32(), Da, 0.f, T1, Da);  // T1 = [∇W|∇b] Q_A
  if (gb) E::sgemm(false, false, dout, Da, 1, 1.f, gb->f32(), 1, QA.f32() + din * Da, Da, 1.f, T1, Da);
  E::sgemm(true, false, dout, Da, dout, 1.f, QG.f32(), dout, T1, Da, 0.f, T2, Da);  // T2 = Q_Gᵀ T1
  E::grid(hd::grid_blocks(dout * Da), hd::kThreads, Divide<Den>{T2, den, dout * Da, Da});
  E::sgemm(false, false, dout, Da, dout, 1.f, QG.f32(), dout, T2, Da, 0.f, T1, Da);  // T1 = Q_G T2
  E::sgemm(false, true, dout, din, Da, 1.f, T1, Da, QA.f32(), Da, 0.f, PW.f32(), din);  // P_W = T1 Q_A[:din]ᵀ
  if (gb) E::sgemm(false, true, dout, 1, Da, 1.f, T1, Da, QA.f32() + din * Da, Da, 0.f, Pb->f32(), 1);
}

template <class E>
void precondition_ekfac(const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& QG, const Tensor& S,
                        float c, float lambda, const Tensor& PW, TensorOpt Pb) {
  eigenbasis_step<E>(gW, gb, QA, QG, MomentsDen{S.f32(), c, lambda}, PW, Pb);
}

template <class E>
void precondition_eigen(const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& dA, const Tensor& QG,
                        const Tensor& dG, float lambda, const Tensor& PW, TensorOpt Pb) {
  eigenbasis_step<E>(gW, gb, QA, QG, KroneckerDen{dG.f32(), dA.f32(), lambda}, PW, Pb);
}

template <class E>
void ekfac_kernels(Kernels& k) {
  k.ekfac_moments = ekfac_moments<E>;
  k.precondition_ekfac = precondition_ekfac<E>;
  k.precondition_eigen = precondition_eigen<E>;
}

}  // namespace kfac::nnk
