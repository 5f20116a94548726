#include "ops_eigh.h"

#include <string>

#include "check.h"
#include "dispatch.h"

namespace kfac::ops {

namespace {


void check_square(const Tensor& a, const char* name) {
  if (a.dim(-1) != a.dim(-2))
    throw_arg(ErrorCode::Shape, name, "square matrices", "shape " + shape_str(a.shape()));
}

// The given output (checked) or a new tensor of `shape`.
Tensor output(const Tensor* out, const char* name, const Shape& shape, Device dev) {
  if (!out) return Tensor::empty(shape, DType::F32, dev);
  check_f32(*out, name);
  check_shape(*out, name, shape);
  return *out;
}

}  // namespace

EighOut eigh(const Tensor& a, const Tensor* values_out, const Tensor* vectors_out,
             const cpu::EighOptions& opt) {
  const Device dev = common_device({{&a, "a"}, {values_out, "values"}, {vectors_out, "vectors"}});
  check_f32(a, "a");
  check_rank(a, "a", 2, 2);
  check_square(a, "a");
  const int64_t n = a.dim(0);
  EighOut r;
  r.values = output(values_out, "values", {n}, dev);
  r.vectors = output(vectors_out, "vectors", {n, n}, dev);
  check_no_alias(a, "a", r.values, "values");
  check_no_alias(a, "a", r.vectors, "vectors");
  check_no_alias(r.values, "values", r.vectors, "vectors");
  r.retried_double = KFAC_DISPATCH(dev, eigh)(a, r.values, r.vectors, opt);
  return r;
}

EighRefreshOut eigh_refresh(const Tensor& a, const Tensor& prev_vectors, const Tensor* prev_values,
                            const Tensor* values_out, const Tensor* vectors_out,
                            const cpu::RefreshOptions& opt) {
  const Device dev = common_device({{&a, "a"}, {&prev_vectors, "previousVectors"}, {prev_values, "previousValues"},
                                    {values_out, "values"}, {vectors_out, "vectors"}});
  check_f32(a, "a");
  check_rank(a, "a", 2, 2);
  check_square(a, "a");
  const int64_t n = a.dim(0);
  check_f32(prev_vectors, "previousVectors");
  check_shape(prev_vectors, "previousVectors", {n, n});
  if (prev_values) {
    check_f32(*prev_values, "previousValues");
    check_shape(*prev_values, "previousValues", {n});
  }
  if (!(opt.max_residual > 0) || !(opt.max_offdiag > 0))
    throw_arg(ErrorCode::InvalidArgument, "options", "positive maxResidual and maxOffDiagonal",
              "a value <= 0");
  EighRefreshOut r;
  r.values = output(values_out, "values", {n}, dev);
  r.vectors = output(vectors_out, "vectors", {n, n}, dev);
  check_no_alias(a, "a", r.values, "values");
  check_no_alias(a, "a", r.vectors, "vectors");
  check_no_alias(r.values, "values", r.vectors, "vectors");
  check_no_alias(prev_vectors, "previousVectors", r.values, "values");
  if (r.vectors.raw() != prev_vectors.raw()) check_no_alias(prev_vectors, "previousVectors", r.vectors, "vectors");
  if (prev_values) {
    check_no_alias(*prev_values, "previousValues", r.vectors, "vectors");
  }
  r.report = KFAC_DISPATCH(dev, eigh_refresh)(a, prev_vectors, prev_values, r.values, r.vectors, opt);
  return r;
}

EighBatchedOut eigh_batched(const Tensor& a, const Tensor* values_out, const Tensor* vectors_out,
                            const cpu::EighOptions& opt) {
  const Device dev = common_device({{&a, "a"}, {values_out, "values"}, {vectors_out, "vectors"}});
  check_f32(a, "a");
  check_rank(a, "a", 3, 3);
  check_square(a, "a");
  const int64_t b = a.dim(0), n = a.dim(1);
  EighBatchedOut r;
  r.values = output(values_out, "values", {b, n}, dev);
  r.vectors = output(vectors_out, "vectors", {b, n, n}, dev);
  check_no_alias(a, "a", r.values, "values");
  check_no_alias(a, "a", r.vectors, "vectors");
  check_no_alias(r.values, "values", r.vectors, "vectors");
  r.retried = KFAC_DISPATCH(dev, eigh_batched)(a, r.values, r.vectors, opt);
  return r;
}

void eigh_batched_to(const Tensor& a, const Tensor& values, const Tensor& vectors, const cpu::EighOptions& opt,
                     const Tensor& record, int64_t slot) {
  const Device dev = common_device({{&a, "a"}, {&values, "values"}, {&vectors, "vectors"}, {&record, "record"}});
  check_f32(a, "a");
  check_rank(a, "a", 3, 3);
  check_square(a, "a");
  const int64_t b = a.dim(0), n = a.dim(1);
  check_f32(values, "values");
  check_shape(values, "values", {b, n});
  check_f32(vectors, "vectors");
  check_shape(vectors, "vectors", {b, n, n});
  check_f32(record, "record");
  if (slot < 0 || 2 * (slot + 1) > record.numel())
    throw_arg(ErrorCode::InvalidArgument, "slot", "a value slot inside the record", std::to_string(slot));
  const std::pair<const Tensor*, const char*> ts[] = {{&a, "a"}, {&values, "values"}, {&vectors, "vectors"}, {&record, "record"}};
  for (size_t i = 0; i < 4; ++i)
    for (size_t j = i + 1; j < 4; ++j) check_no_alias(*ts[i].first, ts[i].second, *ts[j].first, ts[j].second);
  KFAC_DISPATCH(dev, eigh_batched_to)(a, values, vectors, opt, record, slot);
}

}  // namespace kfac::ops
