#include "nn_linear.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "threadpool.h"

namespace kfac::cpu {

void linear_forward(const float* x, const float* W, const float* b, float* y, int64_t N, int64_t IN,
                    int64_t OUT, bool conv1d) {
  if (N <= 0 || OUT <= 0) return;
  float beta = 0.f;
  if (b) {
    // Seed every row with the bias, then let the GEMM add x·Wᵀ on top (beta = 1).
    parallel_for(N, std::max<int64_t>(1, 16384 / OUT), [=](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) std::memcpy(y + n * OUT, b, size_t(OUT) * sizeof(float));
    });
    beta = 1.f;
  }
  // [N, OUT] = [N, IN] · W[OUT, IN]ᵀ  or  [N, IN] · W[IN, OUT]
  sgemm(false, !conv1d, N, OUT, IN, 1.f, x, IN, W, conv1d ? OUT : IN, beta, y, OUT);
}

void linear_backward(const float* x, const float* W, const float* dy, float* dx, float* dW, float* db,
                     int64_t N, int64_t IN, int64_t OUT, bool conv1d, bool accumulate_dx) {
  if (dx && N > 0 && IN > 0) {
    // dx[N, IN] = dy[N, OUT] · W[OUT, IN]   or   dy · W[IN, OUT]ᵀ
    sgemm(false, conv1d, N, IN, OUT, 1.f, dy, OUT, W, conv1d ? OUT : IN, accumulate_dx ? 1.f : 0.f, dx,
          IN);
  }
  if (dW && IN > 0 && OUT > 0) {
    if (!conv1d)
      sgemm(true, false, OUT, IN, N, 1.f, dy, OUT, x, IN, 1.f, dW, IN);  // dW[OUT,IN] += dyᵀ·x
    else
      sgemm(true, false, IN, OUT, N, 1.f, x, IN, dy, OUT, 1.f, dW, OUT);  // dW[IN,OUT] += xᵀ·dy
  }
  if (db && OUT > 0) {
    // Column sums; each column is owned by one thread and summed in row order (deterministic).
    parallel_for(OUT, std::max<int64_t>(1, 8192 / std::max<int64_t>(N, 1)), [=](int64_t s, int64_t e) {
      std::vector<double> acc(size_t(e - s), 0.0);
      for (int64_t n = 0; n < N; ++n) {
        const float* r = dy + n * OUT;
        for (int64_t o = s; o < e; ++o) acc[size_t(o - s)] += r[o];
      }
      for (int64_t o = s; o < e; ++o) db[o] += float(acc[size_t(o - s)]);
    });
  }
}

}  // namespace kfac::cpu
