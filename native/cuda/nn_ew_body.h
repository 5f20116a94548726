// fill, add, scale and axpy (tensor ops of the list) when an operand is stored in bfloat16 (bf16
// activations on the cuda device: the residual stream, the LoRA branch's casts at its input and
// output, zeroed gradient buffers). Each operand is float32 or bf16 on its own: out = a + b, out = alpha·a (a widening or
// rounding copy when alpha = 1), y = y + alpha·x, computed in float32 and rounded once when
// stored. Calls whose operands are all float32 keep the kernels the table had before this family
// (elementwise.cu on the device, the CPU kernels in the emulation): their results are unchanged.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

// op 0: out = a + b; 1: out = alpha·a; 2: out = b + alpha·a (b and out the same tensor: axpy).
template <class TA, class TB, class TO>
struct Elementwise {
  const TA* a;
  const TB* b;
  TO* out;
  int64_t n;
  float alpha;
  int op;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) {
      const float x = hd::ld(a, j);
      if (op == 0) hd::st(out, j, x + hd::ld(b, j));
      else if (op == 1) hd::st(out, j, alpha * x);
      else hd::st(out, j, hd::ld(b, j) + alpha * x);
    }
  }
};

// x[j] = value rounded once to T.
template <class T>
struct Fill {
  T* x;
  int64_t n;
  float value;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) hd::st(x, j, value);
  }
};

template <class E>
void ew_run(const Tensor& a, const Tensor* b, const Tensor& out, float alpha, int op) {
  const int64_t n = a.numel();
  if (n <= 0) return;
  const Tensor& bb = b ? *b : a;
  with_storage(a.dtype(), [&](auto ta) {
    with_storage(bb.dtype(), [&](auto tb) {
      with_storage(out.dtype(), [&](auto to) {
        using A = decltype(ta);
        using B = decltype(tb);
        using O = decltype(to);
        E::grid(hd::grid_blocks(n), hd::kThreads, Elementwise<A, B, O>{as<A>(a), as<B>(bb), as<O>(out), n, alpha, op});
      });
    });
  });
}

// The float32 kernels of the table before this family filled it.
template <class E>
struct EwPrevious {
  static inline void (*add)(const Tensor&, const Tensor&, const Tensor&) = nullptr;
  static inline void (*scale)(const Tensor&, float, const Tensor&) = nullptr;
  static inline void (*axpy)(float, const Tensor&, const Tensor&) = nullptr;
  static inline void (*fill)(const Tensor&, float) = nullptr;
};

inline bool all_f32(std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    if (t->dtype() != DType::F32) return false;
  return true;
}

template <class E>
void ew_add(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (all_f32({&a, &b, &out}) && EwPrevious<E>::add) return EwPrevious<E>::add(a, b, out);
  ew_run<E>(a, &b, out, 1.f, 0);
}
template <class E>
void ew_scale(const Tensor& x, float alpha, const Tensor& out) {
  if (all_f32({&x, &out}) && EwPrevious<E>::scale) return EwPrevious<E>::scale(x, alpha, out);
  ew_run<E>(x, nullptr, out, alpha, 1);
}
template <class E>
void ew_axpy(float alpha, const Tensor& x, const Tensor& y) {
  if (all_f32({&x, &y}) && EwPrevious<E>::axpy) return EwPrevious<E>::axpy(alpha, x, y);
  ew_run<E>(x, &y, y, alpha, 2);
}

template <class E>
void ew_fill(const Tensor& x, float value) {
  if (all_f32({&x}) && EwPrevious<E>::fill) return EwPrevious<E>::fill(x, value);
  const int64_t n = x.numel();
  if (n > 0) E::grid(hd::grid_blocks(n), hd::kThreads, Fill<hd::bf16>{as<hd::bf16>(x), n, value});
}

template <class E>
void ew_kernels(Kernels& k) {
  EwPrevious<E>::add = k.add;
  EwPrevious<E>::scale = k.scale;
  EwPrevious<E>::axpy = k.axpy;
  EwPrevious<E>::fill = k.fill;
  k.add = ew_add<E>;
  k.scale = ew_scale<E>;
  k.axpy = ew_axpy<E>;
  k.fill = ew_fill<E>;
}

}  // namespace kfac::nnk
