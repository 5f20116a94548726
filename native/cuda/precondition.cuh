// K-FAC's inverse method on the GPU (mirrors cpu/precondition.cpp): π damping
// P = (G + √λ/π I)⁻¹ [∇W|∇b] (A + π√λ I)⁻¹ through cuSOLVER Cholesky (potrf + potrs, float64
// retry). Same contracts as ops::precondition_* (see core/kfac_ops.h); arguments arrive checked.
// The eigen method's step and EKFAC's are kernel bodies (ekfac_body.h), run by the emulation too.
#pragma once
#include "../core/kfac_ops.h"
#include "../core/tensor.h"

namespace kfac::cuda {

void precondition_inverse(const Tensor& gW, const Tensor* gb, const Tensor& Ainv, const Tensor& Ginv,
                          const Tensor& PW, const Tensor* Pb);

// π damping from the factors' traces (see cpu::pi_damping).
ops::PiDampingResult pi_damping(const Tensor& A, const Tensor& G, float lambda);

// out = (a + delta·I)⁻¹ (out may be a). Returns true when the float64 retry was needed.
bool damped_inverse(const Tensor& a, float delta, const Tensor& out);

ops::PiDampingResult precondition_inverse_factors(const Tensor& gW, const Tensor* gb, const Tensor& A,
                                                  const Tensor& G, float lambda, const Tensor& PW,
                                                  const Tensor* Pb);

}  // namespace kfac::cuda
