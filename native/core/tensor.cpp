#include "tensor.h"

#include "derived.h"
#include "host_allocator.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace kfac {

void throw_arg(ErrorCode code, const std::string& argument, const std::string& expected,
               const std::string& got) {
  throw Error(code, argument + ": expected " + expected + ", got " + got, argument, expected, got);
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  if (s.size() > size_t(kMaxRank))
    throw_arg(ErrorCode::Shape, "shape", "at most " + std::to_string(kMaxRank) + " dimensions",
              std::to_string(s.size()));
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw_arg(ErrorCode::Shape, "shape", "non-negative dimensions", shape_str(s));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw_arg(ErrorCode::OutOfMemory, "shape", "a size that fits in memory", shape_str(s));
    n *= d;
  }
  return n;
}

namespace {
DeviceAllocator g_cuda_allocator;
}

void set_device_allocator(Device device, const DeviceAllocator& allocator) {
  if (device == Device::CUDA) g_cuda_allocator = allocator;
}

const DeviceAllocator& device_allocator(Device device) {
  if (device != Device::CUDA || !g_cuda_allocator.alloc)
    throw Error(ErrorCode::Device, std::string("device '") + device_name(device) + "' is not available in this build",
                "device", "cpu", device_name(device));
  return g_cuda_allocator;
}

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device != Device::CPU) {
    const DeviceAllocator& a = device_allocator(device);
    if (bytes > kMaxTensorBytes)
      throw_arg(ErrorCode::OutOfMemory, "size", "at most 16 GiB per tensor", std::to_string(bytes) + " bytes");
    ptr_ = a.alloc(bytes == 0 ? 256 : bytes);
    return;
  }
  if (bytes > kMaxTensorBytes)
    throw_arg(ErrorCode::OutOfMemory, "size", "at most 16 GiB per tensor",
              std::to_string(bytes) + " bytes");
  ptr_ = host_alloc(bytes);  // 64-byte aligned, from the caching allocator
}

Storage::~Storage() {
  if (has_derived.load(std::memory_order_acquire)) derived_forget(this);
  if (device_ == Device::CPU) host_free(ptr_, bytes_);
  else if (ptr_ && g_cuda_allocator.release) g_cuda_allocator.release(ptr_);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  uint64_t bytes = uint64_t(t.numel_) * dtype_size(dtype);
  if (t.numel_ != 0 && bytes / uint64_t(t.numel_) != dtype_size(dtype))
    throw_arg(ErrorCode::OutOfMemory, "shape", "a size that fits in memory", shape_str(shape));
  t.storage_ = std::make_shared<Storage>(size_t(bytes), device);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device == Device::CPU) std::memset(t.raw(), 0, t.nbytes());
  else g_cuda_allocator.zero(t.raw(), t.nbytes());
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  int64_t n = shape_numel(shape);
  if (n != numel_)
    throw_arg(ErrorCode::Shape, "shape", std::to_string(numel_) + " elements",
              shape_str(shape) + " (" + std::to_string(n) + " elements)");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

TensorView TensorView::of(const Tensor& t) {
  TensorView v;
  v.data = t.raw();
  v.shape = t.shape();
  v.strides.assign(v.shape.size(), 1);
  for (int i = int(v.shape.size()) - 2; i >= 0; --i)
    v.strides[size_t(i)] = v.strides[size_t(i) + 1] * v.shape[size_t(i) + 1];
  v.dtype = t.dtype();
  v.device = t.device();
  return v;
}

}  // namespace kfac
