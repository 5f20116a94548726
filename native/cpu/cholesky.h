// Cholesky factorisation and the damped inverse of symmetric positive definite matrices.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// A[n×n] = L·Lᵀ in place: L overwrites the lower triangle (row-major, leading dimension
// lda); the strictly upper triangle is used as scratch. Returns 0 on success, or j+1
// when the pivot of column j is not positive and finite (A is then partly overwritten).
// Blocked, left-looking; the big updates go through sgemm.
int64_t potrf_lower(float* A, int64_t n, int64_t lda);

// L[n×n] lower triangular → L⁻¹ in place (lower triangle). Requires the strictly upper
// triangle to be zero on entry (it is zero on return). Blocked; the updates are sgemm.
void trtri_lower(float* L, int64_t n, int64_t ldl);

// M[n×n] holding a lower-triangular T (strictly upper triangle zero) → Tᵀ·T, symmetric,
// both triangles written. Blocked; the updates are sgemm.
void lauum_lower(float* M, int64_t n, int64_t ldm);

// How a damped inverse was computed.
struct InverseInfo {
  bool used_f64 = false;  // the float32 factorisation failed and float64 succeeded
};

// out[n×n] = (A + delta·I)⁻¹ for a symmetric A[n×n] (only its lower triangle is read).
// Overwrites out; out may be A itself (same pointer and leading dimension), any other
// overlap is not allowed. Tries float32 (potrf → trtri → lauum); when A + delta·I is
// not positive definite in float32, or the result is not finite, retries in float64.
// Throws kfac::Error(Numerical) naming `name` when float64 fails as well.
InverseInfo damped_inverse(const float* A, int64_t n, int64_t lda, float delta, float* out,
                           int64_t ldo, const char* name);

}  // namespace kfac::cpu
