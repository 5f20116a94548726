// Embedding gather/scatter and the KV-cache write: row copies. The token ids arrive as a host
// array (core checked their range) and are uploaded to scratch. The gradient is deterministic:
// each thread owns a column c of dW and walks the ids in order n = 0, 1, …, so every element
// receives its contributions in the CPU's order (bit-identical sums). The gathered rows (out) and
// their gradient (dout) are stored as T (float, or bf16 on the cuda device); W and dW are float32.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

template <class T>
struct EmbeddingGather {
  const int32_t* ids;
  const float* W;
  T* out;
  int64_t n, C;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n * C; j += i.stride()) hd::st(out, j, W[int64_t(ids[j / C]) * C + j % C]);
  }
};

template <class T>
struct EmbeddingScatter {
  const int32_t* ids;
  const T* dout;
  float* dW;
  int64_t n, C;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t c = i.global(); c < C; c += i.stride())
      for (int64_t r = 0; r < n; ++r) dW[int64_t(ids[r]) * C + c] += hd::ld(dout, r * C + c);
  }
};

// cache[b, offset + t, :] = src[b, t, :] with HD = Hkv·D elements per time step.
// S: the storage type (float or hd::bf16); the write is a copy, so bf16 moves its 16 bits.
template <class S>
struct KvCacheWrite {
  const S* src;
  S* cache;
  int64_t B, T, Tcap, HD, offset;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < B * T * HD; j += i.stride()) {
      const int64_t r = j / HD, b = r / T, t = r % T;
      cache[(b * Tcap + offset + t) * HD + j % HD] = src[j];
    }
  }
};

template <class E>
const int32_t* upload_ids(const int32_t* ids, int64_t n) {
  int32_t* d = static_cast<int32_t*>(E::scratch(1, size_t(n > 0 ? n : 1) * sizeof(int32_t)));
  E::upload(d, ids, size_t(n) * sizeof(int32_t));
  return d;
}

template <class E>
void embedding_forward(const int32_t* ids, int64_t n, const Tensor& W, const Tensor& out) {
  const int64_t C = W.dim(1);
  if (n <= 0 || C <= 0) return;
  const int32_t* d = upload_ids<E>(ids, n);
  with_storage(out.dtype(), [&](auto tag) {
    using S = decltype(tag);
    E::grid(hd::grid_blocks(n * C), hd::kThreads, EmbeddingGather<S>{d, W.f32(), as<S>(out), n, C});
  });
}

template <class E>
void embedding_backward(const int32_t* ids, int64_t n, const Tensor& dout, const Tensor& dW) {
  const int64_t C = dW.dim(1);
  if (n <= 0 || C <= 0) return;
  const int32_t* d = upload_ids<E>(ids, n);
  with_storage(dout.dtype(), [&](auto tag) {
    using S = decltype(tag);
    E::grid(hd::grid_blocks(C), hd::kThreads, EmbeddingScatter<S>{d, as<S>(dout), dW.f32(), n, C});
  });
}

template <class E>
void kv_cache_write(const Tensor& src, const Tensor& cache, int64_t offset) {
  const int64_t B = src.dim(0), T = src.dim(1), HD = src.dim(2) * src.dim(3);
  if (B * T * HD <= 0) return;
  with_storage(src.dtype(), [&](auto tag) {
    using S = decltype(tag);
    E::grid(hd::grid_blocks(B * T * HD), hd::kThreads, KvCacheWrite<S>{as<S>(src), as<S>(cache), B, T, cache.dim(1), HD, offset});
  });
}

template <class E>
void embedding_kernels(Kernels& k) {
  k.embedding_forward = embedding_forward<E>;
  k.embedding_backward = embedding_backward<E>;
  k.kv_cache_write = kv_cache_write<E>;
}

}  // namespace kfac::nnk
