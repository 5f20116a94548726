// Element types and devices. Only F32 storage is implemented today; F16/BF16 are
// reserved so that tensors, bindings and checks already carry the information.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kfac {

enum class DType : uint8_t { F32 = 0, F16 = 1, BF16 = 2 };
enum class Device : uint8_t { CPU = 0, CUDA = 1 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F16: return "float16";
    case DType::BF16: return "bfloat16";
  }
  return "unknown";
}

inline const char* device_name(Device d) {
  switch (d) {
    case Device::CPU: return "cpu";
    case Device::CUDA: return "cuda";
  }
  return "unknown";
}

}  // namespace kfac
