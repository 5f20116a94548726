// Divide-and-conquer eigensolver for a symmetric tridiagonal matrix (Cuppen's method
// with the deflation of Dongarra–Sorensen and the eigenvector formula of Gu–Eisenstat,
// as in LAPACK's stedc/laed*). Eigenvalue arithmetic runs in double (O(n²) work);
// eigenvector matrices are T and are combined through gemm_cm, which carries the
// O(n³) part. Column-major (see eigh_detail.h).
#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numeric>
#include <vector>

#include "eigh_detail.h"
#include "threadpool.h"

namespace kfac::cpu::eig {

namespace {

constexpr int64_t kLeaf = 24;  // blocks this small are solved by implicit QL

// Implicit QL with Wilkinson shifts on a small tridiagonal block (d[m], e[m-1]) in
// double; eigenvectors into Q (m×m, ldq, type T), eigenvalues ascending in d.
template <class T>
bool ql_leaf(int64_t m, double* d, const double* e_in, T* Q, int64_t ldq) {
  std::vector<double> e(static_cast<size_t>(m), 0.0), z(static_cast<size_t>(m) * size_t(m), 0.0);
  for (int64_t i = 0; i + 1 < m; ++i) e[size_t(i)] = e_in[i];
  for (int64_t i = 0; i < m; ++i) z[size_t(i + i * m)] = 1.0;
  const double eps = std::numeric_limits<double>::epsilon();
  for (int64_t l = 0; l < m; ++l) {
    int iter = 0;
    int64_t mm;
    do {
      for (mm = l; mm < m - 1; ++mm) {
        double dd = std::fabs(d[mm]) + std::fabs(d[mm + 1]);
        if (std::fabs(e[size_t(mm)]) <= eps * dd) break;
      }
      if (mm != l) {
        if (iter++ == 60) return false;
        double g = (d[l + 1] - d[l]) / (2.0 * e[size_t(l)]);
        double r = std::sqrt(g * g + 1.0);
        g = d[mm] - d[l] + e[size_t(l)] / (g + std::copysign(r, g));
        double s = 1.0, c = 1.0, p = 0.0;
        int64_t i;
        for (i = mm - 1; i >= l; --i) {
          double f = s * e[size_t(i)], b = c * e[size_t(i)];
          e[size_t(i + 1)] = (r = std::sqrt(f * f + g * g));  // block scaled to ~1: no overflow
          if (r == 0.0) {
            d[i + 1] -= p;
            e[size_t(mm)] = 0.0;
            break;
          }
          s = f / r;
          c = g / r;
          g = d[i + 1] - p;
          r = (d[i] - g) * s + 2.0 * c * b;
          d[i + 1] = g + (p = s * r);
          g = c * r - b;
          double* zi = z.data() + i * m;
          double* zj = zi + m;
          for (int64_t k = 0; k < m; ++k) {
            double t = zj[k];
            zj[k] = s * zi[k] + c * t;
            zi[k] = c * zi[k] - s * t;
          }
        }
        if (r == 0.0 && i >= l) continue;
        d[l] -= p;
        e[size_t(l)] = g;
        e[size_t(mm)] = 0.0;
      }
    } while (mm != l);
  }
  std::vector<int64_t> ord(static_cast<size_t>(m));
  std::iota(ord.begin(), ord.end(), 0);
  std::stable_sort(ord.begin(), ord.end(), [&](int64_t a, int64_t b) { return d[a] < d[b]; });
  std::vector<double> dv(d, d + m);
  for (int64_t j = 0; j < m; ++j) {
    int64_t s = ord[size_t(j)];
    d[j] = dv[size_t(s)];
    for (int64_t i = 0; i < m; ++i) Q[i + j * ldq] = T(z[size_t(i + s * m)]);
  }
  return true;
}

// Root i of the secular equation 1/beta + Σ_j z_j²/(dl_j − λ) = 0 (dl ascending, k poles,
// beta > 0). Returns org and tau with λ = dl[org] + tau, so that differences λ − dl_j
// are formed accurately as (dl[org] − dl_j) + tau.
void secular_root(int64_t k, int64_t i, const double* dl, const double* z2, double beta,
                  int64_t& org, double& tau) {
  const double eps = std::numeric_limits<double>::epsilon();
  const double rb = 1.0 / beta;
  double lo, hi;
  bool last = (i == k - 1);
  if (last) {
    org = i;
    double zs = 0;
    for (int64_t j = 0; j < k; ++j) zs += z2[j];
    lo = 0;
    hi = beta * zs;
    tau = hi;
  } else {
    double gap = dl[i + 1] - dl[i];
    double half = 0.5 * gap;
    double fm = rb;
    for (int64_t j = 0; j < k; ++j) fm += z2[j] / ((dl[j] - dl[i]) - half);
    if (fm >= 0) {
      org = i;
      lo = 0;
      hi = half;
    } else {
      org = i + 1;
      lo = -half;
      hi = 0;
    }
    tau = org == i ? 0.5 * hi : 0.5 * lo;
  }
  const double d0 = dl[org];
  const double di = dl[i] - d0;
  const double di1 = last ? 0.0 : dl[i + 1] - d0;
  for (int it = 0; it < 100; ++it) {
    double psi = 0, dpsi = 0, phi = 0, dphi = 0, erb = 0;
    for (int64_t j = 0; j <= i; ++j) {
      double inv = 1.0 / ((dl[j] - d0) - tau);
      double t = z2[j] * inv;
      psi += t;
      dpsi += t * inv;
    }
    for (int64_t j = i + 1; j < k; ++j) {
      double inv = 1.0 / ((dl[j] - d0) - tau);
      double t = z2[j] * inv;
      phi += t;
      dphi += t * inv;
    }
    erb = phi - psi;  // ψ ≤ 0 ≤ φ termwise, so Σ|t| = φ − ψ
    double f = rb + psi + phi;
    if (f == 0 || std::fabs(f) <= 4.0 * eps * double(k + 2) * (rb + erb)) return;
    if (f > 0) hi = tau; else lo = tau;
    if (hi - lo <= 2.0 * eps * std::max(std::fabs(lo), std::fabs(hi))) return;
    double D1 = di - tau, eta;
    bool ok = true;
    if (last) {
      double c = f - dpsi * D1;
      double s = dpsi * D1 * D1;
      if (c > 0) eta = D1 + s / c; else ok = false;
    } else {
      double D2 = di1 - tau;
      double c = f - dpsi * D1 - dphi * D2;
      double s = dpsi * D1 * D1, S = dphi * D2 * D2;
      double a = c * (D1 + D2) + s + S;
      double b = c * D1 * D2 + s * D2 + S * D1;
      if (c == 0) {
        eta = a != 0 ? b / a : 0.0;
      } else {
        double disc = std::max(0.0, a * a - 4.0 * b * c);
        double sq = std::sqrt(disc);
        double r1 = (a + sq) / (2 * c), r2 = (a - sq) / (2 * c);
        bool in1 = r1 > D1 && r1 < D2, in2 = r2 > D1 && r2 < D2;
        if (in1 && in2) eta = std::fabs(r1) < std::fabs(r2) ? r1 : r2;
        else if (in1) eta = r1;
        else if (in2) eta = r2;
        else ok = false;
      }
    }
    double nt = ok ? tau + eta : 0.5 * (lo + hi);
    if (!(nt > lo && nt < hi)) nt = 0.5 * (lo + hi);
    if (nt == tau) return;
    tau = nt;
  }
}

struct Scratch {
  std::vector<double> z, dl, zl, zhat, lam_tau, Ud, vals;
  std::vector<int64_t> idx, cols, org, perm, typ;
};

// Merges two solved halves: on entry d[0:n1], d[n1:m] are the eigenvalues of the two
// (rank-one-modified) halves and Q holds their eigenvectors block-diagonally; rho is the
// coupling element that was removed. On return d and Q are those of the whole block.
template <class T>
void merge(int64_t m, int64_t n1, double* d, T* Q, int64_t ldq, double rho) {
  const double eps = double(std::numeric_limits<T>::epsilon());
  Scratch s;
  s.z.resize(size_t(m));
  const double sg = rho < 0 ? -1.0 : 1.0;
  const double r2 = std::sqrt(0.5);
  for (int64_t j = 0; j < n1; ++j) s.z[size_t(j)] = double(Q[(n1 - 1) + j * ldq]) * r2;
  for (int64_t j = n1; j < m; ++j) s.z[size_t(j)] = sg * double(Q[n1 + j * ldq]) * r2;
  const double beta = 2.0 * std::fabs(rho);
  // Both halves are sorted; merge their order.
  s.idx.resize(size_t(m));
  std::iota(s.idx.begin(), s.idx.end(), 0);
  {
    std::vector<int64_t> o(static_cast<size_t>(m));
    std::merge(s.idx.begin(), s.idx.begin() + n1, s.idx.begin() + n1, s.idx.end(), o.begin(),
               [&](int64_t a, int64_t b) { return d[a] < d[b]; });
    s.idx.swap(o);
  }
  double dmax = 0, zmax = 0;
  for (int64_t j = 0; j < m; ++j) {
    dmax = std::max(dmax, std::fabs(d[j]));
    zmax = std::max(zmax, std::fabs(s.z[size_t(j)]));
  }
  const double tol = 8.0 * eps * std::max(dmax, zmax);
  s.typ.resize(size_t(m));
  for (int64_t j = 0; j < m; ++j) s.typ[size_t(j)] = j < n1 ? 1 : 2;
  std::vector<double> dcur(d, d + m);
  std::vector<std::pair<double, int64_t>> defl;  // (value, column)
  int64_t p = -1;
  auto keep = [&](int64_t c) {
    s.cols.push_back(c);
    s.dl.push_back(dcur[size_t(c)]);
    s.zl.push_back(s.z[size_t(c)]);
  };
  for (int64_t t = 0; t < m; ++t) {
    int64_t j = s.idx[size_t(t)];
    if (beta * std::fabs(s.z[size_t(j)]) <= tol) {
      defl.push_back({dcur[size_t(j)], j});
      continue;
    }
    if (p < 0) {
      p = j;
      continue;
    }
    double zp = s.z[size_t(p)], zj = s.z[size_t(j)];
    double r = std::hypot(zp, zj);
    double c = zj / r, sn = zp / r;
    if (std::fabs((dcur[size_t(j)] - dcur[size_t(p)]) * c * sn) <= tol) {
      // Rotate so that z_p becomes 0: q_j' = s·q_p + c·q_j, q_p' = c·q_p − s·q_j.
      s.z[size_t(j)] = r;
      s.z[size_t(p)] = 0;
      double dp = dcur[size_t(p)], dj = dcur[size_t(j)];
      dcur[size_t(p)] = c * c * dp + sn * sn * dj;
      dcur[size_t(j)] = sn * sn * dp + c * c * dj;
      T* qp = Q + p * ldq;
      T* qj = Q + j * ldq;
      const T cf = T(c), sf = T(sn);
      for (int64_t i = 0; i < m; ++i) {
        T a = qp[i], b = qj[i];
        qj[i] = sf * a + cf * b;
        qp[i] = cf * a - sf * b;
      }
      if (s.typ[size_t(p)] != s.typ[size_t(j)]) s.typ[size_t(p)] = s.typ[size_t(j)] = 3;
      defl.push_back({dcur[size_t(p)], p});
      p = j;
    } else {
      keep(p);
      p = j;
    }
  }
  if (p >= 0) keep(p);
  const int64_t k = int64_t(s.cols.size());

  // Reused between merges (grow-only, never zero-filled again): fresh m×m buffers per
  // merge cost more in page faults and memset than the merge's own O(m²) work.
  thread_local std::vector<T> Ybuf, Wbuf, Ubuf;
  if (Ybuf.size() < size_t(m) * size_t(m)) Ybuf.resize(size_t(m) * size_t(m));
  T* Y = Ybuf.data();
  std::vector<double> vals(static_cast<size_t>(m));
  if (k > 0) {
    std::vector<double> z2(static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j) z2[size_t(j)] = s.zl[size_t(j)] * s.zl[size_t(j)];
    s.org.resize(size_t(k));
    s.lam_tau.resize(size_t(k));
    for (int64_t i = 0; i < k; ++i)
      secular_root(k, i, s.dl.data(), z2.data(), beta, s.org[size_t(i)], s.lam_tau[size_t(i)]);
    auto diff = [&](int64_t i, int64_t j) {  // λ_i − dl_j
      return (s.dl[size_t(s.org[size_t(i)])] - s.dl[size_t(j)]) + s.lam_tau[size_t(i)];
    };
    // Löwner: the z for which the computed roots are exact eigenvalues.
    s.zhat.resize(size_t(k));
    for (int64_t j = 0; j < k; ++j) {
      double v = diff(k - 1, j) / beta;
      for (int64_t i = 0; i < j; ++i) v *= diff(i, j) / (s.dl[size_t(i)] - s.dl[size_t(j)]);
      for (int64_t i = j; i < k - 1; ++i) v *= diff(i, j) / (s.dl[size_t(i + 1)] - s.dl[size_t(j)]);
      s.zhat[size_t(j)] = std::copysign(std::sqrt(std::fabs(v)), s.zl[size_t(j)]);
    }
    // Group the kept columns by type (top-only, dense, bottom-only) so that the products
    // skip the zero halves.
    std::vector<int64_t> g;
    for (int tt : {1, 3, 2})
      for (int64_t j = 0; j < k; ++j)
        if (s.typ[size_t(s.cols[size_t(j)])] == tt) g.push_back(j);
    int64_t k1 = 0, k3 = 0;
    for (int64_t j = 0; j < k; ++j) {
      int tt = int(s.typ[size_t(s.cols[size_t(j)])]);
      k1 += tt == 1;
      k3 += tt == 3;
    }
    // Up(r, i) = u_i[g[r]], u_i[j] = ẑ_j/(dl_j − λ_i) normalised.
    if (Ubuf.size() < size_t(k) * size_t(k)) Ubuf.resize(size_t(k) * size_t(k));
    T* Up = Ubuf.data();
    std::vector<double> col(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      double nrm = 0;
      for (int64_t j = 0; j < k; ++j) {
        double u = -s.zhat[size_t(j)] / diff(i, j);
        col[size_t(j)] = u;
        nrm += u * u;
      }
      nrm = 1.0 / std::sqrt(nrm);
      for (int64_t r = 0; r < k; ++r) Up[size_t(r + i * k)] = T(col[size_t(g[size_t(r)])] * nrm);
      vals[size_t(i)] = s.dl[size_t(s.org[size_t(i)])] + s.lam_tau[size_t(i)];
    }
    if (Wbuf.size() < size_t(m) * size_t(k)) Wbuf.resize(size_t(m) * size_t(k));
    T* W = Wbuf.data();
    for (int64_t r = 0; r < k; ++r)
      std::copy(Q + s.cols[size_t(g[size_t(r)])] * ldq, Q + s.cols[size_t(g[size_t(r)])] * ldq + m,
                W + r * m);
    // Top rows: columns of types 1 and 3; bottom rows: types 3 and 2.
    if (k1 + k3 > 0)
      gemm_cm<T>(false, false, n1, k, k1 + k3, T(1), W, m, Up, k, T(0), Y, m);
    else
      for (int64_t i = 0; i < k; ++i) std::fill(Y + i * m, Y + i * m + n1, T(0));
    if (k - k1 > 0)
      gemm_cm<T>(false, false, m - n1, k, k - k1, T(1), W + n1 + k1 * m, m,
                 Up + k1, k, T(0), Y + n1, m);
    else
      for (int64_t i = 0; i < k; ++i) std::fill(Y + i * m + n1, Y + (i + 1) * m, T(0));
  }
  for (size_t r = 0; r < defl.size(); ++r) {
    vals[size_t(k) + r] = defl[r].first;
    std::copy(Q + defl[r].second * ldq, Q + defl[r].second * ldq + m, Y + (int64_t(k) + int64_t(r)) * m);
  }
  std::vector<int64_t> perm(static_cast<size_t>(m));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return vals[size_t(a)] < vals[size_t(b)]; });
  for (int64_t j = 0; j < m; ++j) {
    d[j] = vals[size_t(perm[size_t(j)])];
    std::copy(Y + perm[size_t(j)] * m, Y + (perm[size_t(j)] + 1) * m, Q + j * ldq);
  }
}

template <class T>
bool dc_solve(int64_t m, double* d, double* e, T* Q, int64_t ldq) {
  if (m <= kLeaf) return ql_leaf(m, d, e, Q, ldq);
  int64_t n1 = m / 2;
  double rho = e[n1 - 1];
  d[n1 - 1] -= std::fabs(rho);
  d[n1] -= std::fabs(rho);
  bool ok1 = true, ok2 = true;
  T* Q2 = Q + n1 + n1 * ldq;
  if (m >= 192 && num_threads() > 1) {
    // Solve the halves side by side; the work inside runs on one thread each.
    std::exception_ptr err[2];
    run_team(2, [&](int tid, int nth, Barrier&) {
      for (int part = tid; part < 2; part += nth) {
        try {
          if (part == 0) ok1 = dc_solve(n1, d, e, Q, ldq);
          else ok2 = dc_solve(m - n1, d + n1, e + n1, Q2, ldq);
        } catch (...) {
          err[part] = std::current_exception();
        }
      }
    });
    for (auto& x : err)
      if (x) std::rethrow_exception(x);
  } else {
    ok1 = dc_solve(n1, d, e, Q, ldq);
    ok2 = dc_solve(m - n1, d + n1, e + n1, Q2, ldq);
  }
  if (!ok1 || !ok2) return false;
  merge(m, n1, d, Q, ldq, rho);
  return true;
}

}  // namespace

template <class T>
bool tridiag_eigh(int64_t n, double* d, double* e, T* Z, int64_t ldz) {
  for (int64_t j = 0; j < n; ++j) std::fill(Z + j * ldz, Z + j * ldz + n, T(0));
  if (n == 0) return true;
  const double eps = double(std::numeric_limits<T>::epsilon());
  // Split into independent blocks where the coupling is negligible.
  int64_t s = 0;
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) {
    bool end = (i == n - 1) || std::fabs(e[i]) <= eps * std::sqrt(std::fabs(d[i])) * std::sqrt(std::fabs(d[i + 1]));
    if (!end) continue;
    int64_t m = i + 1 - s;
    if (m == 1) Z[s + s * ldz] = T(1);
    else ok = ok && dc_solve(m, d + s, e + s, Z + s + s * ldz, ldz);
    s = i + 1;
  }
  if (!ok) return false;
  // Blocks are sorted internally; sort the whole.
  bool sorted = true;
  for (int64_t i = 0; i + 1 < n; ++i) sorted = sorted && d[i] <= d[i + 1];
  if (!sorted) {
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return d[a] < d[b]; });
    std::vector<double> dv(d, d + n);
    std::vector<T> Zc(static_cast<size_t>(n) * size_t(n));
    for (int64_t j = 0; j < n; ++j) std::copy(Z + j * ldz, Z + j * ldz + n, Zc.begin() + j * n);
    for (int64_t j = 0; j < n; ++j) {
      d[j] = dv[size_t(perm[size_t(j)])];
      std::copy(Zc.begin() + perm[size_t(j)] * n, Zc.begin() + (perm[size_t(j)] + 1) * n, Z + j * ldz);
    }
  }
  return true;
}

template bool tridiag_eigh<float>(int64_t, double*, double*, float*, int64_t);
template bool tridiag_eigh<double>(int64_t, double*, double*, double*, int64_t);

}  // namespace kfac::cpu::eig
