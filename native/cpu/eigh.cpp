// Cold symmetric eigendecomposition: scale, tridiagonalise, divide and conquer,
// back-transform; float32 first, float64 when float32 fails.
#include "eigh.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "../core/error.h"
#include "eigh_detail.h"
#include "eigh_util.h"

namespace kfac::cpu {

namespace {

std::atomic<int> g_fault{0};

// w (n) and Z (n×n, column-major) of scale·sym(A); false when the solve failed.
template <class T>
bool eigh_core(int64_t n, const float* A, double scale, std::vector<double>& w, std::vector<T>& Z) {
  const int fault = g_fault.load();
  if (fault <= 2 && fault >= (sizeof(T) == sizeof(float) ? 1 : 2)) return false;
  // Grow-only per-thread scratch: a fresh n×n block per call costs page faults.
  thread_local std::vector<T> work;
  if (work.size() < size_t(n) * size_t(n)) work.resize(size_t(n) * size_t(n));
  eig::load_symmetric(n, A, scale, work.data());
  const size_t m1 = size_t(std::max<int64_t>(n - 1, 1));
  std::vector<T> d(static_cast<size_t>(n)), e(m1), tau(m1);
  eig::tridiagonalize<T>(n, work.data(), n, d.data(), e.data(), tau.data());
  w.assign(d.begin(), d.end());
  std::vector<double> ed(e.begin(), e.end());
  Z.resize(size_t(n) * size_t(n));
  if (!eig::tridiag_eigh<T>(n, w.data(), ed.data(), Z.data(), n)) return false;
  eig::apply_q<T>(n, work.data(), n, tau.data(), Z.data(), n, n);
  for (double v : w)
    if (!std::isfinite(v)) return false;
  for (T v : Z)
    if (!std::isfinite(v)) return false;
  return true;
}

}  // namespace

namespace eig {

void set_fault_injection(int mode) { g_fault.store(mode); }
int fault_injection() { return g_fault.load(); }

bool solve_scaled(int64_t n, const float* A, double scale, std::vector<double>& w,
                  std::vector<float>& Zcm, bool& retried) {
  retried = false;
  if (eigh_core<float>(n, A, scale, w, Zcm)) return true;
  retried = true;
  std::vector<double> Zd;
  if (!eigh_core<double>(n, A, scale, w, Zd)) return false;
  Zcm.assign(Zd.begin(), Zd.end());
  return true;
}

}  // namespace eig

EighReport eigh(int64_t n, const float* A, float* values, float* vectors, const EighOptions& opt) {
  EighReport rep;
  if (n <= 0) return rep;
  double amax = eig::max_abs_checked(n * n, A, "a");
  if (amax == 0) {
    std::fill(values, values + n, 0.f);
    std::fill(vectors, vectors + n * n, 0.f);
    for (int64_t i = 0; i < n; ++i) vectors[i * n + i] = 1.f;
    return rep;
  }
  double scale = std::ldexp(1.0, -std::ilogb(amax));
  thread_local std::vector<double> w;
  thread_local std::vector<float> Z;
  if (!eig::solve_scaled(n, A, scale, w, Z, rep.retried_double))
    throw Error(ErrorCode::Numerical, "eigh: the eigendecomposition did not converge, even in float64");
  for (int64_t i = 0; i < n; ++i) {
    double v = w[size_t(i)] / scale;
    values[i] = float(opt.clamp_nonneg ? std::max(v, 0.0) : v);
  }
  eig::transpose_out(n, Z.data(), vectors);
  return rep;
}

}  // namespace kfac::cpu
