// Warm refresh of an eigendecomposition from the previous eigenbasis Q:
//   S = Qᵀ A Q (two GEMMs); when Q is still close to an eigenbasis S is nearly diagonal
//   and a few Jacobi rotations finish it; Q_new = Q·V (one GEMM).
// The basis is declared stale, and a cold solve is used instead, when the off-diagonal
// mass of S is large, when the rotations needed exceed a budget (a basis that has
// genuinely rotated), or when the residual of the result is too large.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "../core/error.h"
#include "eigh.h"
#include "eigh_detail.h"
#include "eigh_util.h"
#include "gemm.h"

namespace kfac::cpu {

namespace {

// ‖A Q − Q Λ‖_F / ‖A‖_F estimated with Gaussian probes: ‖R‖_F² = E‖R g‖² (g ~ N(0, I)).
// O(probes·n²). A, Q row-major.
double probe_residual(int64_t n, const float* A, const float* Q, const float* w) {
  const int probes = 16;
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> gauss;
  std::vector<float> G(size_t(n) * probes), Y(size_t(n) * probes), Z(size_t(n) * probes),
      U(size_t(n) * probes);
  for (auto& g : G) g = float(gauss(rng));
  // Y = Q G, Z = A Y, U = Q (Λ G)
  sgemm(false, false, n, probes, n, 1.f, Q, n, G.data(), probes, 0.f, Y.data(), probes);
  sgemm(false, false, n, probes, n, 1.f, A, n, Y.data(), probes, 0.f, Z.data(), probes);
  for (int64_t i = 0; i < n; ++i)
    for (int p = 0; p < probes; ++p) G[size_t(i * probes + p)] *= w[i];
  sgemm(false, false, n, probes, n, 1.f, Q, n, G.data(), probes, 0.f, U.data(), probes);
  double r2 = 0, a2 = 0;
  for (size_t i = 0; i < Z.size(); ++i) r2 += double(Z[i] - U[i]) * double(Z[i] - U[i]);
  for (int64_t i = 0; i < n * n; ++i) a2 += double(A[i]) * double(A[i]);
  if (a2 == 0) return std::sqrt(r2 / probes);
  return std::sqrt(r2 / probes / a2);
}

}  // namespace

RefreshReport eigh_refresh(int64_t n, const float* A, const float* prev, const float* prev_values,
                           float* values, float* vectors, const RefreshOptions& opt) {
  RefreshReport rep;
  if (n <= 0) return rep;
  const double amax = eig::max_abs_checked(n * n, A, "a");
  eig::max_abs_checked(n * n, prev, "previousVectors");
  const size_t nn = size_t(n) * size_t(n);
  auto finish_values = [&](const double* w, double scale) {
    for (int64_t i = 0; i < n; ++i) {
      double v = w[i] / scale;
      values[i] = float(opt.clamp_nonneg ? std::max(v, 0.0) : v);
    }
  };
  if (amax == 0) {
    if (vectors != prev) std::copy(prev, prev + nn, vectors);
    std::fill(values, values + n, 0.f);
    return rep;
  }
  const double scale = std::ldexp(1.0, -std::ilogb(amax));

  // Couplings below `skip` are never rotated: together they add at most n·skip/‖S‖_F to
  // the residual, i.e. max(1e-6, 8·u·√n) — the second term is the float32 rounding
  // already in S, which no rotation can remove. ‖S‖_F = ‖A‖_F for an orthogonal Q.
  double anorm2 = 0;
  for (int64_t i = 0; i < n * n; ++i) anorm2 += double(A[i]) * double(A[i]);
  const double nrm = std::sqrt(anorm2) * scale;
  const double tol = 1e-6;
  const double skip = std::max(tol * nrm / double(n), 8.0 * 5.96e-8 * nrm / std::sqrt(double(n)));
  // The rotation budget (a few per row) keeps the warm path far cheaper than a cold
  // solve; a basis that needs more has rotated for real.
  const int64_t budget = 8 * n + 64;

  // Cheap look first: k columns of S = Qᵀ A Q (O(n²k)) estimate the off-diagonal mass
  // and how many couplings would need a rotation. A stale basis goes straight to the
  // cold solve without paying for the full S.
  bool warm_ok = true;
  if (n > 64) {
    const int64_t k = 16;
    std::vector<float> Qs(size_t(n) * k), Ys(size_t(n) * k), Ss(size_t(n) * k);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) Qs[size_t(i * k + c)] = prev[i * n + (c * n) / k];
    sgemm(false, false, n, k, n, float(scale), A, n, Qs.data(), k, 0.f, Ys.data(), k);
    sgemm(true, false, n, k, n, 1.f, prev, n, Ys.data(), k, 0.f, Ss.data(), k);
    double off2 = 0;
    int64_t above = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) {
        if (i == (c * n) / k) continue;
        double v = Ss[size_t(i * k + c)];
        off2 += v * v;
        above += std::fabs(v) > skip;
      }
    rep.offdiag = std::sqrt(off2 * double(n) / double(k)) / nrm;
    const double pairs = double(above) * double(n) / double(k) / 2.0;
    warm_ok = rep.offdiag <= opt.max_offdiag && pairs <= 2.0 * double(budget);
  }

  // S = Qᵀ (scale·A) Q, symmetrised, in double.
  std::vector<double> S;
  if (warm_ok) {
    std::vector<float> C(nn), Sf(nn);
    sgemm(false, false, n, n, n, float(scale), A, n, prev, n, 0.f, C.data(), n);
    sgemm(true, false, n, n, n, 1.f, prev, n, C.data(), n, 0.f, Sf.data(), n);
    S.resize(nn);
    double total = 0, off = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double v = 0.5 * (double(Sf[size_t(i * n + j)]) + double(Sf[size_t(j * n + i)]));
        S[size_t(i * n + j)] = v;
        total += v * v;
        if (i != j) off += v * v;
      }
    rep.offdiag = total > 0 ? std::sqrt(off / total) : 0;
    warm_ok = rep.offdiag <= opt.max_offdiag;
  }
  std::vector<double> Vt;
  if (warm_ok) {
    Vt.assign(nn, 0.0);
    for (int64_t i = 0; i < n; ++i) Vt[size_t(i * n + i)] = 1.0;
    eig::JacobiStats st;
    warm_ok = eig::jacobi_sweeps(n, S.data(), Vt.data(), tol, skip, 8, budget, st);
    rep.sweeps = st.sweeps;
  }
  if (warm_ok) {
    std::vector<int64_t> ord(static_cast<size_t>(n));
    std::iota(ord.begin(), ord.end(), 0);
    std::sort(ord.begin(), ord.end(),
              [&](int64_t x, int64_t y) { return S[size_t(x * n + x)] < S[size_t(y * n + y)]; });
    std::vector<float> W(nn), Qn(nn);
    std::vector<double> w(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      int64_t o = ord[size_t(j)];
      w[size_t(j)] = S[size_t(o * n + o)];
      for (int64_t k = 0; k < n; ++k) W[size_t(k * n + j)] = float(Vt[size_t(o * n + k)]);
    }
    sgemm(false, false, n, n, n, 1.f, prev, n, W.data(), n, 0.f, Qn.data(), n);
    bool finite = true;
    for (float v : Qn) finite = finite && std::isfinite(v);
    if (finite) {
      std::vector<float> wf(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) wf[size_t(i)] = float(w[size_t(i)] / scale);
      rep.residual = probe_residual(n, A, Qn.data(), wf.data());
      if (rep.residual <= opt.max_residual) {
        std::copy(Qn.begin(), Qn.end(), vectors);
        finish_values(w.data(), scale);
        return rep;
      }
    }
  }

  // Cold solve.
  rep.fell_back = true;
  std::vector<double> w;
  std::vector<float> Z;
  bool retried = false;
  if (eig::solve_scaled(n, A, scale, w, Z, retried)) {
    rep.retried_double = retried;
    eig::transpose_out(n, Z.data(), vectors);
    finish_values(w.data(), scale);
    rep.residual = probe_residual(n, A, vectors, values);
    return rep;
  }
  // Every solve failed: keep the previous basis (with its Rayleigh quotients when no
  // previous values were given) and say so.
  rep.retried_double = true;
  rep.kept_previous = true;
  if (vectors != prev) std::copy(prev, prev + nn, vectors);
  for (int64_t i = 0; i < n; ++i) {
    double v;
    if (prev_values) {
      v = double(prev_values[i]);
    } else {  // Rayleigh quotient q_iᵀ A q_i
      std::vector<float> Aq(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) {
        double t = 0;
        for (int64_t c = 0; c < n; ++c) t += double(A[r * n + c]) * double(prev[c * n + i]);
        Aq[size_t(r)] = float(t);
      }
      v = 0;
      for (int64_t r = 0; r < n; ++r) v += double(prev[r * n + i]) * double(Aq[size_t(r)]);
    }
    values[i] = float(opt.clamp_nonneg ? std::max(v, 0.0) : v);
  }
  rep.residual = probe_residual(n, A, vectors, values);
  return rep;
}

}  // namespace kfac::cpu
