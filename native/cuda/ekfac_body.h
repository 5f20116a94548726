// EKFAC on the device (George et al., 2018; docs/KFAC.md#ekfac): the second moments of the
// gradients projected into the Kronecker eigenbasis, and the step that divides by them.
//   ekfac_moments:      acc ← β·acc + α·(g Q_G)²ᵀ (x̃ Q_A)²   (x̃ = [x | 1] with a bias; squares
//                       elementwise; acc [dout, Da] is not read when β = 0)
//   precondition_ekfac: P = Q_G [(Q_Gᵀ [∇W|∇b] Q_A) ⊘ (c·S + λ)] Q_Aᵀ, a component whose
//                       denominator is not positive set to 0 (as the eigen method's pseudo-inverse).
// Three or four SGEMMs and one elementwise body each, in the order of the CPU kernels
// (native/cpu/ekfac.cpp), which are the reference; arguments arrive checked (core/kfac_ops.cpp).
#pragma once
#include "../core/dispatch.h"
#include "hd.h"

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

// T[k] ← T[k] / (c·S[k] + λ), 0 where that denominator is not positive.
struct DivideMoments {
  float* t;
  const float* s;
  float c, lambda;
  int64_t total;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t k = i.global(); k < total; k += i.stride()) {
      const float den = c * s[k] + lambda;
      t[k] = den > 0.f ? t[k] / den : 0.f;
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
  // x̃ Q_A = x Q_A[:din] + 1·Q_A[din] (the bias row added with the square)
  E::sgemm(false, false, R, Da, din, 1.f, x.f32(), din, QA.f32(), Da, 0.f, XA, Da);
  E::grid(hd::grid_blocks(R * Da), hd::kThreads, AddRowSquare{XA, opt.bias ? QA.f32() + din * Da : nullptr, R * Da, Da});
  E::sgemm(false, false, R, dout, dout, 1.f, g.f32(), dout, QG.f32(), dout, 0.f, GQ, dout);
  E::grid(hd::grid_blocks(R * dout), hd::kThreads, AddRowSquare{GQ, nullptr, R * dout, dout});
  E::sgemm(true, false, dout, Da, R, opt.alpha, GQ, dout, XA, Da, opt.beta, acc.f32(), Da);
}

template <class E>
void precondition_ekfac(const Tensor& gW, TensorOpt gb, const Tensor& QA, const Tensor& QG, const Tensor& S,
                        float c, float lambda, const Tensor& PW, TensorOpt Pb) {
  const int64_t dout = gW.dim(0), din = gW.dim(1), Da = din + (gb ? 1 : 0);
  if (dout == 0 || Da == 0) return;
  float* T1 = static_cast<float*>(E::scratch(0, size_t(dout * Da) * sizeof(float)));
  float* T2 = static_cast<float*>(E::scratch(1, size_t(dout * Da) * sizeof(float)));
  E::sgemm(false, false, dout, Da, din, 1.f, gW.f32(), din, QA.f32(), Da, 0.f, T1, Da);  // T1 = [∇W|∇b] Q_A
  if (gb) E::sgemm(false, false, dout, Da, 1, 1.f, gb->f32(), 1, QA.f32() + din * Da, Da, 1.f, T1, Da);
  E::sgemm(true, false, dout, Da, dout, 1.f, QG.f32(), dout, T1, Da, 0.f, T2, Da);  // T2 = Q_Gᵀ T1
  E::grid(hd::grid_blocks(dout * Da), hd::kThreads, DivideMoments{T2, S.f32(), c, lambda, dout * Da});
  E::sgemm(false, false, dout, Da, dout, 1.f, QG.f32(), dout, T2, Da, 0.f, T1, Da);  // T1 = Q_G T2
  E::sgemm(false, true, dout, din, Da, 1.f, T1, Da, QA.f32(), Da, 0.f, PW.f32(), din);  // P_W = T1 Q_A[:din]ᵀ
  if (gb) E::sgemm(false, true, dout, 1, Da, 1.f, T1, Da, QA.f32() + din * Da, Da, 0.f, Pb->f32(), 1);
}

template <class E>
void ekfac_kernels(Kernels& k) {
  k.ekfac_moments = ekfac_moments<E>;
  k.precondition_ekfac = precondition_ekfac<E>;
}

}  // namespace kfac::nnk
