// Reading and validating JS arguments. Every reader names the argument in its error.
#pragma once
#include <napi.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace kfac::napi {

// The value, or undefined when absent.
Napi::Value arg(const Napi::CallbackInfo& info, size_t i);

kfac::Tensor get_tensor(Napi::Value v, const char* name);
// Absent, undefined or null → nullptr-like (returns false); a tensor otherwise.
bool get_optional_tensor(Napi::Value v, const char* name, kfac::Tensor& out);
double get_number(Napi::Value v, const char* name);
double get_finite(Napi::Value v, const char* name);
float get_float(Napi::Value v, const char* name);  // finite and within float range
int64_t get_int(Napi::Value v, const char* name, int64_t lo, int64_t hi);
bool get_bool(Napi::Value v, const char* name);
// An options object, or an empty one when absent/undefined.
Napi::Object get_options(Napi::Value v, const char* name);
// A field of an options object, or undefined.
Napi::Value field(Napi::Object o, const char* key);
kfac::Shape get_shape(Napi::Value v, const char* name);
std::string describe(Napi::Value v);
std::string get_string(Napi::Value v, const char* name);
// An array of tensors; element i is named "<name>[i]" in errors.
std::vector<kfac::Tensor> get_tensor_list(Napi::Value v, const char* name);
// The index of the string v among `choices` (undefined → fallback); anything else is an
// InvalidArgument error listing the choices.
int get_choice(Napi::Value v, const char* name, std::initializer_list<const char*> choices, int fallback);
// 'cpu' | 'cuda'; 'float32' | 'bfloat16' (undefined → the fallback).
kfac::Device get_device(Napi::Value v, const char* name, kfac::Device fallback);
kfac::DType get_dtype(Napi::Value v, const char* name, kfac::DType fallback);

// Options-object fields: the fallback when absent (undefined), else read as above.
double opt_number(Napi::Object o, const char* key, double fallback);  // finite
float opt_float(Napi::Object o, const char* key, float fallback);     // finite, float32 range
int64_t opt_int(Napi::Object o, const char* key, int64_t fallback, int64_t lo, int64_t hi);
bool opt_flag(Napi::Object o, const char* key, bool fallback);

Napi::Array number_array(Napi::Env env, const std::vector<double>& v);

}  // namespace kfac::napi
