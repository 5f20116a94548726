#include "nn_linear_bf16.h"

#include <memory>

#include "../core/derived.h"
#include "bf16.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

// op(W) packed for kernel k, cached with W (native/core/derived.h): a frozen weight is packed
// once per layout, not on every call. nk: op(W) = Wᵀ (the forward), else W (the input gradient).
std::shared_ptr<const HostBlock> weight_panels(const Tensor& W, bool nk, Bf16Kernel k, int64_t N, int64_t K) {
  const int64_t elems = bf16_packed_elems(k, N, K);
  if (elems == 0) return nullptr;
  const Bf16B b{static_cast<const uint16_t*>(W.raw()), W.dim(1), nk};
  const DerivedKey key{uint64_t(0xbf16) << 16 | uint64_t(k) << 1 | uint64_t(nk), uint64_t(N), uint64_t(K)};
  return derived_get(W, key, size_t(elems) * sizeof(uint16_t),
                     [&](void* out) { bf16_pack(k, N, K, b, static_cast<uint16_t*>(out)); });
}

// dst (bf16, from the host allocator) = src rounded.
HostBlock to_bf16(const float* src, int64_t n) {
  HostBlock out(size_t(n) * sizeof(uint16_t));
  convert_f32_to_bf16(src, static_cast<uint16_t*>(out.data()), n);
  return out;
}

}  // namespace

void linear_forward_bf16(const float* x, const Tensor& W, const float* b, float* y, int64_t N, int64_t IN,
                         int64_t OUT) {
  const Bf16Kernel k = bf16_kernel();
  const auto panels = weight_panels(W, true, k, OUT, IN);
  const HostBlock xb = to_bf16(x, N * IN);
  gemm_bf16_packed(k, N, OUT, IN, static_cast<const uint16_t*>(xb.data()), IN,
                   Bf16B{static_cast<const uint16_t*>(W.raw()), IN, true},
                   panels ? static_cast<const uint16_t*>(panels->data()) : nullptr, y, OUT, false);
  if (b)
    parallel_for(N, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t o = 0; o < OUT; ++o) y[r * OUT + o] += b[o];
    });
}

void linear_backward_bf16(const Tensor& W, const float* dy, float* dx, float* db, int64_t N, int64_t IN,
                          int64_t OUT, bool accumulate_dx) {
  if (dx) {
    // dx [N, IN] = dy [N, OUT] · W [OUT, IN]: W read as B [K = OUT, N = IN].
    const Bf16Kernel k = bf16_kernel();
    const auto panels = weight_panels(W, false, k, IN, OUT);
    const HostBlock dyb = to_bf16(dy, N * OUT);
    gemm_bf16_packed(k, N, IN, OUT, static_cast<const uint16_t*>(dyb.data()), OUT,
                     Bf16B{static_cast<const uint16_t*>(W.raw()), IN, false},
                     panels ? static_cast<const uint16_t*>(panels->data()) : nullptr, dx, IN, accumulate_dx);
  }
  if (db)
    for (int64_t r = 0; r < N; ++r)
      for (int64_t o = 0; o < OUT; ++o) db[o] += dy[r * OUT + o];
}

}  // namespace kfac::cpu
