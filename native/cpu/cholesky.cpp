// Blocked Cholesky, triangular inverse and LᵀL product (LAPACK's potrf/trtri/lauum
// structure), each with the bulk of its flops in sgemm calls; small diagonal blocks are
// handled in float64. A float64 path is the fallback of the damped inverse.
// Optimised even when the build passes no -O flag (binding.gyp's cflags! strips them).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "cholesky.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../core/error.h"
#include "factor.h"
#include "gemm.h"
#include "reduce.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

int64_t block_size(int64_t n) { return n >= 512 ? 128 : 64; }

// Scratch reused by one thread's calls (no allocation in the steady state).
std::vector<float>& scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf;
}

// Unblocked Cholesky of a b×b block in float64 arithmetic; writes L (lower) back and
// returns 0 or j+1 for a bad pivot. `inv` (b×b, dense, zero upper) receives L⁻¹.
int64_t potrf_block(float* A, int64_t b, int64_t lda, double* L, double* Linv) {
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j <= i; ++j) L[i * b + j] = double(A[i * lda + j]);
  for (int64_t j = 0; j < b; ++j) {
    double s = L[j * b + j];
    for (int64_t k = 0; k < j; ++k) s -= L[j * b + k] * L[j * b + k];
    if (!(s > 0.0) || !std::isfinite(s)) return j + 1;
    double piv = std::sqrt(s);
    L[j * b + j] = piv;
    for (int64_t i = j + 1; i < b; ++i) {
      double t = L[i * b + j];
      for (int64_t k = 0; k < j; ++k) t -= L[i * b + k] * L[j * b + k];
      L[i * b + j] = t / piv;
    }
  }
  // L⁻¹ column by column (forward substitution on the unit vectors).
  for (int64_t c = 0; c < b; ++c) {
    for (int64_t i = 0; i < c; ++i) Linv[i * b + c] = 0.0;
    Linv[c * b + c] = 1.0 / L[c * b + c];
    for (int64_t i = c + 1; i < b; ++i) {
      double t = 0.0;
      for (int64_t k = c; k < i; ++k) t -= L[i * b + k] * Linv[k * b + c];
      Linv[i * b + c] = t / L[i * b + i];
    }
  }
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j <= i; ++j) A[i * lda + j] = float(L[i * b + j]);
  return 0;
}

}  // namespace

// A[n×n] → L (lower). For each block column k (width b):
//   A_kk   -= L_k,<k · L_k,<kᵀ            (syrk, lower)
//   L_kk    = chol(A_kk)                   (float64)
//   A_>k,k -= L_>k,<k · L_k,<kᵀ           (gemm)
//   L_>k,k  = A_>k,k · L_kk⁻ᵀ              (gemm with the explicit float64 inverse)
int64_t potrf_lower(float* A, int64_t n, int64_t lda) {
  if (n <= 0) return 0;
  const int64_t nb = block_size(n);
  std::vector<double> L(size_t(nb * nb)), Linv(size_t(nb * nb));
  std::vector<float> inv_t(size_t(nb * nb));
  for (int64_t k = 0; k < n; k += nb) {
    int64_t b = std::min(nb, n - k), m = n - k - b;
    float* Akk = A + k * lda + k;
    if (k > 0) syrk_lower_n(b, k, -1.f, A + k * lda, lda, 1.f, Akk, lda);
    int64_t info = potrf_block(Akk, b, lda, L.data(), Linv.data());
    if (info) return k + info;
    if (m == 0) break;
    float* panel = A + (k + b) * lda + k;
    if (k > 0) sgemm(false, true, m, b, k, -1.f, A + (k + b) * lda, lda, A + k * lda, lda, 1.f, panel, lda);
    for (int64_t i = 0; i < b; ++i)
      for (int64_t j = 0; j < b; ++j) inv_t[size_t(i * b + j)] = float(Linv[size_t(i * b + j)]);
    std::vector<float>& tmp = scratch(size_t(m * b));
    sgemm(false, true, m, b, b, 1.f, panel, lda, inv_t.data(), b, 0.f, tmp.data(), b);
    for (int64_t i = 0; i < m; ++i) std::copy(tmp.data() + i * b, tmp.data() + (i + 1) * b, panel + i * lda);
  }
  return 0;
}

// L → L⁻¹ from the last block column to the first (the trailing part is already inverted):
//   X_>j,j = −(L⁻¹)_>j,>j · L_>j,j · (L_jj)⁻¹
void trtri_lower(float* Lm, int64_t n, int64_t ldl) {
  if (n <= 0) return;
  const int64_t nb = block_size(n);
  std::vector<double> L(size_t(nb * nb)), Linv(size_t(nb * nb));
  std::vector<float> inv_d(size_t(nb * nb));
  int64_t last = ((n - 1) / nb) * nb;
  for (int64_t j = last; j >= 0; j -= nb) {
    int64_t b = std::min(nb, n - j), m = n - j - b;
    float* Ljj = Lm + j * ldl + j;
    // Inverse of the diagonal block in float64 (forward substitution).
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c < b; ++c) L[size_t(r * b + c)] = c <= r ? double(Ljj[r * ldl + c]) : 0.0;
    for (int64_t c = 0; c < b; ++c) {
      for (int64_t r = 0; r < c; ++r) Linv[size_t(r * b + c)] = 0.0;
      Linv[size_t(c * b + c)] = 1.0 / L[size_t(c * b + c)];
      for (int64_t r = c + 1; r < b; ++r) {
        double t = 0.0;
        for (int64_t k = c; k < r; ++k) t -= L[size_t(r * b + k)] * Linv[size_t(k * b + c)];
        Linv[size_t(r * b + c)] = t / L[size_t(r * b + r)];
      }
    }
    for (int64_t r = 0; r < b * b; ++r) inv_d[size_t(r)] = float(Linv[size_t(r)]);
    if (m > 0) {
      float* panel = Lm + (j + b) * ldl + j;
      std::vector<float>& tmp = scratch(size_t(m * b));
      // tmp = (L⁻¹)_>j,>j · L_>j,j   (the trailing block is lower with a zero upper part)
      sgemm(false, false, m, b, m, 1.f, Lm + (j + b) * ldl + (j + b), ldl, panel, ldl, 0.f, tmp.data(), b);
      // panel = −tmp · (L_jj)⁻¹
      sgemm(false, false, m, b, b, -1.f, tmp.data(), b, inv_d.data(), b, 0.f, panel, ldl);
    }
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c < b; ++c) Ljj[r * ldl + c] = inv_d[size_t(r * b + c)];
  }
}

// T (lower) → TᵀT, top block row to bottom:
//   M_i,<i = T_iiᵀ·T_i,<i + T_>i,iᵀ·T_>i,<i ;  M_ii = T_iiᵀ·T_ii + T_>i,iᵀ·T_>i,i
void lauum_lower(float* M, int64_t n, int64_t ldm) {
  if (n <= 0) return;
  const int64_t nb = block_size(n);
  std::vector<float> Tii(size_t(nb * nb)), Dii(size_t(nb * nb));
  for (int64_t i = 0; i < n; i += nb) {
    int64_t b = std::min(nb, n - i), m = n - i - b;
    float* Mii = M + i * ldm + i;
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c < b; ++c) Tii[size_t(r * b + c)] = c <= r ? Mii[r * ldm + c] : 0.f;
    if (i > 0) {
      std::vector<float>& tmp = scratch(size_t(b * i));
      sgemm(true, false, b, i, b, 1.f, Tii.data(), b, M + i * ldm, ldm, 0.f, tmp.data(), i);
      if (m > 0)
        sgemm(true, false, b, i, m, 1.f, M + (i + b) * ldm + i, ldm, M + (i + b) * ldm, ldm, 1.f, tmp.data(), i);
      for (int64_t r = 0; r < b; ++r) std::copy(tmp.data() + r * i, tmp.data() + (r + 1) * i, M + (i + r) * ldm);
    }
    sgemm(true, false, b, b, b, 1.f, Tii.data(), b, Tii.data(), b, 0.f, Dii.data(), b);
    if (m > 0) syrk_lower_t(b, m, 1.f, M + (i + b) * ldm + i, ldm, 1.f, Dii.data(), b);
    for (int64_t r = 0; r < b; ++r)
      for (int64_t c = 0; c <= r; ++c) Mii[r * ldm + c] = Dii[size_t(r * b + c)];
  }
  mirror_lower(M, n, ldm);
}

namespace {

// (A + delta·I)⁻¹ in float64 throughout; false when A + delta·I is not positive definite.
bool damped_inverse_f64(const float* A, int64_t n, int64_t lda, float delta, float* out, int64_t ldo) {
  std::vector<double> L(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) L[size_t(i * n + j)] = double(A[i * lda + j]) + (i == j ? double(delta) : 0.0);
  for (int64_t j = 0; j < n; ++j) {
    double s = L[size_t(j * n + j)];
    for (int64_t k = 0; k < j; ++k) s -= L[size_t(j * n + k)] * L[size_t(j * n + k)];
    if (!(s > 0.0) || !std::isfinite(s)) return false;
    double piv = std::sqrt(s);
    L[size_t(j * n + j)] = piv;
    parallel_for(n - j - 1, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = j + 1 + b; i < j + 1 + e; ++i) {
        double t = L[size_t(i * n + j)];
        for (int64_t k = 0; k < j; ++k) t -= L[size_t(i * n + k)] * L[size_t(j * n + k)];
        L[size_t(i * n + j)] = t / piv;
      }
    });
  }
  // W = L⁻¹ (lower), column by column in parallel.
  std::vector<double> W(size_t(n * n), 0.0);
  parallel_for(n, 4, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      W[size_t(c * n + c)] = 1.0 / L[size_t(c * n + c)];
      for (int64_t r = c + 1; r < n; ++r) {
        double t = 0.0;
        for (int64_t k = c; k < r; ++k) t -= L[size_t(r * n + k)] * W[size_t(k * n + c)];
        W[size_t(r * n + c)] = t / L[size_t(r * n + r)];
      }
    }
  });
  // out = WᵀW: out[i][j] = Σ_{k ≥ max(i,j)} W[k][i]·W[k][j]
  bool finite = true;
  std::vector<char> bad(size_t(n), 0);
  parallel_for(n, 4, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0.0;
        for (int64_t k = i; k < n; ++k) s += W[size_t(k * n + i)] * W[size_t(k * n + j)];
        float v = float(s);
        if (!std::isfinite(v)) bad[size_t(i)] = 1;
        out[i * ldo + j] = v;
        out[j * ldo + i] = v;
      }
  });
  for (char b : bad) finite = finite && !b;
  return finite;
}

}  // namespace

InverseInfo damped_inverse(const float* A, int64_t n, int64_t lda, float delta, float* out,
                           int64_t ldo, const char* name) {
  InverseInfo info;
  if (n <= 0) return info;
  // Keep the input when working in place: the float64 retry needs it.
  std::vector<float> keep;
  const float* src = A;
  if (A == out) {
    keep.resize(size_t(n * n));
    for (int64_t i = 0; i < n; ++i) std::copy(A + i * lda, A + i * lda + n, keep.data() + i * n);
    src = keep.data();
    lda = n;
  }
  // out ← lower(A) + delta·I, upper zeroed (trtri and lauum want zeros there).
  parallel_for(n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* o = out + i * ldo;
      const float* a = src + i * lda;
      for (int64_t j = 0; j < i; ++j) o[j] = a[j];
      o[i] = a[i] + delta;
      std::fill(o + i + 1, o + n, 0.f);
    }
  });
  bool ok = potrf_lower(out, n, ldo) == 0;
  if (ok) {
    for (int64_t i = 0; i < n; ++i) std::fill(out + i * ldo + i + 1, out + i * ldo + n, 0.f);
    trtri_lower(out, n, ldo);
    lauum_lower(out, n, ldo);
    bool finite = true;
    for (int64_t i = 0; i < n && finite; ++i) finite = all_finite(out + i * ldo, n);
    ok = finite;
  }
  if (ok) return info;
  info.used_f64 = true;
  if (!damped_inverse_f64(src, n, lda, delta, out, ldo))
    throw Error(ErrorCode::Numerical,
                std::string(name) + ": the damped matrix is not positive definite (Cholesky failed in float32 and float64); raise the damping",
                name, "a symmetric positive definite matrix after damping", "a matrix that is not positive definite");
  return info;
}

}  // namespace kfac::cpu
