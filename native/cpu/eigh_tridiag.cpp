// Householder tridiagonalisation of a symmetric matrix and the back-transformation of
// eigenvectors by the same reflectors. Column-major, lower triangle (see eigh_detail.h).
//
// Blocked as LAPACK's sytrd/latrd: a panel of nb columns is reduced with matrix-vector
// products against the not-yet-updated trailing matrix plus low-rank corrections, and
// the trailing matrix then takes one rank-2nb update (A −= V Wᵀ + W Vᵀ) through GEMM.
// Half of the flops stay in symv (memory bound); the other half run in GEMM.
#include <algorithm>
#include <cmath>
#include <vector>

#include "eigh_detail.h"

namespace kfac::cpu::eig {

namespace {

constexpr int64_t kPanel = 32;       // columns per panel
constexpr int64_t kCrossover = 96;   // the last columns are reduced unblocked

// Householder reflector H = I − tau·v vᵀ with H·[alpha; x] = [beta; 0], v = [1; x'].
// x (length m) is overwritten by x'; returns beta, sets tau.
template <class T>
T make_reflector(int64_t m, T alpha, T* x, T& tau) {
  double ss = 0;
  for (int64_t i = 0; i < m; ++i) ss += double(x[i]) * double(x[i]);
  if (ss == 0) {
    tau = 0;
    return alpha;
  }
  double beta = -std::copysign(std::sqrt(double(alpha) * double(alpha) + ss), double(alpha));
  tau = T((beta - double(alpha)) / beta);
  T s = T(1.0 / (double(alpha) - beta));
  for (int64_t i = 0; i < m; ++i) x[i] *= s;
  return T(beta);
}

// Unblocked reduction of the trailing part starting at column i0 (sytd2).
template <class T>
void reduce_unblocked(int64_t n, int64_t i0, T* A, int64_t ld, T* d, T* e, T* tau) {
  std::vector<T> w(static_cast<size_t>(std::max<int64_t>(n, 1)));
  for (int64_t i = i0; i + 1 < n; ++i) {
    int64_t m = n - i - 1;  // size of the trailing block A(i+1:n, i+1:n)
    T* col = A + (i + 1) + i * ld;
    T t;
    e[i] = make_reflector(m - 1, col[0], col + 1, t);
    tau[i] = t;
    d[i] = A[i + i * ld];
    if (t != T(0)) {
      col[0] = 1;
      T* A22 = A + (i + 1) + (i + 1) * ld;
      symv_lower(m, A22, ld, col, w.data());
      for (int64_t k = 0; k < m; ++k) w[size_t(k)] *= t;
      T alpha = T(-0.5) * t * dot(m, w.data(), col);
      axpy(m, alpha, col, w.data());
      // A22 −= v wᵀ + w vᵀ (lower)
      for (int64_t j = 0; j < m; ++j) {
        T* a = A22 + j + j * ld;
        axpy(m - j, -w[size_t(j)], col + j, a);
        axpy(m - j, -col[j], w.data() + j, a);
      }
    }
    col[0] = e[i];
  }
  d[n - 1] = A[(n - 1) + (n - 1) * ld];
}

// One panel of kPanel columns of the trailing m×m block Ap (latrd, lower). On return the
// panel's reflectors are in Ap's columns (with explicit unit entries) and W holds the
// m×nb matrix for the trailing update.
template <class T>
void reduce_panel(int64_t m, int64_t nb, T* Ap, int64_t ld, T* W, int64_t ldw, T* e, T* tau) {
  std::vector<T> tmp(static_cast<size_t>(nb));
  for (int64_t c = 0; c < nb; ++c) {
    T* col = Ap + c * ld;
    // Bring column c up to date with the panel's earlier reflectors.
    for (int64_t p = 0; p < c; ++p) {
      axpy(m - c, -W[c + p * ldw], Ap + c + p * ld, col + c);
      axpy(m - c, -Ap[c + p * ld], W + c + p * ldw, col + c);
    }
    int64_t mv = m - c - 1;  // length of v
    T t;
    e[c] = make_reflector(mv - 1, col[c + 1], col + c + 2, t);
    tau[c] = t;
    col[c + 1] = 1;
    T* v = col + c + 1;
    T* w = W + (c + 1) + c * ldw;
    symv_lower(mv, Ap + (c + 1) + (c + 1) * ld, ld, v, w);
    if (c > 0) {
      for (int64_t p = 0; p < c; ++p) tmp[size_t(p)] = dot(mv, W + (c + 1) + p * ldw, v);
      for (int64_t p = 0; p < c; ++p) axpy(mv, -tmp[size_t(p)], Ap + (c + 1) + p * ld, w);
      for (int64_t p = 0; p < c; ++p) tmp[size_t(p)] = dot(mv, Ap + (c + 1) + p * ld, v);
      for (int64_t p = 0; p < c; ++p) axpy(mv, -tmp[size_t(p)], W + (c + 1) + p * ldw, w);
    }
    for (int64_t k = 0; k < mv; ++k) w[k] *= t;
    T alpha = T(-0.5) * t * dot(mv, w, v);
    axpy(mv, alpha, v, w);
  }
}

}  // namespace

template <class T>
void tridiagonalize(int64_t n, T* A, int64_t ld, T* d, T* e, T* tau) {
  if (n <= 0) return;
  if (n == 1) {
    d[0] = A[0];
    return;
  }
  int64_t i = 0;
  if (n > kCrossover + kPanel) {
    const int64_t nb = kPanel;
    std::vector<T> W(static_cast<size_t>(n) * size_t(nb));
    for (; i + nb + kCrossover < n; i += nb) {
      int64_t m = n - i;
      T* Ap = A + i + i * ld;
      reduce_panel(m, nb, Ap, ld, W.data(), m, e + i, tau + i);
      // Trailing update, lower triangle only, in column blocks:
      // A(nb:m, nb:m) −= V Wᵀ + W Vᵀ with V = Ap(nb:m, 0:nb), W = W(nb:m, 0:nb).
      int64_t m2 = m - nb;
      T* A2 = Ap + nb + nb * ld;
      const T* V2 = Ap + nb;
      const T* W2 = W.data() + nb;
      const int64_t bs = std::max<int64_t>(64, (m2 + 3) / 4);
      for (int64_t j0 = 0; j0 < m2; j0 += bs) {
        int64_t jb = std::min(bs, m2 - j0);
        T* C = A2 + j0 + j0 * ld;
        gemm_cm<T>(false, true, m2 - j0, jb, nb, T(-1), V2 + j0, ld, W2 + j0, m, T(1), C, ld);
        gemm_cm<T>(false, true, m2 - j0, jb, nb, T(-1), W2 + j0, m, V2 + j0, ld, T(1), C, ld);
      }
      for (int64_t c = 0; c < nb; ++c) {
        Ap[(c + 1) + c * ld] = e[i + c];
        d[i + c] = Ap[c + c * ld];
      }
    }
  }
  reduce_unblocked(n, i, A, ld, d, e, tau);
}

template <class T>
void apply_q(int64_t n, const T* A, int64_t ld, const T* tau, T* Z, int64_t ldz, int64_t ncols) {
  int64_t nref = n - 1;  // reflectors H_0 … H_{n-2}
  if (nref <= 0 || ncols <= 0) return;
  const int64_t nb = n >= 512 ? 64 : 32;
  std::vector<T> V, S, Tm, Wk, Wt;
  // Blocks of reflectors from the last one backwards: Z ← H_b0 … H_b1-1 · Z.
  int64_t b1 = nref;
  while (b1 > 0) {
    int64_t b0 = std::max<int64_t>(0, b1 - nb);
    int64_t k = b1 - b0;
    int64_t r0 = b0 + 1, m = n - r0;
    V.assign(size_t(m) * size_t(k), T(0));
    for (int64_t c = 0; c < k; ++c) {
      int64_t g1 = b0 + c + 1;  // global row of the unit entry
      T* vc = V.data() + c * m;
      vc[g1 - r0] = 1;
      for (int64_t g = g1 + 1; g < n; ++g) vc[g - r0] = A[g + (b0 + c) * ld];
    }
    // T (k×k, upper): T(c,c) = tau_c, T(0:c, c) = −tau_c · T(0:c, 0:c) · V(:,0:c)ᵀ v_c.
    S.assign(size_t(k) * size_t(k), T(0));
    gemm_cm<T>(true, false, k, k, m, T(1), V.data(), m, V.data(), m, T(0), S.data(), k);
    Tm.assign(size_t(k) * size_t(k), T(0));
    for (int64_t c = 0; c < k; ++c) {
      T tc = tau[b0 + c];
      for (int64_t r = 0; r < c; ++r) {
        T s = 0;
        for (int64_t q = r; q < c; ++q) s += Tm[r + q * k] * S[q + c * k];
        Tm[r + c * k] = -tc * s;
      }
      Tm[c + c * k] = tc;
    }
    // Wk = Vᵀ Z(r0:n, :) ; Wt = T·Wk ; Z(r0:n, :) −= V·Wt
    Wk.resize(size_t(k) * size_t(ncols));
    Wt.resize(size_t(k) * size_t(ncols));
    gemm_cm<T>(true, false, k, ncols, m, T(1), V.data(), m, Z + r0, ldz, T(0), Wk.data(), k);
    gemm_cm<T>(false, false, k, ncols, k, T(1), Tm.data(), k, Wk.data(), k, T(0), Wt.data(), k);
    gemm_cm<T>(false, false, m, ncols, k, T(-1), V.data(), m, Wt.data(), k, T(1), Z + r0, ldz);
    b1 = b0;
  }
}

template void tridiagonalize<float>(int64_t, float*, int64_t, float*, float*, float*);
template void tridiagonalize<double>(int64_t, double*, int64_t, double*, double*, double*);
template void apply_q<float>(int64_t, const float*, int64_t, const float*, float*, int64_t, int64_t);
template void apply_q<double>(int64_t, const double*, int64_t, const double*, double*, int64_t,
                              int64_t);

}  // namespace kfac::cpu::eig
