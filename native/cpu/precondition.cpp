// Fused K-FAC preconditioning: a handful of sgemm calls on one reused scratch area.
// Optimised even when the build passes no -O flag (binding.gyp's cflags! strips them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "precondition.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

// Per-thread scratch for the intermediate [dout×Da] products (grows, never shrinks).
float* scratch(int which, size_t n) {
  thread_local std::vector<float> buf[2];
  std::vector<float>& b = buf[which];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// T[dout×Da] = [∇W | ∇b] · B[Da×Da]   (B row-major, all Da columns)
void right_multiply(const float* gW, const float* gb, int64_t dout, int64_t din, const float* B,
                    int64_t Da, float* T) {
  sgemm(false, false, dout, Da, din, 1.f, gW, din, B, Da, 0.f, T, Da);
  if (gb) sgemm(false, false, dout, Da, 1, 1.f, gb, 1, B + din * Da, Da, 1.f, T, Da);
}

double trace(const float* M, int64_t n) {
  double t = 0.0;
  for (int64_t i = 0; i < n; ++i) t += double(M[i * n + i]);
  return t;
}

}  // namespace

void precondition_eigen(const float* gW, const float* gb, int64_t dout, int64_t din,
                        const float* QA, const float* dA, const float* QG, const float* dG,
                        float lambda, float* PW, float* Pb) {
  const int64_t Da = din + (gb ? 1 : 0);
  if (dout <= 0 || Da <= 0) return;
  float* T1 = scratch(0, size_t(dout * Da));
  float* T2 = scratch(1, size_t(dout * Da));
  right_multiply(gW, gb, dout, din, QA, Da, T1);                     // T1 = [∇W|∇b] Q_A
  sgemm(true, false, dout, Da, dout, 1.f, QG, dout, T1, Da, 0.f, T2, Da);  // T2 = Q_Gᵀ T1
  parallel_for(dout, std::max<int64_t>(1, 4096 / Da), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float g = std::max(dG[i], 0.f);
      float* t = T2 + i * Da;
      for (int64_t j = 0; j < Da; ++j) {
        float den = g * std::max(dA[j], 0.f) + lambda;
        t[j] = den > 0.f ? t[j] / den : 0.f;
      }
    }
  });
  sgemm(false, false, dout, Da, dout, 1.f, QG, dout, T2, Da, 0.f, T1, Da);  // T1 = Q_G T2
  // [P_W | P_b] = T1 Q_Aᵀ, written straight into the two outputs.
  sgemm(false, true, dout, din, Da, 1.f, T1, Da, QA, Da, 0.f, PW, din);
  if (gb) sgemm(false, true, dout, 1, Da, 1.f, T1, Da, QA + din * Da, Da, 0.f, Pb, 1);
}

void precondition_inverse(const float* gW, const float* gb, int64_t dout, int64_t din,
                          const float* Ainv, const float* Ginv, float* PW, float* Pb) {
  const int64_t Da = din + (gb ? 1 : 0);
  if (dout <= 0 || Da <= 0) return;
  float* T1 = scratch(0, size_t(dout * Da));
  right_multiply(gW, gb, dout, din, Ainv, Da, T1);  // T1 = [∇W|∇b] Ainv
  sgemm(false, false, dout, din, dout, 1.f, Ginv, dout, T1, Da, 0.f, PW, din);
  if (gb) sgemm(false, false, dout, 1, dout, 1.f, Ginv, dout, T1 + din, Da, 0.f, Pb, 1);
}

PiDamping pi_damping(const float* A, int64_t Da, const float* G, int64_t dout, float lambda) {
  PiDamping p;
  double ta = trace(A, Da) / double(Da), tg = trace(G, dout) / double(dout);
  double pi = (ta > 0.0 && tg > 0.0) ? std::sqrt(ta / tg) : 1.0;
  if (!std::isfinite(pi) || pi <= 0.0) pi = 1.0;
  double s = std::sqrt(double(lambda));
  p.pi = pi;
  p.damp_A = pi * s;
  p.damp_G = s / pi;
  return p;
}

}  // namespace kfac::cpu
