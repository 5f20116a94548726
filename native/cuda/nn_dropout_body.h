// Dropout with the counter-based stream of native/cpu/nn_dropout.h: element i is kept iff the
// top 24 bits of splitmix64(key + i) are ≥ round(p·2²⁴), key = splitmix64(seed ^ constant), so
// every device draws the same mask bit for bit. p = 0 copies, p = 1 zeroes (as the CPU). x and out are stored as T (float, or bf16 on the
// cuda device; the scaled value rounded once).
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

KFAC_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <class T>
struct Dropout {
  const T* x;
  T* out;
  int64_t n;
  uint64_t key, threshold;
  float scale;
  int mode;  // 0 mask, 1 copy (p = 0), 2 zero (p = 1)
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) {
      if (mode == 1) out[j] = x[j];
      else if (mode == 2) hd::st(out, j, 0.f);
      else hd::st(out, j, (splitmix64(key + uint64_t(j)) >> 40) >= threshold ? hd::ld(x, j) * scale : 0.f);
    }
  }
};

template <class E>
void dropout_apply(const Tensor& x, const Tensor& out, float p, uint64_t seed) {
  const int64_t n = x.numel();
  if (n <= 0) return;
  with_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    Dropout<S> d{as<S>(x), as<S>(out), n, splitmix64(seed ^ 0x3C6EF372FE94F82Bull),
                 uint64_t(double(p) * 16777216.0 + 0.5), float(1.0 / (1.0 - double(p))), p <= 0.f ? 1 : p >= 1.f ? 2 : 0};
    if (d.mode == 1 && x.raw() == out.raw()) return;
    E::grid(hd::grid_blocks(n), hd::kThreads, d);
  });
}

template <class E>
void dropout_forward(const Tensor& x, const Tensor& out, float p, uint64_t seed) {
  dropout_apply<E>(x, out, p, seed);
}
template <class E>
void dropout_backward(const Tensor& dout, const Tensor& dx, float p, uint64_t seed) {
  dropout_apply<E>(dout, dx, p, seed);
}

template <class E>
void dropout_kernels(Kernels& k) {
  k.dropout_forward = dropout_forward<E>;
  k.dropout_backward = dropout_backward<E>;
}

}  // namespace kfac::nnk
