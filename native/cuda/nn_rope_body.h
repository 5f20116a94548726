// Rotary position embedding on x [B, T, H, D]: rotate-half (HF) pairs (i, i + D/2) or
// interleaved (Meta) pairs (2i, 2i + 1). The cos/sin table [T, D/2] is computed on the device
// in double, exactly as the CPU computes its table (θ_i = base^(−2i/D), angle (offset + t)·θ_i,
// then rounded to float), so both rotate by the same float32 numbers. x and out are stored as T
// (float, or bf16 on the cuda device), the rotation computed in float32. The backward is the
// rotation by −angle. Each thread owns whole pairs: in place is safe.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

struct RopeTable {
  float *cs, *sn;
  int64_t T, half, D, offset;
  double base;
  float sign;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < T * half; j += i.stride()) {
      const int64_t t = j / half, k = j % half;
      const double theta = ::pow(base, -2.0 * double(k) / double(D));
      const double a = double(offset + t) * theta;
      cs[j] = float(::cos(a));
      sn[j] = sign * float(::sin(a));
    }
  }
};

template <class S>
struct RopeApply {
  const S* x;
  S* out;
  const float *cs, *sn;
  int64_t rows, T, H, half;
  int kind;  // 0 rotate-half, 1 interleaved
  KFAC_HD void operator()(const hd::Idx& i) const {
    const int64_t D = 2 * half;
    for (int64_t j = i.global(); j < rows * half; j += i.stride()) {
      const int64_t r = j / half, k = j % half, t = (r / H) % T;
      const float c = cs[t * half + k], s = sn[t * half + k];
      const int64_t a = r * D + (kind == 0 ? k : 2 * k), b = a + (kind == 0 ? half : 1);
      const float x1 = hd::ld(x, a), x2 = hd::ld(x, b);
      hd::st(out, a, x1 * c - x2 * s);
      hd::st(out, b, x1 * s + x2 * c);
    }
  }
};

template <class E>
void rope_apply(const Tensor& x, const Tensor& out, int64_t offset, double base, int kind, float sign) {
  const int64_t B = x.dim(0), T = x.dim(1), H = x.dim(2), D = x.dim(3), half = D / 2;
  if (B <= 0 || T <= 0 || H <= 0 || half <= 0) return;
  float* cs = static_cast<float*>(E::scratch(2, size_t(2 * T * half) * sizeof(float)));
  float* sn = cs + T * half;
  E::grid(hd::grid_blocks(T * half), hd::kThreads, RopeTable{cs, sn, T, half, D, offset, base, sign});
  const int64_t rows = B * T * H;
  with_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    E::grid(hd::grid_blocks(rows * half), hd::kThreads, RopeApply<S>{as<S>(x), as<S>(out), cs, sn, rows, T, H, half, kind});
  });
}

template <class E>
void rope_forward(const Tensor& x, const Tensor& out, int64_t offset, double base, int kind) {
  rope_apply<E>(x, out, offset, base, kind, 1.f);
}
template <class E>
void rope_backward(const Tensor& dout, const Tensor& dx, int64_t offset, double base, int kind) {
  rope_apply<E>(dout, dx, offset, base, kind, -1.f);
}

template <class E>
void rope_kernels(Kernels& k) {
  k.rope_forward = rope_forward<E>;
  k.rope_backward = rope_backward<E>;
}

}  // namespace kfac::nnk
