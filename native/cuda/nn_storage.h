// The adapters' side of activation storage (native/cuda/hd.h has the bodies' side): a tensor's
// data as T* (float or hd::bf16), the call of a body's instantiation for a storage dtype, and the
// body that rounds float32 operands into bf16 for a bf16 GEMM.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"

namespace kfac::nnk {

template <class T>
T* as(const Tensor& t) {
  return static_cast<T*>(t.raw());
}
template <class T>
T* as(TensorOpt t) {
  return t ? static_cast<T*>(t->raw()) : nullptr;
}

// f(T{}) with T the storage type of dtype d: hd::bf16 for bfloat16, float otherwise (core has
// checked that the op's activations are float32 or, on a device that stores them, bfloat16).
template <class F>
void with_storage(DType d, F&& f) {
  if (d == DType::BF16) f(hd::bf16{});
  else f(float{});
}

// y[j] ← x[j] rounded to bf16 (round to nearest even, as every bf16 store), j < n: the operand
// rounding before a bf16 GEMM.
struct ToBf16 {
  const float* x;
  uint16_t* y;
  int64_t n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) y[j] = hd::f32_to_bf16(x[j]);
  }
};

}  // namespace kfac::nnk
