#include "ops_eigh.h"

#include <string>

#include "check.h"

namespace kfac::ops {

namespace {

void check_cpu_f32(const Tensor& t, const char* name) {
  check_f32(t, name);
  if (t.device() != Device::CPU)
    throw_arg(ErrorCode::Device, name, "a device this build supports (cpu)", device_name(t.device()));
}

void check_square(const Tensor& a, const char* name) {
  if (a.dim(-1) != a.dim(-2))
    throw_arg(ErrorCode::Shape, name, "square matrices", "shape " + shape_str(a.shape()));
}

// The given output (checked) or a new tensor of `shape`.
Tensor output(const Tensor* out, const char* name, const Shape& shape) {
  if (!out) return Tensor::empty(shape);
  check_cpu_f32(*out, name);
  check_shape(*out, name, shape);
  return *out;
}

}  // namespace

EighOut eigh(const Tensor& a, const Tensor* values_out, const Tensor* vectors_out,
             const cpu::EighOptions& opt) {
  check_cpu_f32(a, "a");
  check_rank(a, "a", 2, 2);
  check_square(a, "a");
  const int64_t n = a.dim(0);
  EighOut r;
  r.values = output(values_out, "values", {n});
  r.vectors = output(vectors_out, "vectors", {n, n});
  check_no_alias(a, "a", r.values, "values");
  check_no_alias(a, "a", r.vectors, "vectors");
  check_no_alias(r.values, "values", r.vectors, "vectors");
  r.retried_double = cpu::eigh(n, a.f32(), r.values.f32(), r.vectors.f32(), opt).retried_double;
  return r;
}

EighRefreshOut eigh_refresh(const Tensor& a, const Tensor& prev_vectors, const Tensor* prev_values,
                            const Tensor* values_out, const Tensor* vectors_out,
                            const cpu::RefreshOptions& opt) {
  check_cpu_f32(a, "a");
  check_rank(a, "a", 2, 2);
  check_square(a, "a");
  const int64_t n = a.dim(0);
  check_cpu_f32(prev_vectors, "previousVectors");
  check_shape(prev_vectors, "previousVectors", {n, n});
  if (prev_values) {
    check_cpu_f32(*prev_values, "previousValues");
    check_shape(*prev_values, "previousValues", {n});
  }
  if (!(opt.max_residual > 0) || !(opt.max_offdiag > 0))
    throw_arg(ErrorCode::InvalidArgument, "options", "positive maxResidual and maxOffDiagonal",
              "a value <= 0");
  EighRefreshOut r;
  r.values = output(values_out, "values", {n});
  r.vectors = output(vectors_out, "vectors", {n, n});
  check_no_alias(a, "a", r.values, "values");
  check_no_alias(a, "a", r.vectors, "vectors");
  check_no_alias(r.values, "values", r.vectors, "vectors");
  check_no_alias(prev_vectors, "previousVectors", r.values, "values");
  if (r.vectors.raw() != prev_vectors.raw()) check_no_alias(prev_vectors, "previousVectors", r.vectors, "vectors");
  if (prev_values) {
    check_no_alias(*prev_values, "previousValues", r.vectors, "vectors");
  }
  r.report = cpu::eigh_refresh(n, a.f32(), prev_vectors.f32(), prev_values ? prev_values->f32() : nullptr,
                               r.values.f32(), r.vectors.f32(), opt);
  return r;
}

EighBatchedOut eigh_batched(const Tensor& a, const Tensor* values_out, const Tensor* vectors_out,
                            const cpu::EighOptions& opt) {
  check_cpu_f32(a, "a");
  check_rank(a, "a", 3, 3);
  check_square(a, "a");
  const int64_t b = a.dim(0), n = a.dim(1);
  EighBatchedOut r;
  r.values = output(values_out, "values", {b, n});
  r.vectors = output(vectors_out, "vectors", {b, n, n});
  check_no_alias(a, "a", r.values, "values");
  check_no_alias(a, "a", r.vectors, "vectors");
  check_no_alias(r.values, "values", r.vectors, "vectors");
  r.retried = cpu::eigh_batched(b, n, a.f32(), r.values.f32(), r.vectors.f32(), opt);
  return r;
}

}  // namespace kfac::ops
