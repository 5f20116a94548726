// Newton-step clipping on the GPU, global, per-tensor and Fisher (same contract as
// ops::clip_newton_step). One reduce launch computes every tensor's Σx² (and Σ⟨P, ∇W⟩)
// in float64 over fixed chunks; its last block combines them in a fixed order and writes
// the scale factors to device memory. One scale launch reads them there. The only
// device-to-host copy is the result (norms, scales) after the scale launch.
#pragma once
#include <vector>

#include "../core/kfac_ops.h"
#include "../core/tensor.h"

namespace kfac::cuda {

ops::ClipResult clip_newton_step(const std::vector<Tensor>& steps, const std::vector<Tensor>* grads,
                                 const ops::ClipOptions& opt);

}  // namespace kfac::cuda
