/**
 * Per-layer curvature blocks: each owns its layer's factors (shared A factors are owned by the
 * preconditioner's factor table and referenced here), its decomposition or inverses, its
 * preconditioning and its checkpoint state. The preconditioner only schedules, clips and
 * reports. Formulas: docs/KFAC.md#eigen-method and docs/KFAC.md#inverse-method.
 */
import { KfacError } from '../errors.js';
import { dampedInverse } from '../linalg/cholesky.js';
import { Tensor } from '../tensor/tensor.js';
import type { KFactor } from './kfactor.js';
import type { KfacLayer } from './layer.js';
import { type KroneckerTerm, piDamping, preconditionEigen, preconditionInverse } from './precondition.js';
import { stateFrom, stateLike } from './state.js';
import type { StepRecord } from './step-record.js';

/** What a refresh reports into the step's telemetry. */
export interface RefreshSink {
  decompositions: { cold: number; warm: number; fallback: number; kept: number };
  events: string[];
  /** Largest warm-refresh residual seen (NaN: none). */
  residual: number;
}

export abstract class LayerBlock {
  abstract readonly method: 'eigen' | 'inverse' | 'ekfac';
  readonly dout: number;
  readonly din: number;
  readonly hasBias: boolean;
  /** The preconditioned step of the weight [dout, din] and of the bias [dout]. */
  readonly P: Tensor;
  readonly Pb: Tensor | null;

  constructor(
    readonly layer: KfacLayer,
    readonly a: KFactor,
    readonly g: KFactor,
  ) {
    const w = layer.weight.tensor;
    [this.dout, this.din] = w.shape as [number, number];
    this.hasBias = !!layer.bias;
    this.P = stateLike(w, [this.dout, this.din]);
    this.Pb = this.hasBias ? stateLike(w, [this.dout]) : null;
  }

  get grad(): Tensor | null {
    return this.layer.weight.grad;
  }

  get biasGrad(): Tensor | null {
    return this.hasBias ? (this.layer.bias?.grad ?? null) : null;
  }

  /** The step's tensors (weight, and bias when it has a gradient). */
  steps(): Tensor[] {
    return this.Pb && this.biasGrad ? [this.P, this.Pb] : [this.P];
  }

  /** Recomputes decompositions or inverses from the current factors (`round` identifies this refresh). */
  abstract refresh(damping: number, warm: boolean, round: number, sink: RefreshSink): void;
  /** Whether the block can precondition (it has a decomposition or inverses). */
  abstract ready(): boolean;
  /** P ← the preconditioned gradient. */
  abstract precondition(damping: number): void;

  /**
   * The term of ⟨δ̃, G δ̃ A⟩ = vec(δ̃)ᵀ(A ⊗ G)vec(δ̃) for a change δ̃ = [δW | δb] of this layer's
   * weights — the Kronecker model's curvature along δ (docs/KFAC.md#adaptive-damping) — for
   * `kroneckerQuadraticMany`, which evaluates every block's term in one call: `curvature(value)`
   * is the curvature. `dispose` frees what the term made (a zero bias column).
   */
  curvatureTerm(dW: Tensor, db: Tensor | null): { term: KroneckerTerm; curvature(value: number): number; dispose(): void } {
    // on the EMAs themselves, the bias corrections applied to the number: ⟨D, (G/w_G) D (A/w_A)⟩ =
    // ⟨D, G D A⟩/(w_A w_G), so no bias-corrected copy of either factor is made per probe
    // a bias without a change (frozen) is a zero last column of D
    const zero = this.hasBias && !db ? stateLike(dW, [this.dout]) : null;
    return {
      term: { dW, db: this.hasBias ? (db ?? zero) : null, A: this.a.ema, G: this.g.ema },
      curvature: (value) => value * this.a.correction * this.g.correction,
      dispose: () => zero?.dispose(),
    };
  }

  /** Per-row statistics of a block beyond its factors (EKFAC's second moments); rows weighted as G's (w, d). */
  captureRows(_a: Tensor, _g: Tensor, _w: number, _d: number): void {}
  /** The rows' statistics captured since the last step (EKFAC's moments; none otherwise). */
  get pendingRows(): Tensor | undefined {
    return undefined;
  }
  commitRows(_beta: number, _guard?: { record: StepRecord; slot: number }): void {}
  /** The counters as before the last `commitRows` (whose guarded update the device skipped). */
  uncommitRows(): void {}
  discardRows(): void {}
  /** Whether captureRows needs the rows (the preconditioner skips reading them otherwise). */
  get capturesRows(): boolean {
    return false;
  }

  /** Block-level checkpoint tensors and scalars (the factors save themselves). */
  stateTensors(): Record<string, Tensor> {
    return {};
  }
  stateMeta(): Record<string, number> | undefined {
    return undefined;
  }
  loadState(_tensors: Record<string, Tensor>, _meta?: Record<string, number>): void {}

  dispose(): void {
    this.P.dispose();
    this.Pb?.dispose();
  }

  protected io(): { grad: Tensor; out: Tensor; gradBias?: Tensor; outBias?: Tensor } {
    const gb = this.biasGrad;
    return { grad: this.grad as Tensor, out: this.P, ...(gb && this.Pb ? { gradBias: gb, outBias: this.Pb } : {}) };
  }
}

/** Decomposes a (possibly shared) factor once per refresh round. */
export function refreshFactor(f: KFactor, warm: boolean, round: number, sink: RefreshSink): void {
  if (f.refreshedIn === round) return;
  f.refreshedIn = round;
  const out = f.decompose(warm);
  sink.decompositions[out.kind] += 1;
  if (out.residual !== undefined) sink.residual = Number.isNaN(sink.residual) ? out.residual : Math.max(sink.residual, out.residual);
  if (out.kind === 'kept') sink.events.push(`kept the previous eigenbasis of ${f.key}: ${out.error?.message ?? 'decomposition failed'}`);
  if (out.retriedFloat64) sink.events.push(`${f.key}: the float32 solve failed; float64 was used`);
}

/** Eigen method: P = Q_G[(Q_Gᵀ ∇W Q_A) ⊘ (d_G d_Aᵀ + λ)]Q_Aᵀ (exact damping of A ⊗ G). */
export class EigenBlock extends LayerBlock {
  readonly method: 'eigen' | 'ekfac' = 'eigen';

  refresh(_damping: number, warm: boolean, round: number, sink: RefreshSink): void {
    refreshFactor(this.a, warm, round, sink);
    refreshFactor(this.g, warm, round, sink);
  }

  ready(): boolean {
    return this.a.decomp !== undefined && this.g.decomp !== undefined;
  }

  precondition(damping: number): void {
    const A = this.a.decomp!;
    const G = this.g.decomp!;
    preconditionEigen({ ...this.io(), A: { Q: A.Q, d: this.a.dScaled as Tensor }, G: { Q: G.Q, d: this.g.dScaled as Tensor }, damping });
  }
}

/** Inverse method: P = (G + √λ/π I)⁻¹ ∇W (A + π√λ I)⁻¹, inverses recomputed at each refresh. */
export class InverseBlock extends LayerBlock {
  readonly method = 'inverse' as const;
  #Ainv: Tensor | undefined;
  #Ginv: Tensor | undefined;
  #scratchA: Tensor | undefined;
  #scratchG: Tensor | undefined;

  refresh(damping: number, _warm: boolean, _round: number, sink: RefreshSink): void {
    this.#scratchA = this.a.corrected(this.#scratchA);
    this.#scratchG = this.g.corrected(this.#scratchG);
    const pi = piDamping(this.#scratchA, this.#scratchG, damping);
    try {
      this.#Ainv = dampedInverse(this.#scratchA, { damping: Math.max(pi.dampA, 1e-12), ...(this.#Ainv ? { out: this.#Ainv } : {}) });
      this.#Ginv = dampedInverse(this.#scratchG, { damping: Math.max(pi.dampG, 1e-12), ...(this.#Ginv ? { out: this.#Ginv } : {}) });
      sink.decompositions.cold += 2;
    } catch (e) {
      if (!(e instanceof KfacError) || this.#Ainv === undefined || this.#Ginv === undefined) throw e;
      sink.decompositions.kept += 2;
      sink.events.push(`kept the previous inverses of ${this.layer.name}: ${e.message}`);
    }
  }

  ready(): boolean {
    return this.#Ainv !== undefined && this.#Ginv !== undefined;
  }

  precondition(): void {
    preconditionInverse({ ...this.io(), Ainv: this.#Ainv as Tensor, Ginv: this.#Ginv as Tensor });
  }

  override stateTensors(): Record<string, Tensor> {
    const t: Record<string, Tensor> = {};
    if (this.#Ainv) t[`${this.layer.name}/Ainv`] = this.#Ainv.clone();
    if (this.#Ginv) t[`${this.layer.name}/Ginv`] = this.#Ginv.clone();
    return t;
  }

  override loadState(tensors: Record<string, Tensor>): void {
    const a = tensors[`${this.layer.name}/Ainv`];
    const g = tensors[`${this.layer.name}/Ginv`];
    if (a) {
      this.#Ainv?.dispose();
      this.#Ainv = stateFrom(a, this.P);
    }
    if (g) {
      this.#Ginv?.dispose();
      this.#Ginv = stateFrom(g, this.P);
    }
  }

  override dispose(): void {
    super.dispose();
    this.#Ainv?.dispose();
    this.#Ginv?.dispose();
    this.#scratchA?.dispose();
    this.#scratchG?.dispose();
  }
}
