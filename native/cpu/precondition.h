// K-FAC preconditioning of one linear layer's gradient, fused, on the CPU.
//
// Shapes: ∇W[dout×din], ∇b[dout] (optional), A-side matrices [Da×Da] with Da = din + 1
// when ∇b is given (the bias is the last column of [∇W | ∇b]; nobody concatenates it),
// din otherwise; G-side matrices [dout×dout]. Outputs P_W[dout×din] and P_b[dout] are
// overwritten (=). Outputs must not overlap inputs.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// Eigen method (exact damping of A ⊗ G):
//   P = Q_G [ (Q_Gᵀ [∇W|∇b] Q_A) ⊘ (d_G d_Aᵀ + λ) ] Q_Aᵀ
// Eigenvalues below 0 are clamped to 0. Where d_G d_Aᵀ + λ is 0 (λ = 0 and a zero
// eigenvalue) that component of the step is 0: the pseudo-inverse, so the step stays
// finite on rank-deficient factors.
void precondition_eigen(const float* gW, const float* gb, int64_t dout, int64_t din,
                        const float* QA, const float* dA, const float* QG, const float* dG,
                        float lambda, float* PW, float* Pb);

// EKFAC (eigenvalue-corrected): the eigen method's basis with the denominators c·S + λ,
// S [dout×Da] the running second moments of the projected gradients, c their bias correction:
//   P = Q_G [ (Q_Gᵀ [∇W|∇b] Q_A) ⊘ (c·S + λ) ] Q_Aᵀ   (0 where c·S + λ is not positive).
void precondition_ekfac(const float* gW, const float* gb, int64_t dout, int64_t din, const float* QA,
                        const float* QG, const float* S, float c, float lambda, float* PW, float* Pb);

// EKFAC's second moments of one micro-batch: acc[dout×Da] ← β·acc + α·(g Q_G)²ᵀ (x̃ Q_A)²,
// x[R×din], g[R×dout], x̃ = [x | 1] with `bias` (Da = din + 1), squares elementwise.
// β = 0 never reads acc.
void ekfac_moments(const float* x, const float* g, int64_t R, int64_t din, int64_t dout, const float* QA,
                   const float* QG, bool bias, float alpha, float beta, float* acc);

// ⟨D, G D A⟩ for D = [dW | db] (db may be null): T = G (D A), then Σ D∘T in float64.
double kron_quadratic(const float* dW, const float* db, int64_t dout, int64_t din, const float* A,
                      const float* G);

// Inverse method with precomputed inverses: P = Ginv [∇W|∇b] Ainv.
void precondition_inverse(const float* gW, const float* gb, int64_t dout, int64_t din,
                          const float* Ainv, const float* Ginv, float* PW, float* Pb);

// Factored (π) damping of the inverse method:
//   π = sqrt((tr A / Da) / (tr G / dout)), damp_A = π·√λ, damp_G = √λ / π.
// π falls back to 1 when either trace is not positive or π is not finite (a factor
// that is still zero, like lora_A's G at step one, gets plain √λ damping).
struct PiDamping {
  double pi = 1.0, damp_A = 0.0, damp_G = 0.0;
};
PiDamping pi_damping(const float* A, int64_t Da, const float* G, int64_t dout, float lambda);

}  // namespace kfac::cpu
