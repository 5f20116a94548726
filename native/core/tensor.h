// Owning tensors (shared storage, row-major, contiguous) and non-owning views.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"
#include "error.h"

namespace kfac {

using Shape = std::vector<int64_t>;

constexpr int kMaxRank = 8;
// Refuse single tensors above this many bytes before trying to allocate (a typed
// error beats an OOM kill). 16 GiB is far above any factor or activation we use.
constexpr uint64_t kMaxTensorBytes = uint64_t(16) << 30;

std::string shape_str(const Shape& s);
// Number of elements; throws Shape / OutOfMemory on negative dims or overflow.
int64_t shape_numel(const Shape& s);

// Memory of a non-CPU device comes from functions that its backend registers when the
// addon starts (the CUDA build registers cudaMalloc/cudaFree/cudaMemcpy; tests may register
// the CPU loopback); the core links no device runtime. alloc throws kfac::Error (an
// OutOfMemory error naming the bytes asked and free); release never throws.
struct DeviceAllocator {
  void* (*alloc)(size_t bytes) = nullptr;
  void (*release)(void* ptr) = nullptr;
  void (*zero)(void* ptr, size_t bytes) = nullptr;
  void (*upload)(void* dst, const void* host_src, size_t bytes) = nullptr;    // host → device
  void (*download)(void* host_dst, const void* src, size_t bytes) = nullptr;  // device → host
  void (*copy)(void* dst, const void* src, size_t bytes) = nullptr;           // device → device
  void (*synchronize)() = nullptr;
  bool (*available)() = nullptr;  // a device answers (null: always)
};
void set_device_allocator(Device device, const DeviceAllocator& allocator);
// The registered memory functions of a non-CPU device; Device error when none is registered.
const DeviceAllocator& device_allocator(Device device);

// Memory owned by one device. Aligned to 64 bytes on the CPU.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  // Bumped by every write into an existing tensor that can hold a frozen weight (host copies
  // into it); data derived from the contents (native/core/derived.h) records the version it saw.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void bump_version() { version_.fetch_add(1, std::memory_order_acq_rel); }
  // Set once data derived from this storage is cached; its destructor then drops that data.
  std::atomic<bool> has_derived{false};

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  std::atomic<uint64_t> version_{0};
};

class Tensor {
 public:
  Tensor() = default;
  // Allocates uninitialised storage.
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return int(shape_.size()); }
  int64_t dim(int i) const { return shape_[size_t(i < 0 ? i + rank() : i)]; }
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t nbytes() const { return size_t(numel_) * dtype_size(dtype_); }

  void* raw() const { return static_cast<char*>(storage_->data()) + offset_bytes_; }
  float* f32() const { return static_cast<float*>(raw()); }

  // Same storage, new shape with the same number of elements.
  Tensor reshape(const Shape& shape) const;

  Storage* storage() const { return storage_.get(); }
  size_t offset_bytes() const { return offset_bytes_; }
  // Records a write into this tensor's memory (see Storage::version).
  void mark_written() const {
    if (storage_) storage_->bump_version();
  }

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

// A non-owning view for kernels: pointer, shape and row-major strides (in elements).
struct TensorView {
  void* data = nullptr;
  Shape shape;
  Shape strides;
  DType dtype = DType::F32;
  Device device = Device::CPU;

  static TensorView of(const Tensor& t);
  float* f32() const { return static_cast<float*>(data); }
};

}  // namespace kfac
