#include "check.h"

#include <cmath>

#include "../cpu/reduce.h"

namespace kfac {

void check_defined(const Tensor& t, const char* name) {
  if (!t.defined()) throw_arg(ErrorCode::Disposed, name, "a live tensor", "a disposed tensor");
}

void check_f32(const Tensor& t, const char* name) {
  check_defined(t, name);
  if (t.dtype() != DType::F32) throw_arg(ErrorCode::DType, name, "float32", dtype_name(t.dtype()));
}

void check_same_device(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.device() != b.device())
    throw_arg(ErrorCode::Device, bn, std::string("a tensor on ") + device_name(a.device()) +
                                         " like " + an,
              device_name(b.device()));
}

void check_rank(const Tensor& t, const char* name, int lo, int hi) {
  if (t.rank() < lo || t.rank() > hi) {
    std::string want = lo == hi ? std::to_string(lo) + " dimensions"
                                : std::to_string(lo) + " to " + std::to_string(hi) + " dimensions";
    throw_arg(ErrorCode::Shape, name, want, "shape " + shape_str(t.shape()));
  }
}

void check_same_shape(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  if (a.shape() != b.shape())
    throw_arg(ErrorCode::Shape, bn, std::string("shape ") + shape_str(a.shape()) + " like " + an,
              shape_str(b.shape()));
}

void check_shape(const Tensor& t, const char* name, const Shape& want) {
  if (t.shape() != want) throw_arg(ErrorCode::Shape, name, "shape " + shape_str(want), shape_str(t.shape()));
}

void check_finite_scalar(double v, const char* name) {
  if (!std::isfinite(v)) throw_arg(ErrorCode::NotFinite, name, "a finite number", std::to_string(v));
}

void check_finite(const Tensor& t, const char* name) {
  if (t.device() == Device::CPU && !cpu::all_finite(t.f32(), t.numel()))
    throw_arg(ErrorCode::NotFinite, name, "finite values", "NaN or Inf");
}

void check_no_alias(const Tensor& a, const char* an, const Tensor& b, const char* bn) {
  const char* a0 = static_cast<const char*>(a.raw());
  const char* b0 = static_cast<const char*>(b.raw());
  if (a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes())
    throw_arg(ErrorCode::InvalidArgument, bn, std::string("memory separate from ") + an,
              "the same memory");
}

}  // namespace kfac
