// The adapters' side of activation storage (native/cuda/hd.h has the bodies' side): a tensor's
// data as T* (float or hd::bf16), and the call of a body's instantiation for a storage dtype.
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

}  // namespace kfac::nnk
