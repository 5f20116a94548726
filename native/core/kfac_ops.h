// K-FAC curvature ops at the tensor level: argument checks, then the backend kernel.
// Each op states whether its outputs are overwritten (=) or accumulated.
#pragma once
#include <vector>

#include "tensor.h"

namespace kfac::ops {

struct FactorUpdateOptions {
  float beta = 0.f;     // EMA decay in [0, 1]; 0 replaces F without reading it
  double scale = 1.0;   // multiplies XᵀX/R (see factor_update)
  bool bias = false;    // append an implicit column of ones to X
  // Refuse non-finite rows (NotFinite, F untouched). false skips the scan: on cuda it is a host
  // wait per call (a flag read back), which K-FAC's capture avoids (docs/KFAC.md#factors).
  bool check_finite = true;
};

// F ← beta·F + (1−beta)·scale/R · X̃ᵀX̃, X̃ = X or [X | 1] (bias).
// x: [R, d] or [..., d] (leading dimensions are rows); F: [D, D], D = d (+1 with bias).
// F is overwritten through the EMA (read only when beta ≠ 0, and then only its lower
// triangle); the result is exactly symmetric.
// Scale convention: for the A factor scale = 1. For the G factor, x holds the output
// gradients of a loss that was mean-reduced over a batch of N examples; the per-example
// gradient is N·g, so G = (1/R) Σ (N g)(N g)ᵀ needs scale = N². A sum-reduced loss
// needs scale = 1.
void factor_update(const Tensor& x, const Tensor& F, const FactorUpdateOptions& opt);

// out = (a + delta·I)⁻¹ for symmetric positive definite a [n, n] (lower triangle read);
// out [n, n] is overwritten and may be a itself. Float32 Cholesky, float64 retry, then
// a Numerical error naming "a". Returns true when the float64 retry was needed.
bool damped_inverse(const Tensor& a, float delta, const Tensor& out);

// Eigen-method preconditioning (see cpu/precondition.h). gW [dout, din]; gb [dout] or
// null; QA [Da, Da], dA [Da] with Da = din (+1 with gb); QG [dout, dout], dG [dout].
// PW [dout, din] and Pb [dout] (given exactly when gb is) are overwritten.
void precondition_eigen(const Tensor& gW, const Tensor* gb, const Tensor& QA, const Tensor& dA,
                        const Tensor& QG, const Tensor& dG, float lambda, const Tensor& PW,
                        const Tensor* Pb);

// Inverse-method preconditioning with precomputed inverses Ainv [Da, Da], Ginv [dout, dout]:
// [PW | Pb] = Ginv [gW | gb] Ainv (overwritten).
void precondition_inverse(const Tensor& gW, const Tensor* gb, const Tensor& Ainv,
                          const Tensor& Ginv, const Tensor& PW, const Tensor* Pb);

// EKFAC's denominators: P = Q_G [(Q_Gᵀ [gW|gb] Q_A) ⊘ (c·S + λ)] Q_Aᵀ, S [dout, Da] the running
// second moments of the projected gradients, c ≥ 0 their bias correction; a component whose
// denominator is not positive is 0. Shapes and outputs as precondition_eigen.
void precondition_ekfac(const Tensor& gW, const Tensor* gb, const Tensor& QA, const Tensor& QG, const Tensor& S,
                        float c, float lambda, const Tensor& PW, const Tensor* Pb);

struct EkfacMomentsOptions {
  float alpha = 1.f;  // weight of this micro-batch (finite, >= 0)
  float beta = 0.f;   // weight of what acc holds, in [0, 1]; 0 never reads acc
  bool bias = false;  // x̃ = [x | 1]
};

// EKFAC's second moments of one micro-batch: acc ← β·acc + α·(g Q_G)²ᵀ (x̃ Q_A)² (squares
// elementwise). x [..., din] and g [..., dout] float32 with the same number of rows R ≥ 1 (leading
// dimensions are rows), din ≥ 1; QA [Da, Da] with Da = din (+1 with bias); QG [dout, dout];
// acc [dout, Da] is overwritten through β and may not overlap an input.
void ekfac_moments(const Tensor& x, const Tensor& g, const Tensor& QA, const Tensor& QG,
                   const EkfacMomentsOptions& opt, const Tensor& acc);

// The Kronecker model's curvature along D = [dW | db]: ⟨D, G D A⟩ = vec(D)ᵀ(A ⊗ G)vec(D), summed
// in float64. dW [dout, din] float32, db [dout] or null, A [Da, Da] with Da = din (+1 with db),
// G [dout, dout]. Reads only.
double kron_quadratic(const Tensor& dW, const Tensor* db, const Tensor& A, const Tensor& G);
// The same for many layers, term i being (dWs[i], dbs[i] or null, As[i], Gs[i]), all on one
// device: one number per term, the same as one call each; on a device one download for all.
std::vector<double> kron_quadratic_many(const std::vector<Tensor>& dWs, const std::vector<const Tensor*>& dbs,
                                        const std::vector<Tensor>& As, const std::vector<Tensor>& Gs);

struct PiDampingResult {
  double pi = 1.0, damp_A = 0.0, damp_G = 0.0;
  bool used_f64 = false;  // one of the inverses needed the float64 retry
};

// π, damp_A = π√λ, damp_G = √λ/π for factors A [Da, Da], G [dout, dout].
PiDampingResult pi_damping(const Tensor& A, const Tensor& G, float lambda);

// Inverse method from the factors: P = (G + damp_G I)⁻¹ [gW|gb] (A + damp_A I)⁻¹ with π
// damping. The inverses live in per-thread scratch; use damped_inverse + the inverse
// overload to keep them between refreshes.
PiDampingResult precondition_inverse_factors(const Tensor& gW, const Tensor* gb, const Tensor& A,
                                             const Tensor& G, float lambda, const Tensor& PW,
                                             const Tensor* Pb);

enum class ClipMode { Global, PerTensor, Fisher };

struct ClipOptions {
  ClipMode mode = ClipMode::Global;
  double max_norm = 0.0;  // τ (global, per-tensor)
  double c = 0.0;         // KL bound (fisher)
  double lr = 0.0;        // η (fisher)
};

struct ClipResult {
  std::vector<double> norms;   // pre-clip ‖P_i‖
  double total_norm = 0.0;     // pre-clip ‖P‖ over all tensors
  std::vector<double> scales;  // the factor applied to each tensor
  std::vector<bool> clipped;   // whether tensor i was scaled (scale < 1)
  bool any_clipped = false;
  double vg = 0.0;             // Σ⟨P_i, ∇W_i⟩ (fisher only)
};

// Newton-step clipping, in place on `steps` (scaled by at most 1, never enlarged).
//   global:     s = min(1, τ/‖P‖) for all tensors
//   per-tensor: s_i = min(1, τ/‖P_i‖)
//   fisher:     s = min(1, sqrt(c / (η²·|vg|))), vg = Σ⟨P_i, ∇W_i⟩; vg = 0 → s = 1.
//               A negative vg (a step that is not a descent direction, possible only
//               through round-off or broken factors) is bounded by its magnitude, as
//               kfac-pytorch's kl_clip does.
// NaN or Inf in a step (or a grad) throws NotFinite naming that tensor; nothing is scaled.
ClipResult clip_newton_step(const std::vector<Tensor>& steps, const std::vector<Tensor>* grads,
                            const ClipOptions& opt);


// The step record (docs/KFAC.md#one-read-per-step): a float32 tensor of value slots on the
// device of a step's tensors, where the step's reductions and the clip's outcome are written
// instead of being downloaded one by one, so a step reads them all in one download. A value (a
// float64) takes two floats, its 8 bytes (slot s is floats 2s and 2s + 1), and the host reads
// the downloaded buffer as float64s: exact. Flags are 1 or 0 (record_math.h).
constexpr int64_t kTrustClipSlots = 5;  // ‖P‖, the smallest scale, the smallest τ, clipped, first bad step + 1

// record[offset + i] = Σ xs[i]² (float64 sums, those of sum_squares_many); with flag ≥ 0,
// record[flag] = 1 when every sum is finite and every value already in slots
// [check_at, check_at + check_count) is finite (the losses a step copied there), else 0.
// Nothing is downloaded.
void sum_squares_to(const std::vector<Tensor>& xs, const Tensor& record, int64_t offset, int64_t flag,
                    int64_t check_at = -1, int64_t check_count = 0);

// record[offset + i] = Σ xs[i]·ys[i] (float64 sums, those of dot_many); each pair of one shape.
void dot_many_to(const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, const Tensor& record, int64_t offset);
// record[offset + i] = kron_quadratic of term i (the numbers of kron_quadratic_many), not downloaded.
void kron_quadratic_many_to(const std::vector<Tensor>& dWs, const std::vector<const Tensor*>& dbs,
                            const std::vector<Tensor>& As, const std::vector<Tensor>& Gs, const Tensor& record,
                            int64_t offset);

struct TrustClipOptions {
  double k = 0.0;          // κ/η̄ (> 0)
  double floor = 0.0;      // θ_min, the floor of rms θ (≥ 0)
  bool per_tensor = true;  // per-tensor, else global
  bool fixed = false;      // k is the threshold itself: ‖P‖ ≤ k (global) or ‖P_i‖ ≤ k (a norm clip)
  double eps = 0.0;        // fixed, global: scale k/(‖P‖ + eps) when below 1 (torch's clip_grad_norm_, eps 1e-6)
};

// The trust-ratio Newton-step clip where the tensors live (docs/KFAC.md#default-threshold), in
// place on `steps`, params[i] being θ of steps[i] (same sizes), n = Σ|θ_i|:
//   rms = max(sqrt(Σ‖θ_i‖² / n), floor);
//   global:     τ = k·rms·√n, every step scaled by min(1, τ/‖P‖);
//   per-tensor: τ_i = k·√|θ_i|·max(‖θ_i‖/√|θ_i|, rms), step i scaled by min(1, τ_i/‖P_i‖);
//   fixed: τ = τ_i = k (clip_newton_step's norm clip, with its arithmetic, on the record).
// record[offset ..] gets kTrustClipSlots values: ‖P‖ before scaling, the smallest scale, the
// smallest τ, 1 if any step was scaled, and 1 + the index of the first step with NaN or Inf
// (then nothing is scaled) or 0. Nothing is downloaded: the caller reads the record.
void trust_clip(const std::vector<Tensor>& steps, const std::vector<Tensor>& params, const TrustClipOptions& opt,
                const Tensor& record, int64_t offset);

// The guarded EMA: when record[slot] ≠ 0, F ← β·F, then F ← F + (1 − β)·X (the two roundings of
// scale and axpy); when it is 0, F is left as it is. F, X float32 of one size, not overlapping.
void ema_commit(const Tensor& F, const Tensor& X, double beta, const Tensor& record, int64_t slot);

// The guarded copy: dst[dst_offset ..+count) ← src[src_offset ..+count) when record[slot] ≠ 0
// (float32, ranges inside their tensors, not overlapping).
void copy_range_if(const Tensor& src, int64_t src_offset, const Tensor& dst, int64_t dst_offset, int64_t count,
                   const Tensor& record, int64_t slot);

}  // namespace kfac::ops
