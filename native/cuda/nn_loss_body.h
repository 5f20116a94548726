// Softmax cross-entropy with an ignore index. A block per row: the row maximum (shared tree),
// Σ exp(z − max) in double (tree), the row's loss mean-free in double into a device array, and
// dlogits = dscale/count·(softmax − onehot) (0 on ignored rows; may alias logits: the target
// logit is read into shared memory before any element is written, and each thread rewrites only
// its own columns). The rows' losses are summed on the host in row order after one download
// (the one synchronisation) — or, with loss_to, by one device thread in the same order into a
// float64 in two floats, with no download; count is known on the host from the targets. Logits
// and dlogits are stored as T (float, or bf16 on the cuda device); the softmax, its sums and the
// loss are float32/double. With bf16 storage the exponentials are not parked in dlogits between
// phases (that would round them twice): the last phase recomputes exp(z − max) from the logits
// it reads (its own columns, so in place stays safe) and rounds the gradient once.
#pragma once
#include <cmath>
#include <vector>

#include "../core/dispatch.h"
#include "../core/record_math.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

template <class T>
struct CrossEntropyRow {
  static constexpr bool kPark = sizeof(T) == sizeof(float);  // exp parked in d (float32 only)
  const T* z;
  const int32_t* targets;
  T* d;              // dlogits or null
  double* row_loss;  // [N]
  int64_t V;
  int32_t ignore;
  float g;  // dscale / count
  KFAC_HD int phases(int threads) const { return 2 * hd::log2i(threads) + 3; }
  KFAC_HD void phase(int p, const hd::Idx& i, unsigned char* shared) const {
    double* sum = reinterpret_cast<double*>(shared);
    float* mx = reinterpret_cast<float*>(sum + i.threads);
    float* zt = mx + i.threads;  // one float: the target logit
    const int L = hd::log2i(i.threads);
    const int64_t row = i.block;
    const int32_t t = targets[row];
    const T* zr = z + row * V;
    T* dr = d ? d + row * V : nullptr;
    if (t == ignore) {  // the whole block takes this branch in every phase
      if (p == 0) {
        if (dr)
          for (int64_t v = i.thread; v < V; v += i.threads) hd::st(dr, v, 0.f);
        if (i.thread == 0) row_loss[row] = 0.0;
      }
      return;
    }
    if (p == 0) {
      float m = -INFINITY;
      for (int64_t v = i.thread; v < V; v += i.threads) {
        const float zv = hd::ld(zr, v);
        m = zv > m ? zv : m;
      }
      mx[i.thread] = m;
      if (i.thread == 0) zt[0] = hd::ld(zr, t);
      return;
    }
    if (p <= L) {  // max tree (NaN-free inputs are checked after, through the loss)
      const int half = i.threads >> p;
      if (i.thread < half && mx[i.thread + half] > mx[i.thread]) mx[i.thread] = mx[i.thread + half];
      return;
    }
    const float m = mx[0];
    if (p == L + 1) {  // exp(z − max), summed in double; written to d when asked
      double acc = 0;
      for (int64_t v = i.thread; v < V; v += i.threads) {
        const float e = hd::expf_(hd::ld(zr, v) - m);
        if (dr && kPark) hd::st(dr, v, e);
        acc += e;
      }
      sum[i.thread] = acc;
      return;
    }
    if (p <= 2 * L + 1) {
      hd::tree_step(sum, i, p - L - 2);
      return;
    }
    const double se = sum[0];
    if (i.thread == 0) row_loss[row] = double(m) + hd::log_(se) - double(zt[0]);
    if (dr) {
      const float inv = float(double(g) / se);
      for (int64_t v = i.thread; v < V; v += i.threads) {
        if constexpr (kPark) {  // float32: the code as it always was (two float roundings, the CPU's)
          dr[v] *= inv;
          if (v == t) dr[v] -= g;
        } else {
          const float e = hd::expf_(hd::ld(zr, v) - m) * inv;
          hd::st(dr, v, v == t ? e - g : e);
        }
      }
    }
  }
};

// One thread: the rows' losses summed in row order (the host's order) and divided by count, into
// the two floats of out (record_math.h) — the loss without a download.
struct PutMeanLoss {
  const double* row_loss;
  int64_t n, count;
  float* out;
  KFAC_HD void operator()(const hd::Idx& i) const {
    if (i.global() != 0) return;
    double total = 0;
    for (int64_t r = 0; r < n; ++r) total += row_loss[r];
    record_math::put(out, 0, count > 0 ? total / double(count) : 0.0);
  }
};

template <class E>
nn::CrossEntropyResult cross_entropy(const Tensor& logits, const int32_t* targets, int64_t n, TensorOpt dlogits,
                                     int32_t ignore_index, float dscale, TensorOpt loss_to) {
  const int64_t V = logits.dim(-1);
  int64_t count = 0;
  for (int64_t r = 0; r < n; ++r) count += targets[r] != ignore_index;
  if (n <= 0) {
    if (loss_to) E::grid(1, 1, PutMeanLoss{nullptr, 0, 0, loss_to->f32()});
    return {0.0, 0};
  }
  const float g = count > 0 ? float(double(dscale) / double(count)) : 0.f;
  int32_t* t = static_cast<int32_t*>(E::scratch(1, size_t(n) * sizeof(int32_t)));
  E::upload(t, targets, size_t(n) * sizeof(int32_t));
  double* rl = static_cast<double*>(E::scratch(2, size_t(n) * sizeof(double)));
  const int T = 256;
  with_storage(logits.dtype(), [&](auto tag) {
    using S = decltype(tag);
    E::block(n, T, size_t(T) * (sizeof(double) + sizeof(float)) + 16,
             CrossEntropyRow<S>{as<S>(logits), t, as<S>(dlogits), rl, V, ignore_index, g});
  });
  if (loss_to) {
    E::grid(1, 1, PutMeanLoss{rl, n, count, loss_to->f32()});
    return {std::nan(""), count};
  }
  std::vector<double> host(static_cast<size_t>(n));
  E::download(host.data(), rl, size_t(n) * sizeof(double));
  double total = 0;
  for (double v : host) total += v;
  return {count > 0 ? total / double(count) : 0.0, count};
}

template <class E>
void loss_kernels(Kernels& k) {
  k.cross_entropy = cross_entropy<E>;
}

}  // namespace kfac::nnk
