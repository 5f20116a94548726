#include "nn_outact.h"

#include <cmath>

namespace kfac {

void act_out_forward(const Tensor& x, const Tensor& out, int kind) {
  const float* a = x.f32();
  float* o = out.f32();
  const int64_t n = x.numel();
  if (kind == 0)
    for (int64_t i = 0; i < n; ++i) o[i] = float(std::tanh(double(a[i])));
  else
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] > 0.f ? a[i] : (a[i] != a[i] ? a[i] : 0.f);
}

void act_out_backward(const Tensor& y, const Tensor& dout, const Tensor& dx, int kind) {
  const float *a = y.f32(), *d = dout.f32();
  float* o = dx.f32();
  const int64_t n = y.numel();
  if (kind == 0)
    for (int64_t i = 0; i < n; ++i) o[i] = float(double(d[i]) * (1.0 - double(a[i]) * double(a[i])));
  else
    for (int64_t i = 0; i < n; ++i) o[i] = a[i] > 0.f ? d[i] : 0.f;
}

}  // namespace kfac
