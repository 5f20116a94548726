#include "ops.h"

#include "../cpu/elementwise.h"
#include "../cpu/gemm.h"
#include "../cpu/reduce.h"
#include "check.h"

namespace kfac::ops {

namespace {

void check_cpu(const Tensor& t, const char* name) {
  if (t.device() != Device::CPU)
    throw_arg(ErrorCode::Device, name, "a device this build supports (cpu)", device_name(t.device()));
}

void check_input(const Tensor& t, const char* name) {
  check_f32(t, name);
  check_cpu(t, name);
}

struct MatDims {
  int64_t batch, rows, cols;
};

MatDims mat_dims(const Tensor& t) {
  if (t.rank() == 2) return {1, t.dim(0), t.dim(1)};
  return {t.dim(0), t.dim(1), t.dim(2)};
}

}  // namespace

Shape matmul_shape(const Tensor& a, const Tensor& b, const MatmulOptions& opt) {
  check_input(a, "a");
  check_input(b, "b");
  check_rank(a, "a", 2, 3);
  check_rank(b, "b", 2, 3);
  MatDims da = mat_dims(a), db = mat_dims(b);
  int64_t M = opt.transA ? da.cols : da.rows, Ka = opt.transA ? da.rows : da.cols;
  int64_t Kb = opt.transB ? db.cols : db.rows, N = opt.transB ? db.rows : db.cols;
  if (Ka != Kb)
    throw_arg(ErrorCode::Shape, "b",
              "an inner dimension of " + std::to_string(Ka) + " to match a" +
                  (opt.transA ? "ᵀ " : " ") + shape_str(a.shape()),
              shape_str(b.shape()) + (opt.transB ? " (transposed)" : ""));
  if (a.rank() == 3 && b.rank() == 3 && da.batch != db.batch)
    throw_arg(ErrorCode::Shape, "b", "batch " + std::to_string(da.batch) + " like a",
              std::to_string(db.batch));
  if (a.rank() == 3 || b.rank() == 3) return {a.rank() == 3 ? da.batch : db.batch, M, N};
  return {M, N};
}

Tensor matmul(const Tensor& a, const Tensor& b, const Tensor* out, const MatmulOptions& opt) {
  Shape shape = matmul_shape(a, b, opt);
  check_finite_scalar(opt.alpha, "alpha");
  check_finite_scalar(opt.beta, "beta");
  Tensor c;
  if (out) {
    check_input(*out, "out");
    check_shape(*out, "out", shape);
    check_no_alias(a, "a", *out, "out");
    check_no_alias(b, "b", *out, "out");
    c = *out;
  } else {
    if (opt.beta != 0.f)
      throw_arg(ErrorCode::InvalidArgument, "beta", "0 when no out tensor is given",
                std::to_string(opt.beta));
    c = Tensor::empty(shape);
  }
  MatDims da = mat_dims(a), db = mat_dims(b);
  int64_t batch = shape.size() == 3 ? shape[0] : 1;
  int64_t M = shape[shape.size() - 2], N = shape[shape.size() - 1];
  int64_t K = opt.transA ? da.rows : da.cols;
  int64_t lda = da.cols, ldb = db.cols;
  int64_t sa = a.rank() == 3 ? da.rows * da.cols : 0;
  int64_t sb = b.rank() == 3 ? db.rows * db.cols : 0;
  cpu::sgemm_strided_batched(batch, opt.transA, opt.transB, M, N, K, opt.alpha, a.f32(), lda, sa,
                             b.f32(), ldb, sb, opt.beta, c.f32(), N, M * N);
  return c;
}

void fill(const Tensor& x, float value) {
  check_input(x, "x");
  cpu::fill(x.f32(), x.numel(), value);
}

void copy(const Tensor& src, const Tensor& dst) {
  check_input(src, "src");
  check_input(dst, "dst");
  if (src.numel() != dst.numel()) check_same_shape(src, "src", dst, "dst");
  cpu::copy(src.f32(), dst.f32(), src.numel());
}

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  check_input(a, "a");
  check_input(b, "b");
  check_input(out, "out");
  check_same_shape(a, "a", b, "b");
  check_same_shape(a, "a", out, "out");
  cpu::add(a.f32(), b.f32(), out.f32(), a.numel());
}

void scale(const Tensor& x, float alpha, const Tensor& out) {
  check_input(x, "x");
  check_input(out, "out");
  check_same_shape(x, "x", out, "out");
  cpu::scale(x.f32(), alpha, out.f32(), x.numel());
}

void axpy(float alpha, const Tensor& x, const Tensor& y) {
  check_input(x, "x");
  check_input(y, "y");
  check_same_shape(x, "x", y, "y");
  cpu::axpy(alpha, x.f32(), y.f32(), x.numel());
}

Shape transpose_shape(const Tensor& x) {
  check_input(x, "x");
  check_rank(x, "x", 2, kMaxRank);
  Shape s = x.shape();
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return s;
}

void transpose(const Tensor& x, const Tensor& out) {
  Shape s = transpose_shape(x);
  check_input(out, "out");
  check_shape(out, "out", s);
  check_no_alias(x, "x", out, "out");
  int64_t rows = x.dim(-2), cols = x.dim(-1);
  int64_t batch = (rows != 0 && cols != 0) ? x.numel() / (rows * cols) : 0;
  cpu::transpose(x.f32(), out.f32(), batch, rows, cols);
}

double sum(const Tensor& x) {
  check_input(x, "x");
  return cpu::sum(x.f32(), x.numel());
}

double sum_squares(const Tensor& x) {
  check_input(x, "x");
  return cpu::sum_squares(x.f32(), x.numel());
}

double norm(const Tensor& x) {
  check_input(x, "x");
  return cpu::norm2(x.f32(), x.numel());
}

double dot(const Tensor& x, const Tensor& y) {
  check_input(x, "x");
  check_input(y, "y");
  check_same_shape(x, "x", y, "y");
  return cpu::dot(x.f32(), y.f32(), x.numel());
}

}  // namespace kfac::ops
