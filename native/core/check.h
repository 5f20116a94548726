// Argument checks shared by every op. Each names the argument it rejects.
#pragma once
#include <string>

#include "tensor.h"

namespace kfac {

void check_defined(const Tensor& t, const char* name);
void check_f32(const Tensor& t, const char* name);
void check_same_device(const Tensor& a, const char* an, const Tensor& b, const char* bn);
void check_rank(const Tensor& t, const char* name, int lo, int hi);
void check_same_shape(const Tensor& a, const char* an, const Tensor& b, const char* bn);
void check_shape(const Tensor& t, const char* name, const Shape& want);
void check_finite_scalar(double v, const char* name);
void check_finite(const Tensor& t, const char* name);
// Not the same storage bytes (for ops that cannot work in place).
void check_no_alias(const Tensor& a, const char* an, const Tensor& b, const char* bn);

}  // namespace kfac
