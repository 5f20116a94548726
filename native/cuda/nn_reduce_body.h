// Multi-tensor reductions: sum_squares_many, Σx² of every tensor of a list, and dot_many, Σxy of
// every pair of two lists, in float64, with one upload (the pointers and the chunk table), two
// launches and one download of the sums — the one host synchronisation of a K-FAC step's norms
// (or of adaptive damping's ⟨δ, ∇⟩), whatever the number of tensors.
//
// Launch 1 (block body): one block per chunk of kChunk elements of one tensor; each thread
// sums its strided elements' squares in double, a shared-memory tree folds them in a fixed
// order and thread 0 writes the chunk's partial. Launch 2 (grid body): one thread per tensor
// adds its chunks' partials in chunk order. The result does not depend on scheduling.
#pragma once
#include <cstring>
#include <vector>

#include "../core/dispatch.h"
#include "hd.h"

namespace kfac::nnk {

constexpr int64_t kReduceChunk = 1 << 14;  // elements per block
constexpr int kReduceThreads = 256;

struct ReduceChunk {
  int64_t tensor, begin, end;
};

// Σx² (ys null) or Σxy of each chunk → partial[chunk].
struct ChunkSquares {
  const float* const* xs;
  const float* const* ys;
  const ReduceChunk* chunks;
  double* partial;
  KFAC_HD int phases(int threads) const { return 2 + hd::log2i(threads); }
  KFAC_HD void phase(int p, const hd::Idx& i, unsigned char* shared) const {
    double* sh = reinterpret_cast<double*>(shared);
    const int steps = hd::log2i(i.threads);
    if (p == 0) {
      const ReduceChunk c = chunks[i.block];
      const float* x = xs[c.tensor];
      const float* y = ys ? ys[c.tensor] : x;
      double a = 0.0;
      for (int64_t j = c.begin + i.thread; j < c.end; j += i.threads) a += double(x[j]) * double(y[j]);
      sh[i.thread] = a;
    } else if (p <= steps) {
      hd::tree_step(sh, i, p - 1);
    } else if (i.thread == 0) {
      partial[i.block] = sh[0];
    }
  }
};

// out[t] = Σ partial[first[t] .. first[t + 1]) in chunk order.
struct TensorTotals {
  const int64_t* first;
  const double* partial;
  double* out;
  int64_t count;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t t = i.global(); t < count; t += i.stride()) {
      double s = 0.0;
      for (int64_t k = first[t]; k < first[t + 1]; ++k) s += partial[k];
      out[t] = s;
    }
  }
};

// Where the reduction left its sums on the device: totals[t] for each tensor, and the chunk table
// it made (the tensors' pointers in list order, xs then ys; chunk c covers [begin, end) of tensor
// chunks[c].tensor), for a body that goes on over the same tensors (record_body.h).
struct DeviceSums {
  const double* totals = nullptr;
  const float* const* table = nullptr;
  const ReduceChunk* chunks = nullptr;
  int64_t chunk_count = 0;
};

// Σ xs[t]·ys[t] (ys null: xs[t]²) per tensor t into device memory (scratch slots 0 and 1), not
// downloaded: one upload and two launches (empty tensors, and an empty list, sum to 0).
template <class E>
DeviceSums products_on_device(const std::vector<Tensor>& xs, const std::vector<Tensor>* ys) {
  const int64_t count = int64_t(xs.size());
  // The host-side table: pointers (xs, then ys when given), first chunk of each tensor, chunks
  // (empty tensors have none).
  const size_t lists = ys ? 2 : 1;
  std::vector<const float*> ptrs(static_cast<size_t>(count) * lists, nullptr);
  std::vector<int64_t> first(static_cast<size_t>(count) + 1, 0);
  std::vector<ReduceChunk> chunks;
  for (int64_t t = 0; t < count; ++t) {
    const Tensor& x = xs[size_t(t)];
    ptrs[size_t(t)] = x.numel() > 0 ? x.f32() : nullptr;
    if (ys) ptrs[size_t(count + t)] = x.numel() > 0 ? (*ys)[size_t(t)].f32() : nullptr;
    first[size_t(t)] = int64_t(chunks.size());
    for (int64_t b = 0; b < x.numel(); b += kReduceChunk)
      chunks.push_back({t, b, b + kReduceChunk < x.numel() ? b + kReduceChunk : x.numel()});
  }
  first[size_t(count)] = int64_t(chunks.size());
  // One upload of [ptrs | first | chunks], 8-byte aligned pieces.
  const size_t b_ptrs = ptrs.size() * sizeof(const float*), b_first = first.size() * sizeof(int64_t),
               b_chunks = chunks.size() * sizeof(ReduceChunk);
  std::vector<unsigned char> host(b_ptrs + b_first + b_chunks);
  if (b_ptrs) std::memcpy(host.data(), ptrs.data(), b_ptrs);
  std::memcpy(host.data() + b_ptrs, first.data(), b_first);
  if (b_chunks) std::memcpy(host.data() + b_ptrs + b_first, chunks.data(), b_chunks);
  unsigned char* meta = static_cast<unsigned char*>(E::scratch(0, host.size()));
  E::upload(meta, host.data(), host.size());
  double* work = static_cast<double*>(E::scratch(1, (chunks.size() + size_t(count) + 1) * sizeof(double)));
  double* partial = work;
  double* totals = work + chunks.size();
  const float* const* table = reinterpret_cast<const float* const*>(meta);
  const ReduceChunk* chunk_table = reinterpret_cast<const ReduceChunk*>(meta + b_ptrs + b_first);
  if (!chunks.empty()) {
    const ChunkSquares cs{table, ys ? table + count : nullptr, chunk_table, partial};
    E::block(int64_t(chunks.size()), kReduceThreads, kReduceThreads * sizeof(double), cs);
  }
  if (count > 0) {
    const TensorTotals tt{reinterpret_cast<const int64_t*>(meta + b_ptrs), partial, totals, count};
    E::grid(hd::grid_blocks(count), hd::kThreads, tt);
  }
  return {totals, table, chunk_table, int64_t(chunks.size())};
}

// Σ xs[t]·ys[t] (ys null: xs[t]²) per tensor t, downloaded once for the whole list.
template <class E>
std::vector<double> products_many(const std::vector<Tensor>& xs, const std::vector<Tensor>* ys) {
  std::vector<double> result(xs.size(), 0.0);
  if (xs.empty()) return result;
  const DeviceSums d = products_on_device<E>(xs, ys);
  if (d.chunk_count == 0) return result;
  E::download(result.data(), d.totals, result.size() * sizeof(double));
  return result;
}

template <class E>
std::vector<double> sum_squares_many(const std::vector<Tensor>& xs) {
  return products_many<E>(xs, nullptr);
}

template <class E>
std::vector<double> dot_many(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
  return products_many<E>(xs, &ys);
}

template <class E>
void reduce_kernels(Kernels& k) {
  k.sum_squares_many = sum_squares_many<E>;
  k.dot_many = dot_many<E>;
}

}  // namespace kfac::nnk
