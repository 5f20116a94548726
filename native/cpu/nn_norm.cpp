#include "nn_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "threadpool.h"

namespace kfac::cpu {

namespace {
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)); }

// Parameter gradients are computed before dx, so dx may alias dout or x.
// Parameter gradients: each thread owns a range of columns and walks every row in order,
// accumulating in double, so the result does not depend on the thread count.
// Σ_c f(c) over [0, C) in double with eight independent partial sums (lane c mod 8), added
// in a fixed tree: no chain of dependent additions (the row sums run at the adder's
// throughput, not its latency), and the same result for every thread count.
template <class F>
double row_sum(int64_t C, F&& f) {
  double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= C; c += 8)
    for (int j = 0; j < 8; ++j) a[j] += f(c + j);
  for (int j = 0; c < C; ++c, ++j) a[j] += f(c);
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

template <class F>
void column_reduce(int64_t N, int64_t C, F&& per_row) {
  parallel_for(C, std::max<int64_t>(16, 32768 / std::max<int64_t>(N, 1)), [&](int64_t s, int64_t e) {
    std::vector<double> acc0(size_t(e - s), 0.0), acc1(size_t(e - s), 0.0);
    for (int64_t n = 0; n < N; ++n) per_row(n, s, e, acc0.data(), acc1.data());
    per_row(-1, s, e, acc0.data(), acc1.data());  // n = −1: flush
  });
}
}  // namespace

void layernorm_forward(const float* x, const float* w, const float* b, float eps, float* out,
                       float* mean, float* rstd, int64_t N, int64_t C) {
  parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n) {
      const float* xr = x + n * C;
      double m = row_sum(C, [=](int64_t c) { return double(xr[c]); });
      m = C > 0 ? m / double(C) : 0.0;
      double v = row_sum(C, [=](int64_t c) {
        const double d = xr[c] - m;
        return d * d;
      });
      v = C > 0 ? v / double(C) : 0.0;
      float r = float(1.0 / std::sqrt(v + double(eps)));
      float mf = float(m);
      float* o = out + n * C;
      for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - mf) * r * w[c] + (b ? b[c] : 0.f);
      mean[n] = mf;
      rstd[n] = r;
    }
  });
}

void layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                        const float* dout, float* dx, float* dw, float* db, int64_t N, int64_t C) {
  if (dw || db) {
    column_reduce(N, C, [=](int64_t n, int64_t s, int64_t e, double* aw, double* ab) {
      if (n < 0) {
        for (int64_t c = s; c < e; ++c) {
          if (dw) dw[c] += float(aw[c - s]);
          if (db) db[c] += float(ab[c - s]);
        }
        return;
      }
      const float* xr = x + n * C;
      const float* g = dout + n * C;
      float m = mean[n], r = rstd[n];
      for (int64_t c = s; c < e; ++c) {
        aw[c - s] += double(g[c]) * double((xr[c] - m) * r);
        ab[c - s] += g[c];
      }
    });
  }
  if (dx) {
    parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) {
        const float* xr = x + n * C;
        const float* g = dout + n * C;
        float m = mean[n], r = rstd[n];
        // Σ dxhat, Σ dxhat·xhat
        const double sg = row_sum(C, [=](int64_t c) { return double(g[c]) * w[c]; });
        const double sgx = row_sum(C, [=](int64_t c) { return double(g[c]) * w[c] * double((xr[c] - m) * r); });
        float a = float(sg / double(C)), bb = float(sgx / double(C));
        float* d = dx + n * C;
        for (int64_t c = 0; c < C; ++c) {
          float xh = (xr[c] - m) * r;
          d[c] = r * (g[c] * w[c] - a - xh * bb);
        }
      }
    });
  }
}

void rmsnorm_forward(const float* x, const float* w, float eps, float* out, float* rstd, int64_t N,
                     int64_t C) {
  parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
    for (int64_t n = s; n < e; ++n) {
      const float* xr = x + n * C;
      const double ss = row_sum(C, [=](int64_t c) { return double(xr[c]) * xr[c]; });
      double ms = C > 0 ? ss / double(C) : 0.0;
      float r = float(1.0 / std::sqrt(ms + double(eps)));
      float* o = out + n * C;
      for (int64_t c = 0; c < C; ++c) o[c] = xr[c] * r * w[c];
      rstd[n] = r;
    }
  });
}

void rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dout, float* dx,
                      float* dw, int64_t N, int64_t C) {
  if (dw) {
    column_reduce(N, C, [=](int64_t n, int64_t s, int64_t e, double* aw, double*) {
      if (n < 0) {
        for (int64_t c = s; c < e; ++c) dw[c] += float(aw[c - s]);
        return;
      }
      const float* xr = x + n * C;
      const float* g = dout + n * C;
      float r = rstd[n];
      for (int64_t c = s; c < e; ++c) aw[c - s] += double(g[c]) * double(xr[c] * r);
    });
  }
  if (dx) {
    parallel_for(N, row_grain(C), [=](int64_t s, int64_t e) {
      for (int64_t n = s; n < e; ++n) {
        const float* xr = x + n * C;
        const float* g = dout + n * C;
        float r = rstd[n];
        const double sgx = row_sum(C, [=](int64_t c) { return double(g[c]) * w[c] * double(xr[c] * r); });  // Σ dxhat·xhat
        float bb = float(sgx / double(C));
        float* d = dx + n * C;
        for (int64_t c = 0; c < C; ++c) d[c] = r * (g[c] * w[c] - xr[c] * r * bb);
      }
    });
  }
}

}  // namespace kfac::cpu
