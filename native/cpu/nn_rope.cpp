#include "nn_rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "threadpool.h"

namespace kfac::cpu {

namespace {

void rope_apply(const float* x, float* out, int64_t B, int64_t T, int64_t H, int64_t D, int64_t offset,
                double base, RopeKind kind, float sign) {
  const int64_t half = D / 2;
  if (B <= 0 || T <= 0 || H <= 0 || half <= 0) return;
  // cos/sin table [T, D/2] for this call.
  std::vector<float> cs(size_t(T * half)), sn(size_t(T * half));
  parallel_for(T, std::max<int64_t>(1, 4096 / half), [&](int64_t s, int64_t e) {
    for (int64_t t = s; t < e; ++t)
      for (int64_t i = 0; i < half; ++i) {
        double theta = std::pow(base, -2.0 * double(i) / double(D));
        double a = double(offset + t) * theta;
        cs[size_t(t * half + i)] = float(std::cos(a));
        sn[size_t(t * half + i)] = sign * float(std::sin(a));
      }
  });
  const float* C = cs.data();
  const float* S = sn.data();
  const int64_t rows = B * T * H;
  parallel_for(rows, std::max<int64_t>(1, 8192 / D), [=](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const int64_t t = (r / H) % T;
      const float* c = C + t * half;
      const float* sv = S + t * half;
      const float* xr = x + r * D;
      float* o = out + r * D;
      if (kind == RopeKind::Half) {
        for (int64_t i = 0; i < half; ++i) {
          float x1 = xr[i], x2 = xr[i + half];
          o[i] = x1 * c[i] - x2 * sv[i];
          o[i + half] = x1 * sv[i] + x2 * c[i];
        }
      } else {
        for (int64_t i = 0; i < half; ++i) {
          float x1 = xr[2 * i], x2 = xr[2 * i + 1];
          o[2 * i] = x1 * c[i] - x2 * sv[i];
          o[2 * i + 1] = x1 * sv[i] + x2 * c[i];
        }
      }
    }
  });
}

}  // namespace

void rope_forward(const float* x, float* out, int64_t B, int64_t T, int64_t H, int64_t D, int64_t offset,
                  double base, RopeKind kind) {
  rope_apply(x, out, B, T, H, D, offset, base, kind, 1.f);
}

void rope_backward(const float* dout, float* dx, int64_t B, int64_t T, int64_t H, int64_t D,
                   int64_t offset, double base, RopeKind kind) {
  rope_apply(dout, dx, B, T, H, D, offset, base, kind, -1.f);
}

}  // namespace kfac::cpu
