#include "nn_linear_bf16.h"

#include <vector>

#include "bf16.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {
// Grow-only conversion buffers of the calling thread (the ops are called from one thread).
std::vector<uint16_t>& scratch(int which, size_t n) {
  thread_local std::vector<uint16_t> bufs[1];
  if (bufs[which].size() < n) bufs[which].resize(n);
  return bufs[which];
}
}  // namespace

void linear_forward_bf16(const float* x, const uint16_t* W, const float* b, float* y, int64_t N, int64_t IN,
                         int64_t OUT) {
  std::vector<uint16_t>& xb = scratch(0, size_t(N * IN));
  convert_f32_to_bf16(x, xb.data(), N * IN);
  gemm_bf16_nt(N, OUT, IN, xb.data(), IN, W, IN, y, OUT, false);
  if (b)
    parallel_for(N, 64, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t o = 0; o < OUT; ++o) y[r * OUT + o] += b[o];
    });
}

void linear_backward_bf16(const uint16_t* W, const float* dy, float* dx, float* db, int64_t N, int64_t IN,
                          int64_t OUT, bool accumulate_dx) {
  if (dx) {
    std::vector<uint16_t>& dyb = scratch(0, size_t(N * OUT));
    convert_f32_to_bf16(dy, dyb.data(), N * OUT);
    gemm_bf16(N, IN, OUT, dyb.data(), OUT, W, IN, /*b_nk=*/false, dx, IN, accumulate_dx);  // W read as [K=OUT, N=IN]
  }
  if (db)
    for (int64_t r = 0; r < N; ++r)
      for (int64_t o = 0; o < OUT; ++o) db[o] += dy[r * OUT + o];
}

}  // namespace kfac::cpu
