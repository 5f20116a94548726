// Standalone checks and timings of the K-FAC kernels (no Node needed):
//   g++ -O3 -std=c++17 -march=native -pthread -Inative bench/native/kfac_check.cpp \
//       native/core/*.cpp native/cpu/*.cpp -o /tmp/kfac_check && /tmp/kfac_check [bench]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "cpu/cholesky.h"
#include "cpu/factor.h"
#include "cpu/precondition.h"

using namespace kfac::cpu;
using V = std::vector<float>;
using D = std::vector<double>;

static std::mt19937_64 rng(42);
V randn(size_t n) {
  std::normal_distribution<float> g;
  V v(n);
  for (auto& x : v) x = g(rng);
  return v;
}
int fails = 0;
void expect(bool ok, const char* what, double err) {
  if (!ok) ++fails;
  std::printf("%-6s %-60s err=%.3g\n", ok ? "ok" : "FAIL", what, err);
}
double relerr(const V& a, const D& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    double e = double(a[i]) - b[i];
    if (!std::isfinite(a[i])) return INFINITY;
    num += e * e;
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}
// SPD matrix n×n with condition ~ cond
V spd(int64_t n, double cond) {
  V x = randn(size_t(n * n));
  D g(size_t(n * n), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < n; ++k) g[i * n + j] += double(x[i * n + k]) * x[j * n + k] / n;
  V a(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[i * n + j] = float(g[i * n + j] + (i == j ? 1.0 / cond : 0));
  return a;
}
D inv64(const D& a, int64_t n) {  // Gauss-Jordan
  D m = a, r(size_t(n * n), 0);
  for (int64_t i = 0; i < n; ++i) r[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    int64_t p = c;
    for (int64_t i = c; i < n; ++i) if (std::fabs(m[i * n + c]) > std::fabs(m[p * n + c])) p = i;
    for (int64_t j = 0; j < n; ++j) { std::swap(m[c * n + j], m[p * n + j]); std::swap(r[c * n + j], r[p * n + j]); }
    double piv = m[c * n + c];
    for (int64_t j = 0; j < n; ++j) { m[c * n + j] /= piv; r[c * n + j] /= piv; }
    for (int64_t i = 0; i < n; ++i) if (i != c) {
      double f = m[i * n + c];
      if (f != 0) for (int64_t j = 0; j < n; ++j) { m[i * n + j] -= f * m[c * n + j]; r[i * n + j] -= f * r[c * n + j]; }
    }
  }
  return r;
}

void check_factor() {
  for (int64_t d : {1, 2, 7, 33, 65, 130, 300}) for (int64_t R : {1, 5, 64}) for (int bias = 0; bias < 2; ++bias)
    for (float beta : {0.f, 0.95f}) {
      int64_t Dd = d + bias;
      V x = randn(size_t(R * d)), F = randn(size_t(Dd * Dd)), F0 = F;
      if (beta == 0.f) std::fill(F.begin(), F.end(), NAN);
      // symmetric prior
      for (int64_t i = 0; i < Dd; ++i) for (int64_t j = 0; j < i; ++j) F0[j * Dd + i] = F0[i * Dd + j];
      if (beta != 0.f) F = F0;
      double scale = 3.0, alpha = (1 - beta) * scale / R;
      D ref(size_t(Dd * Dd));
      for (int64_t i = 0; i < Dd; ++i) for (int64_t j = 0; j < Dd; ++j) {
        double s = 0;
        for (int64_t r = 0; r < R; ++r) s += (i < d ? x[r * d + i] : 1.0) * (j < d ? x[r * d + j] : 1.0);
        ref[i * Dd + j] = alpha * s + (beta != 0.f ? beta * double(F0[i * Dd + j]) : 0.0);
      }
      factor_update(x.data(), R, d, d, bias, beta, float(alpha), F.data(), Dd);
      bool sym = true;
      for (int64_t i = 0; i < Dd; ++i) for (int64_t j = 0; j < Dd; ++j) sym = sym && F[i * Dd + j] == F[j * Dd + i];
      char buf[128];
      std::snprintf(buf, sizeof buf, "factor d=%ld R=%ld bias=%d beta=%.2f", long(d), long(R), bias, beta);
      double e = relerr(F, ref);
      expect(e < 1e-5 && sym, buf, e);
    }
}

void check_inverse() {
  for (int64_t n : {1, 2, 7, 33, 65, 130, 257}) for (double cond : {10.0, 1e5}) {
    V a = spd(n, cond), out(size_t(n * n), NAN);
    float delta = 0.01f;
    InverseInfo inf = damped_inverse(a.data(), n, n, delta, out.data(), n, "a");
    D ad(a.begin(), a.end());
    for (int64_t i = 0; i < n; ++i) ad[i * n + i] += delta;
    D ref = inv64(ad, n);
    char buf[128];
    std::snprintf(buf, sizeof buf, "inverse n=%ld cond=%.0g f64=%d", long(n), cond, int(inf.used_f64));
    double e = relerr(out, ref);
    expect(e < 1e-3, buf, e);
  }
  // rank-deficient with no damping → error; in place works
  {
    int64_t n = 20;
    V a(size_t(n * n), 1.f);
    bool threw = false;
    try { V out(size_t(n * n)); damped_inverse(a.data(), n, n, 0.f, out.data(), n, "a"); }
    catch (const kfac::Error& e) { threw = e.code() == kfac::ErrorCode::Numerical && e.argument() == "a"; }
    expect(threw, "rank-1 without damping throws Numerical naming a", 0);
    V out(size_t(n * n));
    InverseInfo inf = damped_inverse(a.data(), n, n, 1e-3f, out.data(), n, "a");
    D ad(a.begin(), a.end());
    for (int64_t i = 0; i < n; ++i) ad[i * n + i] += 1e-3;
    double e = relerr(out, inv64(ad, n));
    char buf[128];
    std::snprintf(buf, sizeof buf, "rank-1 + 1e-3 I f64=%d", int(inf.used_f64));
    expect(e < 1e-2, buf, e);
    damped_inverse(a.data(), n, n, 1e-3f, a.data(), n, "a");
    expect(relerr(a, inv64(ad, n)) < 1e-2, "in place", relerr(a, inv64(ad, n)));
  }
}

void check_precondition() {
  for (int64_t dout : {1, 3, 17}) for (int64_t din : {1, 2, 9}) for (int bias = 0; bias < 2; ++bias) {
    int64_t Da = din + bias;
    V A = spd(Da, 1e3), G = spd(dout, 1e3);
    if (bias) { // singular-ish factor
    }
    // eigen via Jacobi in double
    auto eig = [](const V& M, int64_t n, V& Q, V& d) {
      D a(M.begin(), M.end()), q(size_t(n * n), 0);
      for (int64_t i = 0; i < n; ++i) q[i * n + i] = 1;
      for (int sweep = 0; sweep < 60; ++sweep)
        for (int64_t p = 0; p < n; ++p) for (int64_t r = p + 1; r < n; ++r) {
          double apq = a[p * n + r];
          if (std::fabs(apq) < 1e-300) continue;
          double th = (a[r * n + r] - a[p * n + p]) / (2 * apq);
          double t = (th >= 0 ? 1 : -1) / (std::fabs(th) + std::sqrt(th * th + 1));
          double c = 1 / std::sqrt(t * t + 1), s = t * c;
          for (int64_t k = 0; k < n; ++k) {
            double akp = a[k * n + p], akr = a[k * n + r];
            a[k * n + p] = c * akp - s * akr; a[k * n + r] = s * akp + c * akr;
          }
          for (int64_t k = 0; k < n; ++k) {
            double apk = a[p * n + k], ark = a[r * n + k];
            a[p * n + k] = c * apk - s * ark; a[r * n + k] = s * apk + c * ark;
          }
          for (int64_t k = 0; k < n; ++k) {
            double qkp = q[k * n + p], qkr = q[k * n + r];
            q[k * n + p] = c * qkp - s * qkr; q[k * n + r] = s * qkp + c * qkr;
          }
        }
      Q.assign(q.begin(), q.end());
      d.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) d[i] = float(a[i * n + i]);
    };
    V QA, dA, QG, dG;
    eig(A, Da, QA, dA);
    eig(G, dout, QG, dG);
    V gW = randn(size_t(dout * din)), gb = randn(size_t(dout));
    float lam = 0.05f;
    // Dense solve (A ⊗ G + λI) vec(P) = vec([gW|gb]) with column-major vec: index j*dout+i.
    int64_t N = dout * Da;
    D K(size_t(N * N)), rhs(static_cast<size_t>(N));
    for (int64_t j = 0; j < Da; ++j) for (int64_t i = 0; i < dout; ++i) {
      rhs[j * dout + i] = j < din ? gW[i * din + j] : gb[i];
      for (int64_t l = 0; l < Da; ++l) for (int64_t k = 0; k < dout; ++k)
        K[(j * dout + i) * N + l * dout + k] = double(A[j * Da + l]) * G[i * dout + k] + (j == l && i == k ? lam : 0);
    }
    D Ki = inv64(K, N);
    D refW(static_cast<size_t>(dout * din)), refb(static_cast<size_t>(dout));
    for (int64_t j = 0; j < Da; ++j) for (int64_t i = 0; i < dout; ++i) {
      double s = 0;
      for (int64_t m = 0; m < N; ++m) s += Ki[(j * dout + i) * N + m] * rhs[m];
      if (j < din) refW[i * din + j] = s; else refb[i] = s;
    }
    V PW(size_t(dout * din), NAN), Pb(size_t(dout), NAN);
    precondition_eigen(gW.data(), bias ? gb.data() : nullptr, dout, din, QA.data(), dA.data(), QG.data(), dG.data(),
                       lam, PW.data(), bias ? Pb.data() : nullptr);
    char buf[128];
    std::snprintf(buf, sizeof buf, "eigen dout=%ld din=%ld bias=%d", long(dout), long(din), bias);
    double e = std::max(relerr(PW, refW), bias ? relerr(Pb, refb) : 0.0);
    expect(e < 1e-4, buf, e);
  }
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

#include "cpu/gemm.h"
// Interleaved medians: the fused factor update against one full sgemm XᵀX (the work
// the update replaces), on the same data.
void bench() {
  for (int64_t d : {64, 256, 1024}) for (int64_t R : {512, 2048, 8192}) {
    V x = randn(size_t(R * d)), F(size_t(d * d)), C(size_t(d * d));
    std::vector<double> tf, tg;
    for (int it = 0; it < 15; ++it) {
      double t0 = now_ms();
      factor_update(x.data(), R, d, d, false, 0.f, 1.f / R, F.data(), d);
      double t1 = now_ms();
      sgemm(true, false, d, d, R, 1.f / R, x.data(), d, x.data(), d, 0.f, C.data(), d);
      double t2 = now_ms();
      tf.push_back(t1 - t0);
      tg.push_back(t2 - t1);
    }
    std::sort(tf.begin(), tf.end());
    std::sort(tg.begin(), tg.end());
    std::printf("factor d=%5ld R=%5ld  update min %8.3f med %8.3f ms (%6.1f GFLOP/s)  full sgemm min %8.3f med %8.3f ms\n",
                long(d), long(R), tf[0], tf[7], double(d) * d * R / tf[0] / 1e6, tg[0], tg[7]);
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "bench")) { bench(); return 0; }
  check_factor();
  check_inverse();
  check_precondition();
  std::printf("%d failures\n", fails);
  return fails ? 1 : 0;
}
