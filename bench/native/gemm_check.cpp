// Standalone correctness check and timing of kfac::cpu::sgemm, built from the project's own
// sources (see build.sh next to this file).
//
//   gemm_check check            every kernel path × 1, 2, 3 threads × the case matrix below
//   gemm_check bench [reps] [sizes...]
//                               square NN products, median GFLOP/s with 1 and 2 threads, on the
//                               kernel the library picks (KFAC_CPU_KERNEL=... forces one)
//
// Error bound. For an inner product of length K evaluated in float32 in any order (blocked,
// FMA, split over threads), |fl(s) − s| ≤ γ_K · Σ|a_i||b_i| with γ_n = n·u/(1 − n·u),
// u = 2⁻²⁴ (the standard forward error bound for summation). Scaling by alpha,
// the product beta·c and the final addition add three more roundings, so we require
//   |C − C_ref| ≤ γ_{K+3} · (|alpha| · Σ_p |op(A)_ip| |op(B)_pj| + |beta| · |c_ij|)
// elementwise, against a float64 reference. It is the rigorous worst case, independent of the
// summation order, so it never flags a correct kernel; any indexing, packing or edge bug gives
// O(1) relative errors, far above it. The check also prints the largest error/bound ratio seen
// (about 0.5, from the smallest K where a couple of roundings meet a bound of a few u).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "../../native/core/error.h"
#include "../../native/cpu/cpu_features.h"
#include "../../native/cpu/gemm.h"
#include "../../native/cpu/threadpool.h"

using namespace kfac::cpu;

namespace {

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  float alpha, beta;
  int64_t pad;         // extra elements per row of A, B and C (ld > row length)
  int64_t batch;       // > 1: strided batched
  bool bcastA, bcastB; // stride 0 for A / B
};

std::mt19937_64 rng(12345);

std::vector<float> random_vec(size_t n) {
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double g_worst_ratio = 0;

// Returns the number of failing elements (prints the first few).
int run_case(const Case& c) {
  const int64_t rowsA = c.ta ? c.K : c.M, colsA = c.ta ? c.M : c.K;
  const int64_t rowsB = c.tb ? c.N : c.K, colsB = c.tb ? c.K : c.N;
  const int64_t lda = colsA + c.pad, ldb = colsB + c.pad, ldc = c.N + c.pad;
  const int64_t sA = c.bcastA ? 0 : rowsA * lda, sB = c.bcastB ? 0 : rowsB * ldb;
  const int64_t sC = c.M * ldc;
  const int64_t nA = c.bcastA ? 1 : c.batch, nB = c.bcastB ? 1 : c.batch;
  std::vector<float> A = random_vec(size_t(std::max<int64_t>(1, nA * rowsA * lda)));
  std::vector<float> B = random_vec(size_t(std::max<int64_t>(1, nB * rowsB * ldb)));
  std::vector<float> C0 = random_vec(size_t(c.batch * sC));
  const float sentinel = 12345.f;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < c.M; ++i) {
      for (int64_t j = c.N; j < ldc; ++j) C0[size_t(b * sC + i * ldc + j)] = sentinel;
      if (c.beta == 0.f)  // beta == 0 must never read C: poison it
        for (int64_t j = 0; j < c.N; ++j) C0[size_t(b * sC + i * ldc + j)] = NAN;
    }
  std::vector<float> C = C0;
  if (c.batch == 1)
    sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  else
    sgemm_strided_batched(c.batch, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, sA, B.data(),
                          ldb, sB, c.beta, C.data(), ldc, sC);
  const double u = std::ldexp(1.0, -24);
  const double gamma = (c.K + 3) * u / (1 - (c.K + 3) * u);
  int bad = 0;
  for (int64_t b = 0; b < c.batch; ++b) {
    const float* a = A.data() + b * sA;
    const float* bb = B.data() + b * sB;
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        const size_t at = size_t(b * sC + i * ldc + j);
        const float got = C[at];
        if (j >= c.N) {
          if (!(got == sentinel) && bad++ < 5)
            std::printf("    wrote outside C at b=%ld i=%ld j=%ld\n", long(b), long(i), long(j));
          continue;
        }
        double s = 0, sabs = 0;
        for (int64_t p = 0; p < c.K; ++p) {
          double x = c.ta ? a[p * lda + i] : a[i * lda + p];
          double y = c.tb ? bb[j * ldb + p] : bb[p * ldb + j];
          s += x * y;
          sabs += std::fabs(x * y);
        }
        const double c0 = c.beta == 0.f ? 0.0 : double(C0[at]);
        const double ref = double(c.alpha) * s + double(c.beta) * c0;
        const double bound =
            gamma * (std::fabs(double(c.alpha)) * sabs + std::fabs(double(c.beta) * c0)) + 1e-30;
        const double err = std::fabs(double(got) - ref);
        if (std::isfinite(got) && err / bound > g_worst_ratio) g_worst_ratio = err / bound;
        if (!(err <= bound) && bad++ < 5)
          std::printf("    b=%ld i=%ld j=%ld got %.9g want %.9g (bound %.3g)\n", long(b), long(i),
                      long(j), double(got), ref, bound);
      }
  }
  return bad;
}

std::vector<Case> case_matrix() {
  std::vector<Case> cs;
  const int64_t dims[][3] = {{1, 1, 1},     {2, 3, 1},     {3, 2, 7},     {7, 7, 7},
                             {17, 33, 63},  {33, 17, 65},  {63, 65, 127}, {65, 63, 33},
                             {127, 129, 3}, {257, 33, 65}, {31, 257, 17}, {13, 37, 401},
                             {1, 1000, 3},  {1000, 1, 1000}, {5, 4096, 7}, {101, 103, 1031},
                             {300, 290, 17}, {15, 29, 0},   {7, 2000, 300}, {257, 257, 257},
                             {1, 37, 1000}, {45, 1, 9},     {1, 3, 70},    {2, 1, 33},
                             {9, 4500, 20}, {40, 4200, 40}};
  const bool tr[][2] = {{false, false}, {true, false}, {false, true}, {true, true}};
  const float ab[][2] = {{1.f, 0.f}, {-0.75f, 0.5f}, {2.f, 1.f}, {0.f, 0.f}, {0.f, -1.5f}};
  int n = 0;
  for (auto& d : dims)
    for (auto& t : tr) {
      // cycle alpha/beta and padding across the matrix to keep the run short
      const float* a = ab[n % 5];
      cs.push_back({d[0], d[1], d[2], t[0], t[1], a[0], a[1], (n % 3 == 1) ? 5 : 0, 1, false, false});
      ++n;
    }
  // every alpha/beta on one odd size, all transposes
  for (auto& a : ab)
    for (auto& t : tr) cs.push_back({33, 47, 29, t[0], t[1], a[0], a[1], 3, 1, false, false});
  // batched: plain, broadcast A, broadcast B; small (member per matrix) and large
  for (auto& t : tr) {
    cs.push_back({7, 9, 11, t[0], t[1], 1.f, 0.f, 2, 5, false, false});
    cs.push_back({7, 9, 11, t[0], t[1], 0.5f, 1.f, 0, 4, true, false});
    cs.push_back({65, 33, 70, t[0], t[1], 1.f, 0.f, 1, 3, false, true});
    cs.push_back({3, 130, 300, t[0], t[1], -1.f, 2.f, 0, 3, true, false});
  }
  return cs;
}

int check() {
  std::vector<KernelIsa> isas = {KernelIsa::Generic};
  if (kernel_isa_supported(KernelIsa::Avx2)) isas.push_back(KernelIsa::Avx2);
  if (kernel_isa_supported(KernelIsa::Avx512)) isas.push_back(KernelIsa::Avx512);
  const std::vector<Case> cs = case_matrix();
  int failures = 0;
  for (KernelIsa isa : isas) {
    set_kernel_isa(isa);
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      int fails = 0;
      for (const Case& c : cs) {
        int bad = run_case(c);
        if (bad) {
          std::printf("  FAIL %s t=%d M=%ld N=%ld K=%ld ta=%d tb=%d alpha=%g beta=%g pad=%ld batch=%ld: %d bad\n",
                      kernel_isa_name(isa), threads, long(c.M), long(c.N), long(c.K), c.ta, c.tb,
                      double(c.alpha), double(c.beta), long(c.pad), long(c.batch), bad);
          ++fails;
        }
      }
      std::printf("%-8s threads=%d: %zu cases, %d failed\n", kernel_isa_name(isa), threads,
                  cs.size(), fails);
      failures += fails;
    }
  }
  reset_kernel_isa();
  set_num_threads(0);
  std::printf("largest error / bound: %.3g\n", g_worst_ratio);
  // Forcing an ISA the CPU lacks must throw kfac::Error, never crash.
  if (!kernel_isa_supported(KernelIsa::Avx512)) {
    try {
      set_kernel_isa(KernelIsa::Avx512);
      std::printf("FAIL: forcing avx512 did not throw\n");
      ++failures;
    } catch (const kfac::Error&) {
    }
  }
  std::printf(failures ? "FAILED\n" : "all passed\n");
  return failures ? 1 : 0;
}

// Wall-clock seconds, or with GEMM_BENCH_CLOCK=cpu this thread's CPU seconds: on a shared
// machine that leaves out time the thread spent descheduled (meaningful with 1 thread only).
double now() {
  static const bool cpu = std::getenv("GEMM_BENCH_CLOCK") && std::string(std::getenv("GEMM_BENCH_CLOCK")) == "cpu";
  if (cpu) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int bench(int reps, std::vector<int64_t> sizes) {
  if (sizes.empty()) sizes = {256, 512, 1024};
  // The kernel the library picks (KFAC_CPU_KERNEL=generic|avx2|avx512 chooses another).
  const std::vector<KernelIsa> isas = {kernel_isa()};
  // GEMM_BENCH_OP=NN|NT|TN|TT picks the transposes (default NN).
  const char* op = std::getenv("GEMM_BENCH_OP");
  const bool ta = op && op[0] == 'T', tb = op && op[0] && op[1] == 'T';
  for (int64_t n : sizes) {
    std::vector<float> A = random_vec(size_t(n * n)), B = random_vec(size_t(n * n)),
                       C(size_t(n * n));
    const double flop = 2.0 * n * n * n;
    const int inner = std::max<int>(1, int(2e8 / flop));
    for (KernelIsa isa : isas)
      for (int t : {1, 2}) {
        set_kernel_isa(isa);
        set_num_threads(t);
        for (int w = 0; w < 3; ++w)
          sgemm(ta, tb, n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n);
        std::vector<double> ts;
        for (int r = 0; r < reps; ++r) {
          double t0 = now();
          for (int q = 0; q < inner; ++q)
            sgemm(ta, tb, n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n);
          ts.push_back((now() - t0) / inner);
        }
        std::sort(ts.begin(), ts.end());
        std::printf("%s %-7s n=%-5ld threads=%d  %7.1f GFLOP/s (median of %d)\n", op ? op : "NN", kernel_isa_name(isa),
                    long(n), t, flop / ts[ts.size() / 2] / 1e9, reps);
      }
  }
  reset_kernel_isa();
  set_num_threads(0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "check";
  try {
    if (mode == "check") return check();
    if (mode == "bench") {
      int reps = argc > 2 ? std::atoi(argv[2]) : 15;
      std::vector<int64_t> sizes;
      for (int i = 3; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
      return bench(reps, sizes);
    }
  } catch (const kfac::Error& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  std::printf("usage: gemm_check check | bench [reps] [sizes...]\n");
  return 2;
}
