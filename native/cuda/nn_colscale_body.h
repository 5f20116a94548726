// Column scaling by a vector and its gradient (IA3's learned scales; any [..., n] tensor, a
// vector l [n] on its last axis):
//   col_scale:          out (= or +=) x ⊙ (l + shift), the product in float64 rounded once;
//   col_scale_backward: u = a ⊙ b (float64 product rounded once), dl[j] += Σ_r u[r, j] in float32,
//                       rows in order (the host's sequential sums bit for bit); dl may be null.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"

namespace kfac::nnk {

struct ColScale {
  const float *x, *l;
  float* out;
  int64_t total, n;
  double shift;
  bool accumulate;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t k = i.global(); k < total; k += i.stride()) {
      const double v = double(x[k]) * (double(l[k % n]) + shift);
      out[k] = accumulate ? float(double(out[k]) + v) : float(v);
    }
  }
};

struct RowProduct {
  const float *a, *b;
  float* u;
  int64_t total;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t k = i.global(); k < total; k += i.stride()) u[k] = float(double(a[k]) * double(b[k]));
  }
};

// A thread per column: dl[j] += u[0, j], += u[1, j], ... in row order.
struct ColumnSums {
  const float* u;
  float* dl;
  int64_t rows, n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) {
      float acc = dl[j];
      for (int64_t r = 0; r < rows; ++r) acc = acc + u[r * n + j];
      dl[j] = acc;
    }
  }
};

template <class E>
void col_scale(const Tensor& x, const Tensor& l, float shift, const Tensor& out, bool accumulate) {
  const int64_t total = x.numel(), n = l.numel();
  if (total > 0 && n > 0)
    E::grid(hd::grid_blocks(total), hd::kThreads, ColScale{x.f32(), l.f32(), out.f32(), total, n, double(shift), accumulate});
}

template <class E>
void col_scale_backward(const Tensor& a, const Tensor& b, const Tensor& u, TensorOpt dl) {
  const int64_t total = a.numel();
  if (total <= 0) return;
  E::grid(hd::grid_blocks(total), hd::kThreads, RowProduct{a.f32(), b.f32(), u.f32(), total});
  if (dl && dl->numel() > 0) {
    const int64_t n = dl->numel();
    E::grid(hd::grid_blocks(n), hd::kThreads, ColumnSums{u.f32(), dl->f32(), total / n, n});
  }
}

template <class E>
void colscale_kernels(Kernels& k) {
  k.col_scale = col_scale<E>;
  k.col_scale_backward = col_scale_backward<E>;
}

}  // namespace kfac::nnk
