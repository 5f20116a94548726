// Grow-only, 64-byte aligned float scratch owned by one thread (packing buffers of GEMM and
// syrk): no allocation once warm; an allocation failure is an OutOfMemory kfac::Error.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <string>

#if defined(_MSC_VER)
#include <malloc.h>
#endif

#include "../core/error.h"

namespace kfac::cpu {

class AlignedScratch {
 public:
  explicit AlignedScratch(const char* what) : what_(what) {}
  AlignedScratch(const AlignedScratch&) = delete;
  AlignedScratch& operator=(const AlignedScratch&) = delete;
  ~AlignedScratch() { release(); }

  float* reserve(size_t floats) {
    if (floats > cap_) {
      release();
      size_t bytes = (floats * sizeof(float) + 63) & ~size_t(63);
#if defined(_MSC_VER)
      void* p = _aligned_malloc(bytes, 64);
#else
      void* p = std::aligned_alloc(64, bytes);
#endif
      if (!p)
        throw Error(ErrorCode::OutOfMemory, std::string(what_) + ": cannot allocate packing buffers", "", "",
                    std::to_string(bytes) + " bytes");
      data_ = static_cast<float*>(p);
      cap_ = bytes / sizeof(float);
    }
    return data_;
  }

 private:
  void release() {
#if defined(_MSC_VER)
    _aligned_free(data_);
#else
    std::free(data_);
#endif
    data_ = nullptr;
    cap_ = 0;
  }
  const char* what_;
  float* data_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace kfac::cpu
