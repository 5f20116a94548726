// time_slice: a window of time steps, the reverse of kv_cache_write. Prefix tuning joins its
// learned keys/values in front of a layer's own with two kv_cache_writes and splits the joined
// gradient with two time_slices (and picks one layer's keys out of the prefix rows with one).
// dst[b, t, :] = src[b, offset + t, :], HD = H·D elements per time step; a grid-stride copy.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

// S: the storage type (float or hd::bf16); a copy, so bf16 moves its 16 bits.
template <class S>
struct TimeSlice {
  const S* src;
  S* dst;
  int64_t B, T, Tsrc, HD, offset;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < B * T * HD; j += i.stride()) {
      const int64_t r = j / HD, b = r / T, t = r % T;
      dst[j] = src[(b * Tsrc + offset + t) * HD + j % HD];
    }
  }
};

template <class E>
void time_slice(const Tensor& src, const Tensor& dst, int64_t offset) {
  const int64_t B = dst.dim(0), T = dst.dim(1), HD = dst.dim(2) * dst.dim(3);
  if (B * T * HD <= 0) return;
  with_storage(src.dtype(), [&](auto tag) {
    using S = decltype(tag);
    E::grid(hd::grid_blocks(B * T * HD), hd::kThreads, TimeSlice<S>{as<S>(src), as<S>(dst), B, T, src.dim(1), HD, offset});
  });
}

template <class E>
void timeslice_kernels(Kernels& k) {
  k.time_slice = time_slice<E>;
}

}  // namespace kfac::nnk
