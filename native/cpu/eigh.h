// Symmetric eigendecomposition on the CPU: cold solve, warm refresh from a previous
// basis, and many small matrices at once. All matrices are row-major float32.
// Eigenvalues ascend; eigenvector j is column j of `vectors`, so A = Q·diag(w)·Qᵀ.
#pragma once
#include <cstdint>

namespace kfac::cpu {

struct EighOptions {
  bool clamp_nonneg = false;  // clamp eigenvalues at 0 (PSD Kronecker factors)
};

struct EighReport {
  bool retried_double = false;  // the float32 solve failed and float64 was used
};

// A: [n, n] symmetric (the mean of A and Aᵀ is used). values: [n]; vectors: [n, n].
// Throws NotFinite for NaN/Inf in A, Numerical when even the float64 retry fails.
EighReport eigh(int64_t n, const float* A, float* values, float* vectors, const EighOptions& opt);

struct RefreshOptions {
  bool clamp_nonneg = false;
  double max_residual = 1e-4;     // above this ‖AQ − QΛ‖_F/‖A‖_F the basis is stale
  double max_offdiag = 0.25;      // above this off(QᵀAQ)/‖A‖_F the basis is stale
};

struct RefreshReport {
  double residual = 0;        // ‖AQ − QΛ‖_F / ‖A‖_F of the returned pair
  double offdiag = 0;         // ‖off(Q_prevᵀ A Q_prev)‖_F / ‖A‖_F
  bool fell_back = false;     // a cold solve was used
  bool kept_previous = false; // every solve failed; the previous basis is returned
  bool retried_double = false;
  int sweeps = 0;             // refinement steps taken
};

// A: [n, n]; prev: [n, n] previous eigenvectors (columns). values: [n]; vectors: [n, n]
// (may alias prev). prev_values: [n] or null (used only when every solve fails).
RefreshReport eigh_refresh(int64_t n, const float* A, const float* prev, const float* prev_values,
                           float* values, float* vectors, const RefreshOptions& opt);

// A: [B, r, r]; values: [B, r]; vectors: [B, r, r]. Cyclic Jacobi per matrix, matrices
// spread over the pool. Returns how many matrices needed the float64 retry.
int64_t eigh_batched(int64_t batch, int64_t r, const float* A, float* values, float* vectors,
                     const EighOptions& opt);

}  // namespace kfac::cpu
