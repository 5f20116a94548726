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

namespace {

// P = Q_G [(Q_Gᵀ [∇W|∇b] Q_A) ⊘ den] Q_Aᵀ, den(i, j) given by `den` (0 where it is not positive).
template <class Den>
void eigenbasis_step(const float* gW, const float* gb, int64_t dout, int64_t din, const float* QA,
                     const float* QG, const Den& den, float* PW, float* Pb) {
  const int64_t Da = din + (gb ? 1 : 0);
  if (dout <= 0 || Da <= 0) return;
  float* T1 = scratch(0, size_t(dout * Da));
  float* T2 = scratch(1, size_t(dout * Da));
  right_multiply(gW, gb, dout, din, QA, Da, T1);                           // T1 = [∇W|∇b] Q_A
  sgemm(true, false, dout, Da, dout, 1.f, QG, dout, T1, Da, 0.f, T2, Da);  // T2 = Q_Gᵀ T1
  parallel_for(dout, std::max<int64_t>(1, 4096 / Da), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* t = T2 + i * Da;
      for (int64_t j = 0; j < Da; ++j) {
        const float d = den(i, j);
        t[j] = d > 0.f ? t[j] / d : 0.f;
      }
    }
  });
  sgemm(false, false, dout, Da, dout, 1.f, QG, dout, T2, Da, 0.f, T1, Da);  // T1 = Q_G T2
  // [P_W | P_b] = T1 Q_Aᵀ, written straight into the two outputs.
  sgemm(false, true, dout, din, Da, 1.f, T1, Da, QA, Da, 0.f, PW, din);
  if (gb) sgemm(false, true, dout, 1, Da, 1.f, T1, Da, QA + din * Da, Da, 0.f, Pb, 1);
}

}  // namespace

void precondition_eigen(const float* gW, const float* gb, int64_t dout, int64_t din,
                        const float* QA, const float* dA, const float* QG, const float* dG,
                        float lambda, float* PW, float* Pb) {
  auto den = [&](int64_t i, int64_t j) { return std::max(dG[i], 0.f) * std::max(dA[j], 0.f) + lambda; };
  eigenbasis_step(gW, gb, dout, din, QA, QG, den, PW, Pb);
}

void precondition_ekfac(const float* gW, const float* gb, int64_t dout, int64_t din, const float* QA,
                        const float* QG, const float* S, float c, float lambda, float* PW, float* Pb) {
  const int64_t Da = din + (gb ? 1 : 0);
  auto den = [&](int64_t i, int64_t j) { return c * S[i * Da + j] + lambda; };
  eigenbasis_step(gW, gb, dout, din, QA, QG, den, PW, Pb);
}

void ekfac_moments(const float* x, const float* g, int64_t R, int64_t din, int64_t dout, const float* QA,
                   const float* QG, bool bias, float alpha, float beta, float* acc) {
  const int64_t Da = din + (bias ? 1 : 0);
  if (R <= 0 || dout <= 0 || Da <= 0) return;
  float* XA = scratch(0, size_t(R * Da));
  float* GQ = scratch(1, size_t(R * dout));
  sgemm(false, false, R, Da, din, 1.f, x, din, QA, Da, 0.f, XA, Da);      // x Q_A[:din]
  sgemm(false, false, R, dout, dout, 1.f, g, dout, QG, dout, 0.f, GQ, dout);  // g Q_G
  const float* brow = bias ? QA + din * Da : nullptr;                      // + 1·Q_A[din]
  parallel_for(R, std::max<int64_t>(1, 4096 / (Da + dout)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* a = XA + r * Da;
      for (int64_t j = 0; j < Da; ++j) {
        const float v = brow ? a[j] + brow[j] : a[j];
        a[j] = v * v;
      }
      float* q = GQ + r * dout;
      for (int64_t i = 0; i < dout; ++i) q[i] = q[i] * q[i];
    }
  });
  sgemm(true, false, dout, Da, R, alpha, GQ, dout, XA, Da, beta, acc, Da);  // β·acc + α·(gQ_G)²ᵀ(x̃Q_A)²
}

double kron_quadratic(const float* dW, const float* db, int64_t dout, int64_t din, const float* A,
                      const float* G) {
  const int64_t Da = din + (db ? 1 : 0);
  if (dout <= 0 || Da <= 0) return 0.0;
  float* T1 = scratch(0, size_t(dout * Da));
  float* T2 = scratch(1, size_t(dout * Da));
  right_multiply(dW, db, dout, din, A, Da, T1);                           // T1 = [δW|δb] A
  sgemm(false, false, dout, Da, dout, 1.f, G, dout, T1, Da, 0.f, T2, Da);  // T2 = G T1
  double q = 0.0;
  for (int64_t i = 0; i < dout; ++i) {  // rows in order, each in float64 (the device's order)
    double s = 0.0;
    for (int64_t j = 0; j < din; ++j) s += double(dW[i * din + j]) * double(T2[i * Da + j]);
    if (db) s += double(db[i]) * double(T2[i * Da + din]);
    q += s;
  }
  return q;
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
