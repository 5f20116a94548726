// The Kronecker model's curvature along a change of one layer's weights (adaptive damping's
// quadratic model, docs/KFAC.md#adaptive-damping):
//   kron_quadratic = ⟨D, G D A⟩ = vec(D)ᵀ (A ⊗ G) vec(D),  D = [δW | δb]
// T1 = D·A and T2 = G·T1 by SGEMM (the bias column by pointer offsets, as the preconditioning
// does), then one thread per row of D sums D_ij·T2_ij in float64 into a row buffer shared by all
// the terms of a call (kron_quadratic_many: adaptive damping's probe over every tracked layer),
// and the host adds each term's rows in order after one download for the whole call
// (kron_quadratic_many_to: one thread adds them on the device into the step record instead). The
// CPU kernel (native/cpu/precondition.cpp) is the reference.
#pragma once
#include <vector>

#include "../core/dispatch.h"
#include "../core/record_math.h"
#include "hd.h"

namespace kfac::nnk {

// rows[i] = Σ_j<din δW[i, j]·T[i, j] + δb[i]·T[i, din] (δb null: no bias column), in float64.
struct RowDots {
  const float *dW, *db, *T;
  double* rows;
  int64_t dout, din, Da;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t r = i.global(); r < dout; r += i.stride()) {
      double s = 0.0;
      for (int64_t j = 0; j < din; ++j) s += double(dW[r * din + j]) * double(T[r * Da + j]);
      if (db) s += double(db[r]) * double(T[r * Da + din]);
      rows[r] = s;
    }
  }
};

// One thread: record[offset + i] = Σ of term i's rows (rows[first[i] .. first[i + 1]), in order).
struct TermSums {
  const double* rows;
  const int64_t* first;
  int64_t count;
  float* record;
  int64_t offset;
  KFAC_HD void operator()(const hd::Idx& i) const {
    if (i.global() != 0) return;
    for (int64_t t = 0; t < count; ++t) {
      double s = 0.0;
      for (int64_t r = first[t]; r < first[t + 1]; ++r) s += rows[r];
      record_math::put(record, offset + t, s);
    }
  }
};

// Every term's rows into device memory (scratch slot 2), rows of term i from offset Σ_{j<i} dout_j;
// returns that memory (null when no term has an element).
template <class E>
double* kron_rows_on_device(const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs,
                            const std::vector<Tensor>& As, const std::vector<Tensor>& Gs) {
  const size_t n = dWs.size();
  // scratch: T1, T2 sized for the largest term (reused in stream order), the rows of every term
  int64_t most = 0, total = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t dout = dWs[i].dim(0), Da = dWs[i].dim(1) + (dbs[i] ? 1 : 0);
    most = dout * Da > most ? dout * Da : most;
    total += dout;
  }
  if (most == 0) return nullptr;
  float* T1 = static_cast<float*>(E::scratch(0, size_t(most) * sizeof(float)));
  float* T2 = static_cast<float*>(E::scratch(1, size_t(most) * sizeof(float)));
  double* rows = static_cast<double*>(E::scratch(2, size_t(total) * sizeof(double)));
  int64_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& dW = dWs[i];
    const TensorOpt db = dbs[i];
    const int64_t dout = dW.dim(0), din = dW.dim(1), Da = din + (db ? 1 : 0);
    if (dout > 0 && Da > 0) {
      const float* A = As[i].f32();
      E::sgemm(false, false, dout, Da, din, 1.f, dW.f32(), din, A, Da, 0.f, T1, Da);  // T1 = [δW|δb] A
      if (db) E::sgemm(false, false, dout, Da, 1, 1.f, db->f32(), 1, A + din * Da, Da, 1.f, T1, Da);
      E::sgemm(false, false, dout, Da, dout, 1.f, Gs[i].f32(), dout, T1, Da, 0.f, T2, Da);  // T2 = G T1
      E::grid(hd::grid_blocks(dout), hd::kThreads, RowDots{dW.f32(), db ? db->f32() : nullptr, T2, rows + off, dout, din, Da});
    }
    off += dout;
  }
  return rows;
}

template <class E>
std::vector<double> kron_quadratic_many(const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs,
                                        const std::vector<Tensor>& As, const std::vector<Tensor>& Gs) {
  const size_t n = dWs.size();
  std::vector<double> q(n, 0.0);
  const double* rows = kron_rows_on_device<E>(dWs, dbs, As, Gs);
  if (!rows) return q;
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += dWs[i].dim(0);
  std::vector<double> host(static_cast<size_t>(total));
  E::download(host.data(), rows, size_t(total) * sizeof(double));
  int64_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t dout = dWs[i].dim(0);
    for (int64_t r = 0; r < dout; ++r) q[i] += host[size_t(off + r)];
    off += dout;
  }
  return q;
}

// The same numbers into the step record: the rows summed per term on the device, nothing downloaded.
template <class E>
void kron_quadratic_many_to(const std::vector<Tensor>& dWs, const std::vector<TensorOpt>& dbs,
                            const std::vector<Tensor>& As, const std::vector<Tensor>& Gs, const Tensor& record,
                            int64_t offset) {
  const size_t n = dWs.size();
  const double* rows = kron_rows_on_device<E>(dWs, dbs, As, Gs);
  std::vector<int64_t> first(n + 1, 0);
  for (size_t i = 0; i < n; ++i) first[i + 1] = first[i] + (rows ? dWs[i].dim(0) : 0);
  int64_t* dev_first = static_cast<int64_t*>(E::scratch(3, first.size() * sizeof(int64_t)));
  E::upload(dev_first, first.data(), first.size() * sizeof(int64_t));
  E::grid(1, 1, TermSums{rows, dev_first, int64_t(n), record.f32(), offset});
}

template <class E>
void quadratic_kernels(Kernels& k) {
  k.kron_quadratic_many = kron_quadratic_many<E>;
  k.kron_quadratic_many_to = kron_quadratic_many_to<E>;
}

}  // namespace kfac::nnk
