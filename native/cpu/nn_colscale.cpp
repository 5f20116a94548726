#include "nn_colscale.h"

namespace kfac {

void col_scale(const Tensor& x, const Tensor& l, float shift, const Tensor& out, bool accumulate) {
  const float *xp = x.f32(), *lp = l.f32();
  float* o = out.f32();
  const int64_t total = x.numel(), n = l.numel();
  if (total <= 0 || n <= 0) return;
  const double s = shift;
  for (int64_t r = 0; r < total / n; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = r * n + j;
      const double v = double(xp[k]) * (double(lp[j]) + s);
      o[k] = accumulate ? float(double(o[k]) + v) : float(v);
    }
}

void col_scale_backward(const Tensor& a, const Tensor& b, const Tensor& u, const Tensor* dl) {
  const float *ap = a.f32(), *bp = b.f32();
  float* up = u.f32();
  const int64_t total = a.numel();
  for (int64_t k = 0; k < total; ++k) up[k] = float(double(ap[k]) * double(bp[k]));
  if (!dl || dl->numel() <= 0 || total <= 0) return;
  float* d = dl->f32();
  const int64_t n = dl->numel();
  for (int64_t r = 0; r < total / n; ++r)
    for (int64_t j = 0; j < n; ++j) d[j] = d[j] + up[r * n + j];
}

}  // namespace kfac
