#include "ops.h"

#include <cmath>

#include "check.h"
#include "dispatch.h"

namespace kfac::ops {

namespace {

struct MatDims {
  int64_t batch, rows, cols;
};

MatDims mat_dims(const Tensor& t) {
  if (t.rank() == 2) return {1, t.dim(0), t.dim(1)};
  return {t.dim(0), t.dim(1), t.dim(2)};
}

// float32, or (matmul operands) bfloat16 like the first operand.
void check_operand(const Tensor& t, const char* name, DType want) {
  check_defined(t, name);
  if (t.dtype() != want) throw_arg(ErrorCode::DType, name, dtype_name(want), dtype_name(t.dtype()));
}

}  // namespace

Shape matmul_shape(const Tensor& a, const Tensor& b, const MatmulOptions& opt) {
  common_device({{&a, "a"}, {&b, "b"}});
  if (a.dtype() != DType::BF16) check_f32(a, "a");
  check_operand(b, "b", a.dtype());
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
  const Device dev = common_device({{&a, "a"}, {&b, "b"}, {out, "out"}});
  check_finite_scalar(opt.alpha, "alpha");
  check_finite_scalar(opt.beta, "beta");
  Tensor c;
  if (out) {
    check_f32(*out, "out");
    check_shape(*out, "out", shape);
    check_no_alias(a, "a", *out, "out");
    check_no_alias(b, "b", *out, "out");
    c = *out;
  } else {
    if (opt.beta != 0.f)
      throw_arg(ErrorCode::InvalidArgument, "beta", "0 when no out tensor is given",
                std::to_string(opt.beta));
    c = Tensor::empty(shape, DType::F32, dev);
  }
  KFAC_DISPATCH(dev, matmul)(a, b, c, opt);
  return c;
}

// float32, or bfloat16 on a device whose kernels store activations so (fill, add, scale
// and axpy serve the bf16 residual stream, the casts at a LoRA branch and zeroed gradient
// buffers; each operand on its own).
static void check_f32_or_act(const Tensor& t, const char* name, Device dev, const char* op) {
  if (t.dtype() == DType::BF16 && backend_registered(dev) && kernels_of(dev).bf16_activations) return;
  if (t.dtype() == DType::BF16)
    throw_arg(ErrorCode::DType, name,
              std::string("float32 (") + op + " takes bfloat16 only on a device whose kernels store activations so: cuda)",
              "bfloat16");
  check_f32(t, name);
}

void fill(const Tensor& x, float value) {
  const Device dev = common_device({{&x, "x"}});
  check_f32_or_act(x, "x", dev, "fill");
  KFAC_DISPATCH(dev, fill)(x, value);
}

// A copy moves bytes, so it takes bfloat16 as well as float32 on every device (bf16 activations
// are saved and restored by it); both tensors of one dtype.
void copy(const Tensor& src, const Tensor& dst) {
  const Device dev = common_device({{&src, "src"}, {&dst, "dst"}});
  if (src.dtype() != DType::BF16) check_f32(src, "src");
  if (dst.dtype() != src.dtype())
    throw_arg(ErrorCode::DType, "dst", std::string(dtype_name(src.dtype())) + " like src", dtype_name(dst.dtype()));
  if (src.numel() != dst.numel()) check_same_shape(src, "src", dst, "dst");
  if (src.raw() != dst.raw()) check_no_alias(src, "src", dst, "dst");
  KFAC_DISPATCH(dev, copy)(src, dst);
  dst.mark_written();
}

void copy_range(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count) {
  const Device dev = common_device({{&src, "src"}, {&dst, "dst"}});
  if (src.dtype() != DType::BF16) check_f32(src, "src");
  if (dst.dtype() != src.dtype())
    throw_arg(ErrorCode::DType, "dst", std::string(dtype_name(src.dtype())) + " like src", dtype_name(dst.dtype()));
  if (count < 0) throw_arg(ErrorCode::InvalidArgument, "count", "a count >= 0", std::to_string(count));
  auto in_range = [&](int64_t off, const Tensor& t, const char* name) {
    if (off < 0 || off > t.numel() - count)
      throw_arg(ErrorCode::InvalidArgument, name,
                "an offset in [0, " + std::to_string(t.numel() - count) + "] for " + std::to_string(count) +
                    " elements of a tensor of " + std::to_string(t.numel()),
                std::to_string(off));
  };
  in_range(src_offset, src, "srcOffset");
  in_range(dst_offset, dst, "dstOffset");
  if (count == 0) return;
  const size_t es = dtype_size(src.dtype());
  const char* a = static_cast<const char*>(src.raw()) + size_t(src_offset) * es;
  const char* b = static_cast<const char*>(dst.raw()) + size_t(dst_offset) * es;
  const size_t n = size_t(count) * es;
  if (a < b + n && b < a + n) throw_arg(ErrorCode::InvalidArgument, "dst", "a range that does not overlap src's", "an overlapping range");
  KFAC_DISPATCH(dev, copy_range)(src, src_offset, dst, dst_offset, count);
  dst.mark_written();
}

Tensor cast(const Tensor& src, DType dtype) {
  const Device dev = common_device({{&src, "tensor"}});
  for (DType d : {src.dtype(), dtype})
    if (d != DType::F32 && d != DType::BF16)
      throw_arg(ErrorCode::DType, "dtype", "float32 or bfloat16", dtype_name(d));
  Tensor out = Tensor::empty(src.shape(), dtype, dev);
  KFAC_DISPATCH(dev, cast)(src, out);
  return out;
}

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  const Device dev = common_device({{&a, "a"}, {&b, "b"}, {&out, "out"}});
  check_f32_or_act(a, "a", dev, "add");
  check_f32_or_act(b, "b", dev, "add");
  check_f32_or_act(out, "out", dev, "add");
  check_same_shape(a, "a", b, "b");
  check_same_shape(a, "a", out, "out");
  KFAC_DISPATCH(dev, add)(a, b, out);
}

void scale(const Tensor& x, float alpha, const Tensor& out) {
  const Device dev = common_device({{&x, "x"}, {&out, "out"}});
  check_f32_or_act(x, "x", dev, "scale");
  check_f32_or_act(out, "out", dev, "scale");
  check_same_shape(x, "x", out, "out");
  KFAC_DISPATCH(dev, scale)(x, alpha, out);
}

void axpy(float alpha, const Tensor& x, const Tensor& y) {
  const Device dev = common_device({{&x, "x"}, {&y, "y"}});
  check_f32_or_act(x, "x", dev, "axpy");
  check_f32_or_act(y, "y", dev, "axpy");
  check_same_shape(x, "x", y, "y");
  KFAC_DISPATCH(dev, axpy)(alpha, x, y);
}

Shape transpose_shape(const Tensor& x) {
  check_f32(x, "x");
  check_rank(x, "x", 2, kMaxRank);
  Shape s = x.shape();
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return s;
}

void transpose(const Tensor& x, const Tensor& out) {
  const Device dev = common_device({{&x, "x"}, {&out, "out"}});
  Shape s = transpose_shape(x);
  check_f32(out, "out");
  check_shape(out, "out", s);
  check_no_alias(x, "x", out, "out");
  KFAC_DISPATCH(dev, transpose)(x, out);
}

double sum(const Tensor& x) {
  const Device dev = common_device({{&x, "x"}});
  check_f32(x, "x");
  return KFAC_DISPATCH(dev, sum)(x);
}

double sum_squares(const Tensor& x) {
  const Device dev = common_device({{&x, "x"}});
  check_f32(x, "x");
  return KFAC_DISPATCH(dev, sum_squares)(x);
}

std::vector<double> sum_squares_many(const std::vector<Tensor>& xs) {
  if (xs.empty()) return {};
  // One device for the list: the first tensor's; any other is named.
  const Device dev = common_device({{&xs[0], "tensors[0]"}});
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string nm = "tensors[" + std::to_string(i) + "]";
    if (i > 0) common_device({{&xs[0], "tensors[0]"}, {&xs[i], nm.c_str()}});
    check_f32(xs[i], nm.c_str());
  }
  return KFAC_DISPATCH(dev, sum_squares_many)(xs);
}

// float32 squares summed in float64 cannot overflow (FLT_MAX² ≈ 1e77 < DBL_MAX).
double norm(const Tensor& x) { return std::sqrt(sum_squares(x)); }

double dot(const Tensor& x, const Tensor& y) {
  const Device dev = common_device({{&x, "x"}, {&y, "y"}});
  check_f32(x, "x");
  check_f32(y, "y");
  check_same_shape(x, "x", y, "y");
  return KFAC_DISPATCH(dev, dot)(x, y);
}

std::vector<double> dot_many(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
  if (xs.size() != ys.size())
    throw_arg(ErrorCode::Shape, "ys", std::to_string(xs.size()) + " tensors (one per xs)", std::to_string(ys.size()));
  if (xs.empty()) return {};
  const Device dev = common_device({{&xs[0], "xs[0]"}});
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string xn = "xs[" + std::to_string(i) + "]", yn = "ys[" + std::to_string(i) + "]";
    common_device({{&xs[0], "xs[0]"}, {&xs[i], xn.c_str()}, {&ys[i], yn.c_str()}});
    check_f32(xs[i], xn.c_str());
    check_f32(ys[i], yn.c_str());
    check_same_shape(xs[i], xn.c_str(), ys[i], yn.c_str());
  }
  return KFAC_DISPATCH(dev, dot_many)(xs, ys);
}

}  // namespace kfac::ops
