// The fused K-FAC factor update on the GPU: cublasSsyrk for X̃ᵀX̃ (lower triangle, EMA
// folded into syrk's beta), a column-sum kernel for the bias row, then the mirror kernel.
#pragma once
#include "../core/kfac_ops.h"
#include "../core/tensor.h"

namespace kfac::cuda {

// F ← beta·F + (1−beta)·scale/R · X̃ᵀX̃; same contract as ops::factor_update (x [..., d],
// F [D, D], D = d + bias; F's lower triangle read when beta ≠ 0; result exactly symmetric).
void factor_update(const Tensor& x, const Tensor& F, const ops::FactorUpdateOptions& opt);

}  // namespace kfac::cuda
