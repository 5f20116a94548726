// Activations whose derivative is read from their output (the heads of BERT-family classifiers):
// kind 0 tanh, 1 relu. Forward out = f(x); backward dx = dout·f'(x) computed from y = f(x):
// tanh' = 1 − y², relu' = [y > 0]. Math in float64, rounded once to float32, so the host and the
// device give the same bits (tanh from the libm of each side, correctly rounded to float32).
#pragma once
#include "../core/dispatch.h"
#include "hd.h"

namespace kfac::nnk {

KFAC_HD float outact(float x, int kind) {
  if (kind == 0) return float(::tanh(double(x)));
  return x > 0.f ? x : (x != x ? x : 0.f);  // NaN stays NaN
}

KFAC_HD float outact_grad(float y, float d, int kind) {
  if (kind == 0) return float(double(d) * (1.0 - double(y) * double(y)));
  return y > 0.f ? d : 0.f;
}

struct OutAct {
  const float *a, *b;
  float* out;
  int64_t n;
  int kind;
  bool backward;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride())
      out[j] = backward ? outact_grad(a[j], b[j], kind) : outact(a[j], kind);
  }
};

template <class E>
void act_out_forward(const Tensor& x, const Tensor& out, int kind) {
  const int64_t n = x.numel();
  if (n > 0) E::grid(hd::grid_blocks(n), hd::kThreads, OutAct{x.f32(), nullptr, out.f32(), n, kind, false});
}

template <class E>
void act_out_backward(const Tensor& y, const Tensor& dout, const Tensor& dx, int kind) {
  const int64_t n = y.numel();
  if (n > 0) E::grid(hd::grid_blocks(n), hd::kThreads, OutAct{y.f32(), dout.f32(), dx.f32(), n, kind, true});
}

template <class E>
void outact_kernels(Kernels& k) {
  k.act_out_forward = act_out_forward<E>;
  k.act_out_backward = act_out_backward<E>;
}

}  // namespace kfac::nnk
