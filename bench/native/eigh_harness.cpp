// Standalone accuracy and timing harness for the CPU eigensolvers (no Node needed).
// Build (see also the g++ line in the report): g++ -O3 -std=c++17 -pthread -Inative
//   bench/native/eigh_harness.cpp native/core/*.cpp native/cpu/*.cpp -o /tmp/eigh_harness
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/eigh.h"
#include "cpu/eigh_detail.h"
#include "cpu/eigh_util.h"
#include "cpu/gemm.h"
#include "cpu/threadpool.h"

using namespace kfac::cpu;

static std::mt19937_64 rng(42);
static double gauss() { static std::normal_distribution<double> g; return g(rng); }

// Q diag(lam) Qᵀ with a random orthogonal Q (Gram–Schmidt in double), row-major float.
static std::vector<float> with_spectrum(int n, const std::vector<double>& lam) {
  std::vector<double> Q(size_t(n) * n);
  for (auto& q : Q) q = gauss();
  for (int j = 0; j < n; ++j) {
    for (int pass = 0; pass < 2; ++pass)
      for (int k = 0; k < j; ++k) {
        double s = 0;
        for (int i = 0; i < n; ++i) s += Q[i * n + k] * Q[i * n + j];
        for (int i = 0; i < n; ++i) Q[i * n + j] -= s * Q[i * n + k];
      }
    double s = 0;
    for (int i = 0; i < n; ++i) s += Q[i * n + j] * Q[i * n + j];
    s = 1 / std::sqrt(s);
    for (int i = 0; i < n; ++i) Q[i * n + j] *= s;
  }
  std::vector<float> A(size_t(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) {
      double s = 0;
      for (int k = 0; k < n; ++k) s += Q[i * n + k] * lam[k] * Q[j * n + k];
      A[i * n + j] = A[j * n + i] = float(s);
    }
  return A;
}

static std::vector<float> randsym(int n) {
  std::vector<float> A(size_t(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) A[i * n + j] = A[j * n + i] = float(gauss());
  return A;
}

static void check(const char* name, int n, const std::vector<float>& A, const std::vector<float>& w,
                  const std::vector<float>& Q, double* res_out = nullptr, double* orth_out = nullptr) {
  double an = 0, rn = 0, on = 0;
  for (int i = 0; i < n * n; ++i) an += double(A[i]) * A[i];
  std::vector<double> AQ(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < n; ++k) {
      double a = A[i * n + k];
      for (int j = 0; j < n; ++j) AQ[i * n + j] += a * Q[k * n + j];
    }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double r = AQ[i * n + j] - double(Q[i * n + j]) * w[j];
      rn += r * r;
    }
  std::vector<double> G(size_t(n) * n, 0.0);
  for (int k = 0; k < n; ++k)
    for (int i = 0; i < n; ++i) {
      double a = Q[k * n + i];
      for (int j = 0; j < n; ++j) G[i * n + j] += a * Q[k * n + j];
    }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double r = G[i * n + j] - (i == j);
      on += r * r;
    }
  bool sorted = true;
  for (int i = 0; i + 1 < n; ++i) sorted &= w[i] <= w[i + 1];
  double res = an > 0 ? std::sqrt(rn / an) : std::sqrt(rn);
  double orth = std::sqrt(on);
  bool ok = res <= 1e-5 && orth <= 1e-5 * std::sqrt(double(n)) && sorted;
  std::printf("%-12s n=%5d  res=%.2e  orth=%.2e (lim %.1e)  %s%s\n", name, n, res, orth,
              1e-5 * std::sqrt(double(n)), ok ? "ok" : "FAIL", sorted ? "" : " UNSORTED");
  if (res_out) *res_out = res;
  if (orth_out) *orth_out = orth;
}

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void run_acc(int n) {
  std::vector<float> w(n), Q(size_t(n) * n);
  EighOptions opt;
  auto go = [&](const char* name, const std::vector<float>& A) {
    eigh(n, A.data(), w.data(), Q.data(), opt);
    check(name, n, A, w, Q);
  };
  go("random", randsym(n));
  std::vector<double> lam(n);
  for (int i = 0; i < n; ++i) lam[i] = 1.0 + 1e-6 * gauss();
  go("clustered", with_spectrum(n, lam));
  for (int i = 0; i < n; ++i) lam[i] = double(i % 3);
  go("repeated", with_spectrum(n, lam));
  for (int i = 0; i < n; ++i) lam[i] = i < n / 4 ? std::fabs(gauss()) + 0.1 : 0.0;
  go("rankdef", with_spectrum(n, lam));
  for (int i = 0; i < n; ++i) lam[i] = std::pow(10.0, -6.0 * i / std::max(1, n - 1));
  go("graded", with_spectrum(n, lam));
  std::vector<float> D(size_t(n) * n, 0.f);
  for (int i = 0; i < n; ++i) D[i * n + i] = float(gauss());
  go("diagonal", D);
  auto R = randsym(n);
  for (auto& x : R) x *= 1e-30f;
  go("tiny", R);
  R = randsym(n);
  for (auto& x : R) x *= 1e30f;
  go("huge", R);
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "acc";
  if (mode == "acc") {
    std::vector<int> sizes = {1, 2, 3, 7, 24, 25, 33, 64, 100, 129, 200, 257, 300};
    if (argc > 2) { sizes.clear(); for (int i = 2; i < argc; ++i) sizes.push_back(std::atoi(argv[i])); }
    for (int n : sizes) run_acc(n);
  } else if (mode == "prof") {
    for (int i = 2; i < argc; ++i) {
      int n = std::atoi(argv[i]);
      auto A = randsym(n);
      std::vector<float> work(size_t(n) * n), d(n), e(n), tau(n), Z(size_t(n) * n);
      std::vector<double> dd(n), ed(n);
      for (int rep = 0; rep < 2; ++rep) {
        double t0 = now_ms();
        eig::load_symmetric(n, A.data(), 1.0, work.data());
        double t1 = now_ms();
        eig::tridiagonalize<float>(n, work.data(), n, d.data(), e.data(), tau.data());
        double t2 = now_ms();
        dd.assign(d.begin(), d.end()); ed.assign(e.begin(), e.end());
        eig::tridiag_eigh<float>(n, dd.data(), ed.data(), Z.data(), n);
        double t3 = now_ms();
        eig::apply_q<float>(n, work.data(), n, tau.data(), Z.data(), n, n);
        double t4 = now_ms();
        std::vector<float> C(size_t(n) * n);
        sgemm(false, false, n, n, n, 1.f, A.data(), n, Z.data(), n, 0.f, C.data(), n);
        double t5 = now_ms();
        std::printf("n=%d load %.2f tridiag %.2f dc %.2f applyq %.2f | one gemm n^3 %.2f ms\n", n,
                    t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4);
      }
    }
  } else if (mode == "refresh") {
    // argv: n R beta
    int n = argc > 2 ? std::atoi(argv[2]) : 512, R = argc > 3 ? std::atoi(argv[3]) : 512;
    double beta = argc > 4 ? std::atof(argv[4]) : 0.95;
    auto factor = [&]() {
      std::vector<double> X(size_t(R) * n);
      for (auto& x : X) x = gauss();
      std::vector<float> F(size_t(n) * n);
      std::vector<float> Xf(X.begin(), X.end());
      sgemm(true, false, n, n, R, 1.f / R, Xf.data(), n, Xf.data(), n, 0.f, F.data(), n);
      return F;
    };
    std::vector<float> A = factor();
    for (int t = 0; t < 5; ++t) {
      auto F = factor();
      for (size_t i = 0; i < A.size(); ++i) A[i] = 0.95f * A[i] + 0.05f * F[i];
    }
    std::vector<float> w0(n), Q0(size_t(n) * n), w(n), Q(size_t(n) * n), wc(n), Qc(size_t(n) * n);
    eigh(n, A.data(), w0.data(), Q0.data(), EighOptions());
    auto F = factor();
    for (size_t i = 0; i < A.size(); ++i) A[i] = float(beta) * A[i] + float(1 - beta) * F[i];
    std::vector<double> tc, tr;
    RefreshReport rep;
    for (int r = 0; r < 5; ++r) {
      double t = now_ms();
      eigh(n, A.data(), wc.data(), Qc.data(), EighOptions());
      tc.push_back(now_ms() - t);
      t = now_ms();
      rep = eigh_refresh(n, A.data(), Q0.data(), w0.data(), w.data(), Q.data(), RefreshOptions());
      tr.push_back(now_ms() - t);
    }
    std::sort(tc.begin(), tc.end());
    std::sort(tr.begin(), tr.end());
    std::printf("refresh n=%d R=%d beta=%.3f: cold %.2f ms, refresh %.2f ms (x%.2f) offdiag %.2e "
                "sweeps %d fell_back %d est.res %.2e\n", n, R, beta, tc[2], tr[2], tc[2] / tr[2],
                rep.offdiag, rep.sweeps, int(rep.fell_back), rep.residual);
    check("refresh", n, A, w, Q);
  } else if (mode == "batched") {
    for (int r : {8, 16, 32, 64}) {
      int B = 256;
      std::vector<float> A(size_t(B) * r * r), w(size_t(B) * r), V(size_t(B) * r * r);
      for (int b = 0; b < B; ++b) {
        auto M = randsym(r);
        std::copy(M.begin(), M.end(), A.begin() + size_t(b) * r * r);
      }
      std::vector<double> tl, tb;
      for (int rep = 0; rep < 7; ++rep) {
        double t = now_ms();
        for (int b = 0; b < B; ++b)
          eigh(r, A.data() + size_t(b) * r * r, w.data() + b * r, V.data() + size_t(b) * r * r, EighOptions());
        tl.push_back(now_ms() - t);
        t = now_ms();
        eigh_batched(B, r, A.data(), w.data(), V.data(), EighOptions());
        tb.push_back(now_ms() - t);
      }
      std::sort(tl.begin(), tl.end());
      std::sort(tb.begin(), tb.end());
      std::printf("batched %dx%dx%d: loop %.3f ms, batched %.3f ms (x%.1f)\n", B, r, r, tl[3], tb[3], tl[3] / tb[3]);
      std::vector<float> a0(A.begin(), A.begin() + r * r), w0(w.begin(), w.begin() + r), v0(V.begin(), V.begin() + r * r);
      check("batched[0]", r, a0, w0, v0);
    }
  } else if (mode == "time") {
    std::vector<int> sizes = {128, 256, 512, 1024};
    if (argc > 2) { sizes.clear(); for (int i = 2; i < argc; ++i) sizes.push_back(std::atoi(argv[i])); }
    for (int n : sizes) {
      auto A = randsym(n);
      std::vector<float> w(n), Q(size_t(n) * n);
      std::vector<double> ts;
      int reps = n <= 256 ? 15 : n <= 512 ? 7 : 3;
      for (int r = 0; r < reps; ++r) {
        double t = now_ms();
        eigh(n, A.data(), w.data(), Q.data(), EighOptions());
        ts.push_back(now_ms() - t);
      }
      std::sort(ts.begin(), ts.end());
      std::printf("eigh n=%d threads=%d median %.2f ms\n", n, num_threads(), ts[ts.size() / 2]);
    }
  }
  return 0;
}
