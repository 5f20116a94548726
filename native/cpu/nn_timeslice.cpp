#include "nn_timeslice.h"

#include <algorithm>

namespace kfac {

void time_slice(const Tensor& src, const Tensor& dst, int64_t offset) {
  const int64_t B = dst.dim(0), T = dst.dim(1), Tsrc = src.dim(1), HD = dst.dim(2) * dst.dim(3);
  const float* s = src.f32();
  float* d = dst.f32();
  for (int64_t b = 0; b < B; ++b)
    std::copy(s + (b * Tsrc + offset) * HD, s + (b * Tsrc + offset + T) * HD, d + b * T * HD);
}

}  // namespace kfac
