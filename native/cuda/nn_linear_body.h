// Linear forward/backward: GEMMs through the executor (cuBLAS SGEMM for float32 weights;
// a bfloat16 weight through cublasGemmEx with bf16 inputs and float32 accumulation, the
// activations rounded to bf16 by a kernel first, as the CPU's bf16 path does), plus the bias
// broadcast and the bias gradient (each thread owns a column and sums the rows in order, in
// double: deterministic).
#pragma once
#include "../core/dispatch.h"
#include "hd.h"

namespace kfac::nnk {

// y[r, o] += b[o] over rows × cols.
struct BiasAdd {
  float* y;
  const float* b;
  int64_t rows, cols;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < rows * cols; j += i.stride()) y[j] += b[j % cols];
  }
};

// db[o] += Σ_r dy[r, o] (a thread per column, rows in order).
struct BiasGrad {
  const float* dy;
  float* db;
  int64_t rows, cols;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t o = i.global(); o < cols; o += i.stride()) {
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += dy[r * cols + o];
      db[o] += float(acc);
    }
  }
};

struct Zero {
  float* y;
  int64_t n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) y[j] = 0.f;
  }
};

struct ToBf16 {
  const float* x;
  uint16_t* y;
  int64_t n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) y[j] = hd::f32_to_bf16(x[j]);
  }
};

inline int64_t rows_of(const Tensor& t) {
  int64_t n = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) n *= t.dim(i);
  return n;
}

// x rounded to bfloat16 in scratch slot `slot`.
template <class E>
const uint16_t* bf16_copy(const float* x, int64_t n, int slot) {
  uint16_t* y = static_cast<uint16_t*>(E::scratch(slot, size_t(n > 0 ? n : 1) * sizeof(uint16_t)));
  if (n > 0) E::grid(hd::grid_blocks(n), hd::kThreads, ToBf16{x, y, n});
  return y;
}

template <class E>
void linear_forward(const Tensor& x, const Tensor& W, TensorOpt b, const Tensor& y, bool conv1d) {
  const int64_t N = rows_of(x), IN = x.dim(-1), OUT = y.dim(-1);
  if (N == 0 || OUT == 0) return;
  if (IN == 0) {  // an empty product: zeros, written here rather than left to a K = 0 GEMM's β handling
    E::grid(hd::grid_blocks(N * OUT), hd::kThreads, Zero{y.f32(), N * OUT});
  } else if (W.dtype() == DType::BF16) {
    const uint16_t* xb = bf16_copy<E>(x.f32(), N * IN, 0);
    E::gemm_bf16(false, true, N, OUT, IN, 1.f, xb, IN, static_cast<const uint16_t*>(W.raw()), IN, 0.f, y.f32(), OUT);
  } else {
    // [N, OUT] = x[N, IN] · W[OUT, IN]ᵀ, or x · W[IN, OUT] (Conv1D)
    E::sgemm(false, !conv1d, N, OUT, IN, 1.f, x.f32(), IN, W.f32(), conv1d ? OUT : IN, 0.f, y.f32(), OUT);
  }
  if (b) E::grid(hd::grid_blocks(N * OUT), hd::kThreads, BiasAdd{y.f32(), b->f32(), N, OUT});
}

template <class E>
void linear_backward(const Tensor& x, const Tensor& W, const Tensor& dy, TensorOpt dx, TensorOpt dW, TensorOpt db,
                     bool conv1d, bool accumulate_dx) {
  const int64_t N = rows_of(x), IN = x.dim(-1), OUT = dy.dim(-1);
  const float beta = accumulate_dx ? 1.f : 0.f;
  if (dx && N > 0 && IN > 0) {
    if (OUT == 0) {
      if (!accumulate_dx) E::grid(hd::grid_blocks(N * IN), hd::kThreads, Zero{dx->f32(), N * IN});
    } else if (W.dtype() == DType::BF16) {
      // dx[N, IN] = bf16(dy)[N, OUT] · W[OUT, IN]
      const uint16_t* dyb = bf16_copy<E>(dy.f32(), N * OUT, 0);
      E::gemm_bf16(false, false, N, IN, OUT, 1.f, dyb, OUT, static_cast<const uint16_t*>(W.raw()), IN, beta,
                   dx->f32(), IN);
    } else {
      // dx = dy · W[OUT, IN], or dy · W[IN, OUT]ᵀ (Conv1D)
      E::sgemm(false, conv1d, N, IN, OUT, 1.f, dy.f32(), OUT, W.f32(), conv1d ? OUT : IN, beta, dx->f32(), IN);
    }
  }
  if (dW && IN > 0 && OUT > 0 && N > 0) {  // never for a bf16 weight (core refuses); N = 0 adds nothing
    if (!conv1d)
      E::sgemm(true, false, OUT, IN, N, 1.f, dy.f32(), OUT, x.f32(), IN, 1.f, dW->f32(), IN);  // += dyᵀ·x
    else
      E::sgemm(true, false, IN, OUT, N, 1.f, x.f32(), IN, dy.f32(), OUT, 1.f, dW->f32(), OUT);  // += xᵀ·dy
  }
  if (db && OUT > 0) E::grid(hd::grid_blocks(OUT), hd::kThreads, BiasGrad{dy.f32(), db->f32(), N, OUT});
}

template <class E>
void linear_kernels(Kernels& k) {
  k.linear_forward = linear_forward<E>;
  k.linear_backward = linear_backward<E>;
}

}  // namespace kfac::nnk
