// Cyclic Jacobi rotations (Rutishauser's formulas) on a full symmetric matrix in double:
// the small-matrix solver of the batched path and the inner solver of the warm refresh.
#include <cmath>

#include "eigh_detail.h"

namespace kfac::cpu::eig {

bool jacobi_sweeps(int64_t n, double* S, double* Vt, double tol, double skip, int max_sweeps,
                   int64_t max_rotations, JacobiStats& st) {
  double total = 0, off = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double v = S[i * n + j] * S[i * n + j];
      total += v;
      if (i != j) off += v;
    }
  const double limit = tol * tol * total;
  while (off > limit) {
    if (st.sweeps >= max_sweeps) return false;
    ++st.sweeps;
    const int64_t before = st.rotations;
    for (int64_t p = 0; p + 1 < n; ++p) {
      double* sp = S + p * n;
      for (int64_t q = p + 1; q < n; ++q) {
        double apq = sp[q];
        if (std::fabs(apq) <= skip || apq == 0) continue;
        if (++st.rotations > max_rotations) return false;
        double* sq = S + q * n;
        const double app = sp[p], aqq = sq[q];
        double theta = (aqq - app) / (2 * apq);
        double t = std::copysign(1.0, theta) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double c = 1 / std::sqrt(t * t + 1), s = t * c;
        // Rows p and q of JᵀSJ off the 2×2 block are the rotated rows; the columns are
        // their copies (symmetry); the block itself is set exactly.
        for (int64_t k = 0; k < n; ++k) {
          double a = sp[k], b = sq[k];
          sp[k] = c * a - s * b;
          sq[k] = s * a + c * b;
        }
        sp[p] = app - t * apq;
        sq[q] = aqq + t * apq;
        sp[q] = sq[p] = 0;
        for (int64_t k = 0; k < n; ++k) {
          if (k == p || k == q) continue;
          S[k * n + p] = sp[k];
          S[k * n + q] = sq[k];
        }
        double* vp = Vt + p * n;
        double* vq = Vt + q * n;
        for (int64_t k = 0; k < n; ++k) {
          double a = vp[k], b = vq[k];
          vp[k] = c * a - s * b;
          vq[k] = s * a + c * b;
        }
      }
    }
    if (st.rotations == before) return true;  // everything left is below `skip`
    off = 0;
    total = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double v = S[i * n + j] * S[i * n + j];
        total += v;
        if (i != j) off += v;
      }
  }
  return true;
}

}  // namespace kfac::cpu::eig
