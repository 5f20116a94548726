// Symmetric eigendecompositions through cuSOLVER: syevd for one matrix (float32, retried
// in float64 when it fails or gives non-finite values), syevjBatched for stacks of small
// factors, and the warm refresh from a previous eigenbasis (mirrors cpu/eigh_refresh.cpp).
// Eigenvalues ascend; eigenvector j is column j of `vectors` (row-major), as on the CPU.
#pragma once
#include "../core/tensor.h"
#include "../cpu/eigh.h"

namespace kfac::cuda {

struct EighResult {
  bool retried_double = false;
};

// a [n, n] → values [n], vectors [n, n] (overwritten; must not alias a).
EighResult eigh(const Tensor& a, const Tensor& values, const Tensor& vectors, bool clamp_nonneg);

// a [B, r, r] → values [B, r], vectors [B, r, r]. r ≤ 32 goes through syevjBatched, larger
// r through one syevd per matrix. Returns how many matrices needed the float64 retry.
int64_t eigh_batched(const Tensor& a, const Tensor& values, const Tensor& vectors, bool clamp_nonneg);
// eigh_batched without a wait: no retry and no error for a matrix that does not converge;
// the value slot at `flag` (record_math.h) = 1 when every matrix converged with finite results, else 0.
void eigh_batched_to(const Tensor& a, const Tensor& values, const Tensor& vectors, bool clamp_nonneg, float* flag);

// Warm refresh: S = Qᵀ A Q (two GEMMs); when S is nearly diagonal (off-diagonal mass ≤
// maxOffDiagonal) Jacobi (syevj, at most 8 sweeps) finishes it and Q_new = Q·V (one GEMM),
// kept when the probe residual ‖A Q − Q Λ‖/‖A‖ ≤ maxResidual; otherwise a cold syevd.
// When every solve fails the previous basis is kept. vectors may be prev_vectors itself.
cpu::RefreshReport eigh_refresh(const Tensor& a, const Tensor& prev_vectors, const Tensor* prev_values,
                                const Tensor& values, const Tensor& vectors, const cpu::RefreshOptions& opt);

}  // namespace kfac::cuda
