// LayerNorm and RMSNorm, forward and backward. A block per row: partial sums per thread (in
// double, like the CPU), a fixed-order shared-memory tree, then each thread writes its own
// columns (so out may alias x and dx may alias dout or x: every element a thread writes was
// read by that thread only). Parameter gradients (dw, db) are a separate kernel launched before
// dx, where each thread owns a column and walks the rows in order, in double: deterministic and
// the CPU's order. x, out, dout and dx are stored as T (float, or bf16 on the cuda device; read
// widened, each output rounded once); w, b, mean, rstd and the sums are float32/double.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

// Threads per row: a power of two in [32, 256], enough for C when C is small.
inline int norm_threads(int64_t C) {
  int t = 32;
  while (t < 256 && t < C) t *= 2;
  return t;
}

// op: 0 layernorm forward, 1 layernorm dx, 2 rmsnorm forward, 3 rmsnorm dx. Row = block.
// Forward with `res`: the fused residual add — phase 0 writes sum = x + res (rounded once, as
// the add op stores it) and every later phase reads the row from sum; each thread reads back
// only the columns it wrote itself, so no barrier is needed between the two.
template <class T>
struct NormRow {
  const T* x;
  const float *w, *b;
  const T* g;                  // dout (backward)
  T* out;                      // y (forward) or dx (backward)
  float *mean, *rstd;          // read in the backward
  int64_t C;
  float eps;
  int op;
  const T* res = nullptr;      // forward: the residual added to x, or null
  T* sum = nullptr;            // forward with res: x + res
  KFAC_HD int phases(int threads) const {
    const int L = hd::log2i(threads);
    return op == 0 ? 2 * L + 3 : L + 2;
  }
  KFAC_HD void phase(int p, const hd::Idx& i, unsigned char* shared) const {
    double* a = reinterpret_cast<double*>(shared);
    double* s = a + i.threads;
    const int L = hd::log2i(i.threads);
    const int64_t row = i.block;
    const T* xr = res ? sum + row * C : x + row * C;
    const T* gr = g ? g + row * C : nullptr;
    T* o = out + row * C;
    if (p == 0) {  // first partial sums
      double acc = 0, acc2 = 0;
      for (int64_t c = i.thread; c < C; c += i.threads) {
        if (res) hd::st(sum + row * C, c, hd::ld(x + row * C, c) + hd::ld(res + row * C, c));
        if (op == 0) {
          acc += hd::ld(xr, c);
        } else if (op == 2) {
          acc += double(hd::ld(xr, c)) * hd::ld(xr, c);
        } else if (op == 1) {
          const float m = mean[row], r = rstd[row];
          const double dh = double(hd::ld(gr, c)) * w[c];
          acc += dh;
          acc2 += dh * double((hd::ld(xr, c) - m) * r);
        } else {
          const float r = rstd[row];
          acc += double(hd::ld(gr, c)) * w[c] * double(hd::ld(xr, c) * r);
        }
      }
      a[i.thread] = acc;
      s[i.thread] = acc2;
      return;
    }
    if (p <= L) {
      hd::tree_step(a, i, p - 1);
      if (op == 1) hd::tree_step(s, i, p - 1);
      return;
    }
    const double n = double(C);
    if (op == 0 && p == L + 1) {  // variance partials about the mean
      const double m = C > 0 ? a[0] / n : 0.0;
      double acc = 0;
      for (int64_t c = i.thread; c < C; c += i.threads) {
        const double d = hd::ld(xr, c) - m;
        acc += d * d;
      }
      s[i.thread] = acc;
      return;
    }
    if (op == 0 && p <= 2 * L + 1) {
      hd::tree_step(s, i, p - L - 2);
      return;
    }
    // the last phase: each thread writes its columns
    if (op == 0) {
      const double m = C > 0 ? a[0] / n : 0.0, v = C > 0 ? s[0] / n : 0.0;
      const float r = float(1.0 / ::sqrt(v + double(eps))), mf = float(m);
      for (int64_t c = i.thread; c < C; c += i.threads) hd::st(o, c, (hd::ld(xr, c) - mf) * r * w[c] + (b ? b[c] : 0.f));
      if (i.thread == 0) {
        mean[row] = mf;
        rstd[row] = r;
      }
    } else if (op == 2) {
      const double ms = C > 0 ? a[0] / n : 0.0;
      const float r = float(1.0 / ::sqrt(ms + double(eps)));
      for (int64_t c = i.thread; c < C; c += i.threads) hd::st(o, c, hd::ld(xr, c) * r * w[c]);
      if (i.thread == 0) rstd[row] = r;
    } else if (op == 1) {
      const float m = mean[row], r = rstd[row];
      const float A = float(a[0] / n), B = float(s[0] / n);
      for (int64_t c = i.thread; c < C; c += i.threads) {
        const float xh = (hd::ld(xr, c) - m) * r;
        hd::st(o, c, r * (hd::ld(gr, c) * w[c] - A - xh * B));
      }
    } else {
      const float r = rstd[row];
      const float B = float(a[0] / n);
      for (int64_t c = i.thread; c < C; c += i.threads) hd::st(o, c, r * (hd::ld(gr, c) * w[c] - hd::ld(xr, c) * r * B));
    }
  }
};

// dw[c] += Σ_n dout·x̂, db[c] += Σ_n dout (a thread per column, rows in order, double).
// x̂ = (x − mean)·rstd (layernorm, mean given) or x·rstd (rmsnorm, mean null).
template <class T>
struct NormParamGrad {
  const T *x, *g;
  const float *mean, *rstd;
  float *dw, *db;
  int64_t N, C;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t c = i.global(); c < C; c += i.stride()) {
      double aw = 0, ab = 0;
      for (int64_t r = 0; r < N; ++r) {
        const float xv = hd::ld(x, r * C + c), gv = hd::ld(g, r * C + c);
        aw += double(gv) * double(mean ? (xv - mean[r]) * rstd[r] : xv * rstd[r]);
        ab += gv;
      }
      if (dw) dw[c] += float(aw);
      if (db) db[c] += float(ab);
    }
  }
};

inline int64_t norm_rows(const Tensor& t) {
  int64_t n = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) n *= t.dim(i);
  return n;
}

template <class E, class S>
void norm_rows_run(const NormRow<S>& f, int64_t N, int64_t C) {
  const int T = norm_threads(C);
  if (N > 0) E::block(N, T, size_t(2 * T) * sizeof(double), f);
}

template <class E>
void layernorm_forward(const Tensor& x, const Tensor& w, TensorOpt b, float eps, const Tensor& out,
                       const Tensor& mean, const Tensor& rstd, TensorOpt residual, TensorOpt sum) {
  const int64_t N = norm_rows(x), C = x.dim(-1);
  with_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    norm_rows_run<E>(NormRow<S>{as<S>(x), w.f32(), b ? b->f32() : nullptr, nullptr, as<S>(out), mean.f32(), rstd.f32(),
                                C, eps, 0, as<S>(residual), as<S>(sum)},
                     N, C);
  });
}

template <class E>
void layernorm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd, const Tensor& dout,
                        TensorOpt dx, TensorOpt dw, TensorOpt db) {
  const int64_t N = norm_rows(x), C = x.dim(-1);
  with_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    if ((dw || db) && C > 0)
      E::grid(hd::grid_blocks(C), hd::kThreads,
              NormParamGrad<S>{as<S>(x), as<S>(dout), mean.f32(), rstd.f32(), dw ? dw->f32() : nullptr,
                               db ? db->f32() : nullptr, N, C});
    if (dx)
      norm_rows_run<E>(
          NormRow<S>{as<S>(x), w.f32(), nullptr, as<S>(dout), as<S>(dx), mean.f32(), rstd.f32(), C, 0.f, 1}, N, C);
  });
}

template <class E>
void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& out, const Tensor& rstd,
                     TensorOpt residual, TensorOpt sum) {
  const int64_t N = norm_rows(x), C = x.dim(-1);
  with_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    norm_rows_run<E>(NormRow<S>{as<S>(x), w.f32(), nullptr, nullptr, as<S>(out), nullptr, rstd.f32(), C, eps, 2,
                                as<S>(residual), as<S>(sum)},
                     N, C);
  });
}

template <class E>
void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dout, TensorOpt dx,
                      TensorOpt dw) {
  const int64_t N = norm_rows(x), C = x.dim(-1);
  with_storage(x.dtype(), [&](auto tag) {
    using S = decltype(tag);
    if (dw && C > 0)
      E::grid(hd::grid_blocks(C), hd::kThreads,
              NormParamGrad<S>{as<S>(x), as<S>(dout), nullptr, rstd.f32(), dw->f32(), nullptr, N, C});
    if (dx)
      norm_rows_run<E>(NormRow<S>{as<S>(x), w.f32(), nullptr, as<S>(dout), as<S>(dx), nullptr, rstd.f32(), C, 0.f, 3},
                       N, C);
  });
}

template <class E>
void norm_kernels(Kernels& k) {
  k.layernorm_forward = layernorm_forward<E>;
  k.layernorm_backward = layernorm_backward<E>;
  k.rmsnorm_forward = rmsnorm_forward<E>;
  k.rmsnorm_backward = rmsnorm_backward<E>;
}

}  // namespace kfac::nnk
