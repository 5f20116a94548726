// Loading, scaling and transposing for the eigensolver drivers.
#include "eigh_util.h"

#include <algorithm>
#include <cmath>

#include "../core/error.h"
#include "threadpool.h"

namespace kfac::cpu::eig {

double max_abs_checked(int64_t n, const float* A, const char* arg) {
  float m = 0;
  bool bad = false;
  for (int64_t i = 0; i < n; ++i) {
    float a = std::fabs(A[i]);
    bad |= !(a <= 3.4028235e38f);
    m = a > m ? a : m;
  }
  if (bad) throw_arg(ErrorCode::NotFinite, arg, "finite values", "NaN or Inf");
  return m;
}

template <class T>
void load_symmetric(int64_t n, const float* A, double scale, T* work) {
  const int64_t bs = 32;
  parallel_for((n + bs - 1) / bs, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t jb = b0 * bs; jb < std::min(n, b1 * bs); jb += bs)
      for (int64_t ib = 0; ib < n; ib += bs)
        for (int64_t j = jb; j < std::min(n, jb + bs); ++j)
          for (int64_t i = ib; i < std::min(n, ib + bs); ++i)
            work[i + j * n] = T(0.5 * scale * (double(A[i * n + j]) + double(A[j * n + i])));
  });
}

template void load_symmetric<float>(int64_t, const float*, double, float*);
template void load_symmetric<double>(int64_t, const float*, double, double*);

void transpose_out(int64_t n, const float* Z, float* out) {
  const int64_t bs = 32;
  parallel_for((n + bs - 1) / bs, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t ib = b0 * bs; ib < std::min(n, b1 * bs); ib += bs)
      for (int64_t jb = 0; jb < n; jb += bs)
        for (int64_t i = ib; i < std::min(n, ib + bs); ++i)
          for (int64_t j = jb; j < std::min(n, jb + bs); ++j) out[i * n + j] = Z[i + j * n];
  });
}

}  // namespace kfac::cpu::eig
