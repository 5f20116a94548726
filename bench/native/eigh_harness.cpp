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
