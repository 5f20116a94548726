// Linear forward/backward: GEMMs through the executor (cuBLAS SGEMM for float32 weights;
// a bfloat16 weight through a bf16 × bf16 GEMM with float32 accumulation, float32 activations
// rounded to bf16 by a kernel first, as the CPU's bf16 path does), plus the bias broadcast and
// the bias gradient (each thread owns a column and sums the rows in order, in double:
// deterministic). Activations (x, y, dy, dx) may be stored in bfloat16 on the cuda device: an
// operand already in the GEMM's type is read as it is, another is converted into scratch
// (rounded to nearest even, or widened exactly); a bf16 output is the float32 GEMM result with
// the bias (and, accumulating, the old value) added and rounded once — straight from the GEMM
// (E::gemm_bf16_bf16c: cuBLASLt with a bf16 D) when the weight is bf16 and there is no bias. The weight gradient is a
// float32 GEMM of the widened operands.
#pragma once
#include "../core/dispatch.h"
#include "hd.h"
#include "nn_storage.h"

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

struct ToF32 {
  const uint16_t* x;
  float* y;
  int64_t n;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < n; j += i.stride()) y[j] = hd::bf16_to_f32(x[j]);
  }
};

// A float32 GEMM result stored into bfloat16 y: y[r, o] = bf16(acc[r, o] (+ b[o]) (+ y[r, o] when
// accumulating)), one rounding per element.
struct StoreBf16 {
  const float* acc;
  const float* b;  // or null
  hd::bf16* y;
  int64_t rows, cols;
  int accumulate;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t j = i.global(); j < rows * cols; j += i.stride()) {
      float v = acc[j] + (b ? b[j % cols] : 0.f);
      if (accumulate) v += hd::ld(y, j);
      hd::st(y, j, v);
    }
  }
};

// db[o] += Σ_r dy[r, o] with bfloat16 dy (a thread per column, rows in order, double).
struct BiasGradBf16 {
  const hd::bf16* dy;
  float* db;
  int64_t rows, cols;
  KFAC_HD void operator()(const hd::Idx& i) const {
    for (int64_t o = i.global(); o < cols; o += i.stride()) {
      double acc = 0;
      for (int64_t r = 0; r < rows; ++r) acc += hd::ld(dy, r * cols + o);
      db[o] += float(acc);
    }
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

// A GEMM operand of n elements in the type the GEMM takes: t's own data when it is stored so,
// else a converted copy in scratch slot `slot` (bf16 rounded to nearest even, or widened).
template <class E>
const uint16_t* as_bf16(const Tensor& t, int64_t n, int slot) {
  return t.dtype() == DType::BF16 ? static_cast<const uint16_t*>(t.raw()) : bf16_copy<E>(t.f32(), n, slot);
}
template <class E>
const float* as_f32(const Tensor& t, int64_t n, int slot) {
  if (t.dtype() != DType::BF16) return t.f32();
  float* y = static_cast<float*>(E::scratch(slot, size_t(n > 0 ? n : 1) * sizeof(float)));
  if (n > 0) E::grid(hd::grid_blocks(n), hd::kThreads, ToF32{static_cast<const uint16_t*>(t.raw()), y, n});
  return y;
}

// Where a GEMM writes its float32 [rows, cols] result: out itself when float32, else scratch slot
// 3, stored into the bfloat16 out afterwards by finish_out (bias, accumulation, one rounding).
template <class E>
float* gemm_out(const Tensor& out, int64_t n) {
  return out.dtype() == DType::BF16 ? static_cast<float*>(E::scratch(3, size_t(n > 0 ? n : 1) * sizeof(float)))
                                    : out.f32();
}
template <class E>
void finish_out(const Tensor& out, const float* acc, const float* b, int64_t rows, int64_t cols, bool accumulate) {
  if (rows * cols <= 0) return;
  if (out.dtype() == DType::BF16)
    E::grid(hd::grid_blocks(rows * cols), hd::kThreads,
            StoreBf16{acc, b, static_cast<hd::bf16*>(out.raw()), rows, cols, accumulate ? 1 : 0});
  else if (b)
    E::grid(hd::grid_blocks(rows * cols), hd::kThreads, BiasAdd{out.f32(), b, rows, cols});
}

// x and y may be float32 or bfloat16 (bf16 activations, cuda only); W float32 or bfloat16.
template <class E>
void linear_forward(const Tensor& x, const Tensor& W, TensorOpt b, const Tensor& y, bool conv1d) {
  const int64_t N = rows_of(x), IN = x.dim(-1), OUT = y.dim(-1);
  if (N == 0 || OUT == 0) return;
  if (IN > 0 && W.dtype() == DType::BF16 && y.dtype() == DType::BF16 && !b) {  // bf16 straight out of the GEMM
    E::gemm_bf16_bf16c(false, true, N, OUT, IN, 1.f, as_bf16<E>(x, N * IN, 0), IN,
                       static_cast<const uint16_t*>(W.raw()), IN, 0.f, static_cast<uint16_t*>(y.raw()), OUT);
    return;
  }
  float* acc = gemm_out<E>(y, N * OUT);
  if (IN == 0) {  // an empty product: zeros, written here rather than left to a K = 0 GEMM's β handling
    E::grid(hd::grid_blocks(N * OUT), hd::kThreads, Zero{acc, N * OUT});
  } else if (W.dtype() == DType::BF16) {
    const uint16_t* xb = as_bf16<E>(x, N * IN, 0);
    E::gemm_bf16(false, true, N, OUT, IN, 1.f, xb, IN, static_cast<const uint16_t*>(W.raw()), IN, 0.f, acc, OUT);
  } else {
    // [N, OUT] = x[N, IN] · W[OUT, IN]ᵀ, or x · W[IN, OUT] (Conv1D)
    E::sgemm(false, !conv1d, N, OUT, IN, 1.f, as_f32<E>(x, N * IN, 0), IN, W.f32(), conv1d ? OUT : IN, 0.f, acc, OUT);
  }
  finish_out<E>(y, acc, b ? b->f32() : nullptr, N, OUT, false);
}

template <class E>
void linear_backward(const Tensor& x, const Tensor& W, const Tensor& dy, TensorOpt dx, TensorOpt dW, TensorOpt db,
                     bool conv1d, bool accumulate_dx) {
  const int64_t N = rows_of(x), IN = x.dim(-1), OUT = dy.dim(-1);
  if (dx && N > 0 && IN > 0) {
    const bool bf16_dx = dx->dtype() == DType::BF16;
    if (bf16_dx && OUT > 0 && W.dtype() == DType::BF16) {  // dx = bf16(dy·W (+ dx)), one rounding in the GEMM
      E::gemm_bf16_bf16c(false, false, N, IN, OUT, 1.f, as_bf16<E>(dy, N * OUT, 0), OUT,
                         static_cast<const uint16_t*>(W.raw()), IN, accumulate_dx ? 1.f : 0.f,
                         static_cast<uint16_t*>(dx->raw()), IN);
      dx = nullptr;  // done
    }
  }
  if (dx && N > 0 && IN > 0) {
    const bool bf16_dx = dx->dtype() == DType::BF16;
    // β = 1 accumulates in place into a float32 dx; a bf16 dx gets the sum added as it is rounded
    const float beta = accumulate_dx && !bf16_dx ? 1.f : 0.f;
    float* acc = gemm_out<E>(*dx, N * IN);
    if (OUT == 0) {
      if (!accumulate_dx || bf16_dx) E::grid(hd::grid_blocks(N * IN), hd::kThreads, Zero{acc, N * IN});
    } else if (W.dtype() == DType::BF16) {
      // dx[N, IN] = bf16(dy)[N, OUT] · W[OUT, IN]
      const uint16_t* dyb = as_bf16<E>(dy, N * OUT, 0);
      E::gemm_bf16(false, false, N, IN, OUT, 1.f, dyb, OUT, static_cast<const uint16_t*>(W.raw()), IN, beta, acc, IN);
    } else {
      // dx = dy · W[OUT, IN], or dy · W[IN, OUT]ᵀ (Conv1D)
      E::sgemm(false, conv1d, N, IN, OUT, 1.f, as_f32<E>(dy, N * OUT, 0), OUT, W.f32(), conv1d ? OUT : IN, beta, acc,
               IN);
    }
    if (bf16_dx) finish_out<E>(*dx, acc, nullptr, N, IN, accumulate_dx);
  }
  if (dW && IN > 0 && OUT > 0 && N > 0) {  // never for a bf16 weight (core refuses); N = 0 adds nothing
    const float* dyf = as_f32<E>(dy, N * OUT, 1);
    const float* xf = as_f32<E>(x, N * IN, 2);
    if (!conv1d)
      E::sgemm(true, false, OUT, IN, N, 1.f, dyf, OUT, xf, IN, 1.f, dW->f32(), IN);  // += dyᵀ·x
    else
      E::sgemm(true, false, IN, OUT, N, 1.f, xf, IN, dyf, OUT, 1.f, dW->f32(), OUT);  // += xᵀ·dy
  }
  if (db && OUT > 0) {
    if (dy.dtype() == DType::BF16)
      E::grid(hd::grid_blocks(OUT), hd::kThreads, BiasGradBf16{static_cast<const hd::bf16*>(dy.raw()), db->f32(), N, OUT});
    else
      E::grid(hd::grid_blocks(OUT), hd::kThreads, BiasGrad{dy.f32(), db->f32(), N, OUT});
  }
}

template <class E>
void linear_kernels(Kernels& k) {
  k.linear_forward = linear_forward<E>;
  k.linear_backward = linear_backward<E>;
}

}  // namespace kfac::nnk
