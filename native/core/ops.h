// The tensor basics of the op list (native/core/dispatch.h): each checks its arguments
// (dtype, device, shape, disposed state) once and dispatches to the kernel of its tensors'
// device. Activation-style outputs are overwritten; see each op.
#pragma once
#include <vector>
#include "tensor.h"

namespace kfac::ops {

struct MatmulOptions {
  bool transA = false;
  bool transB = false;
  float alpha = 1.f;
  float beta = 0.f;
  bool tf32 = false;  // cuda: TF32 tensor cores for float32 inputs (the CPU computes in float32)
};

// out = alpha·op(a)·op(b) + beta·out (out float32; a and b float32, or both bfloat16 on
// cuda, accumulated in float32). a: [M,K] or [B,M,K]; b: [K,N] or [B,K,N]
// (2-D operands broadcast over the batch). out, when given, must have the result
// shape; otherwise a new tensor is returned (beta must then be 0).
Tensor matmul(const Tensor& a, const Tensor& b, const Tensor* out, const MatmulOptions& opt);
// The shape matmul would return.
Shape matmul_shape(const Tensor& a, const Tensor& b, const MatmulOptions& opt);

void fill(const Tensor& x, float value);
// dst = src
void copy(const Tensor& src, const Tensor& dst);
// dst[dst_offset .. dst_offset + count) = src[src_offset .. src_offset + count), in elements of
// one dtype (float32 or bfloat16); both ranges inside their tensors; src and dst may be one
// tensor when the ranges do not overlap. Stacking and unstacking of same-shaped tensors (the
// small K-FAC factors' batched decomposition) without a host round trip.
void copy_range(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count);
// A new tensor with src's values in `dtype` (float32 ↔ bfloat16, round to nearest even;
// a copy when src already has that dtype; float16 is a DType error).
Tensor cast(const Tensor& src, DType dtype);
// out = a + b
void add(const Tensor& a, const Tensor& b, const Tensor& out);
// out = alpha·x
void scale(const Tensor& x, float alpha, const Tensor& out);
// y += alpha·x
void axpy(float alpha, const Tensor& x, const Tensor& y);
// Swaps the last two dimensions: [..., R, C] -> [..., C, R]. out must not alias x.
void transpose(const Tensor& x, const Tensor& out);
Shape transpose_shape(const Tensor& x);

double sum(const Tensor& x);
double sum_squares(const Tensor& x);
// Σx² of every tensor of a list (float32, one device, any shapes) in float64: on a device one
// download for the whole list. Equal, tensor by tensor, to sum_squares.
std::vector<double> sum_squares_many(const std::vector<Tensor>& xs);
double norm(const Tensor& x);
double dot(const Tensor& x, const Tensor& y);
// ⟨xs[i], ys[i]⟩ for every pair, in float64 (all on one device; each pair of one shape): on a
// device one reduction and one download for the whole list.
std::vector<double> dot_many(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys);

}  // namespace kfac::ops
