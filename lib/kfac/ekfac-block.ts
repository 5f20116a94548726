/**
 * EKFAC (George et al., 2018): the Kronecker eigenbasis of the eigen method with its eigenvalues
 * replaced by running second moments of the gradients projected into that basis,
 * S = (w/D) Σ_r (Q_Gᵀ g_r)² (Q_Aᵀ ã_r)²ᵀ (the rows weighted as G's, docs/KFAC.md#ekfac), and
 * P = Q_G [(Q_Gᵀ [∇W | ∇b] Q_A) ⊘ (S/(1 − Πβ) + λ)] Q_Aᵀ.
 * S is captured per micro-batch in the basis of the last refresh; until it has data the block
 * uses the K-FAC eigenvalues d_G d_Aᵀ.
 */
import { cast } from '../ops/cast.js';
import * as ops from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { EigenBlock } from './blocks.js';
import { ekfacMoments } from './factor.js';
import { preconditionEkfac } from './precondition.js';
import { stateLike } from './state.js';
import type { StepRecord } from './step-record.js';

/**
 * The rows as the moments op takes them: bfloat16 rows (bf16 activations on a device) go as they
 * are — their projection is a bf16 GEMM (native/cuda/ekfac_body.h) — unless KFAC_EKFAC_BF16=0,
 * which widens them into a float32 copy first (the float32 projection, the reference path).
 */
function rowsFor(t: Tensor): { t: Tensor; owned: boolean } {
  if (t.dtype === 'float32' || process.env['KFAC_EKFAC_BF16'] !== '0') return { t, owned: false };
  return { t: cast(t, 'float32'), owned: true };
}

export class EkfacBlock extends EigenBlock {
  override readonly method = 'ekfac' as const;
  /** Running second moments [dout, Da]. */
  readonly S: Tensor;
  #acc: Tensor;
  #pendingD = 0;
  #pending = 0;
  weight = 0;
  updates = 0;
  #beforeCommit: { weight: number; updates: number } | undefined;

  constructor(...args: ConstructorParameters<typeof EigenBlock>) {
    super(...args);
    this.S = stateLike(this.layer.weight.tensor, [this.dout, this.a.dim]);
    this.#acc = stateLike(this.layer.weight.tensor, [this.dout, this.a.dim]);
  }

  override get capturesRows(): boolean {
    return true;
  }

  /** Adds one micro-batch's rows to the pending moments, on the rows' device (kfac.ekfacMoments). */
  override captureRows(a: Tensor, g: Tensor, w: number, d: number): void {
    const QA = this.a.decomp?.Q;
    const QG = this.g.decomp?.Q;
    if (!QA || !QG) return;
    const x = rowsFor(a);
    const gr = rowsFor(g);
    const D = this.#pendingD + d;
    try {
      // running mean over micro-batches: acc ← (D_prev/D)·acc + (w/D)·(g Q_G)²ᵀ (x̃ Q_A)²
      ekfacMoments(this.#acc, x.t, gr.t, { QA, QG, alpha: w / D, beta: this.#pendingD / D, bias: this.hasBias });
    } finally {
      if (x.owned) x.t.dispose();
      if (gr.owned) gr.t.dispose();
    }
    this.#pendingD = D;
    this.#pending += 1;
  }

  override get pendingRows(): Tensor | undefined {
    return this.#pending > 0 ? this.#acc : undefined;
  }

  override commitRows(beta: number, guard?: { record: StepRecord; slot: number }): void {
    this.#beforeCommit = undefined; // an uncommit undoes this step's commit only
    if (this.#pending === 0) return;
    if (guard) guard.record.emaCommit(this.S, this.#acc, beta, guard.slot);
    else {
      ops.scale(this.S, beta, this.S);
      ops.axpy(1 - beta, this.#acc, this.S);
    }
    this.#beforeCommit = { weight: this.weight, updates: this.updates };
    this.weight = 1 - (1 - this.weight) * beta;
    this.updates += 1;
    this.#pendingD = 0;
    this.#pending = 0;
  }

  override uncommitRows(): void {
    if (!this.#beforeCommit) return;
    this.weight = this.#beforeCommit.weight;
    this.updates = this.#beforeCommit.updates;
    this.#beforeCommit = undefined;
  }

  override discardRows(): void {
    this.#pendingD = 0;
    this.#pending = 0;
  }

  override precondition(damping: number): void {
    if (this.updates === 0) return super.precondition(damping);
    preconditionEkfac({
      ...this.io(),
      QA: this.a.decomp!.Q,
      QG: this.g.decomp!.Q,
      S: this.S,
      scale: this.weight > 0 ? 1 / this.weight : 1,
      damping,
    });
  }

  override stateTensors(): Record<string, Tensor> {
    return { [`${this.layer.name}/ekfac_S`]: this.S.clone() };
  }

  override stateMeta(): Record<string, number> {
    return { weight: this.weight, updates: this.updates };
  }

  override loadState(tensors: Record<string, Tensor>, meta?: Record<string, number>): void {
    const s = tensors[`${this.layer.name}/ekfac_S`];
    if (s) ops.copy(s, this.S);
    if (meta) {
      this.weight = meta['weight'] ?? 0;
      this.updates = meta['updates'] ?? 0;
    }
    this.discardRows();
  }

  override dispose(): void {
    super.dispose();
    this.S.dispose();
    this.#acc.dispose();
  }
}
