/**
 * One Kronecker factor (A or G) of one or more layers: its running average, the statistics of
 * the current step accumulated micro-batch by micro-batch, and — for the eigen-based methods —
 * its eigendecomposition. Layers that read the same input share one Factor.
 *
 * Accumulation (docs/KFAC.md#accumulation): micro-batch i contributes w_i·X_iᵀX_i and a
 * denominator d_i; the step's factor is F_batch = Σ w_i X_iᵀX_i / Σ d_i, kept as a running mean
 * so that one fused native update per micro-batch suffices:
 *   F_k = (D_{k−1}/D_k)·F_{k−1} + (w_k·R_k/d_k)·(1/R_k)·X_kᵀX_k·(d_k/D_k).
 * The EMA then folds F_batch in: F ← βF + (1−β)F_batch.
 */
import { invalidArgument } from '../errors.js';
import * as ops from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { decompose, type DecomposeOutcome, type Decomposition } from './decompose.js';
import { updateFactor } from './factor.js';
import type { StepRecord } from './step-record.js';
import { copyInto, identityLike, stateFrom, stateLike } from './state.js';

export class KFactor {
  readonly key: string;
  readonly dim: number;
  /** Whether X gets an implicit column of ones (a layer with a bias). */
  readonly bias: boolean;
  /** The running average (bias-corrected by `weight`). */
  readonly ema: Tensor;
  /** 1 − Πβ over the updates so far (1 with the identity prior). */
  weight: number;
  updates = 0;
  /** Statistics of the step being accumulated, and Σ d_i so far (0: nothing captured). */
  #acc: Tensor | undefined;
  pendingDenominator = 0;
  pendingCaptures = 0;
  decomp: Decomposition | undefined;
  /** Eigenvalues divided by `weight` (what the step uses). */
  dScaled: Tensor | undefined;
  /** The refresh round this factor was last decomposed in (shared factors are decomposed once). */
  refreshedIn = -1;
  #beforeCommit: { weight: number; updates: number } | undefined;

  constructor(key: string, dim: number, bias: boolean, like: Tensor, identity: boolean) {
    this.key = key;
    this.dim = dim;
    this.bias = bias;
    this.ema = identity ? identityLike(like, dim) : stateLike(like, [dim, dim]);
    this.weight = identity ? 1 : 0;
  }

  /**
   * Adds one micro-batch: X [R, d] or [..., d] (every leading index a row), weight w per row
   * product and denominator d (docs/KFAC.md#accumulation).
   */
  capture(x: Tensor, w: number, d: number): void {
    const cols = x.rank >= 1 ? x.shape[x.rank - 1] : undefined;
    if (cols === undefined || cols !== this.dim - (this.bias ? 1 : 0) || x.size === 0)
      invalidArgument(`rows for factor ${this.key}`, `[R, ${this.dim - (this.bias ? 1 : 0)}]`, `[${x.shape.join(', ')}]`);
    const R = x.size / cols;
    this.#acc ??= stateLike(this.ema, [this.dim, this.dim]);
    const D = this.pendingDenominator + d;
    // running mean: acc ← (D_prev/D)·acc + (1 − D_prev/D)·(w·R/d)·XᵀX/R. The rows are not scanned
    // for NaN/Inf here (on cuda that scan is a host wait per factor and micro-batch): the step
    // checks `pending` in its gradient-norm reduction and refuses a non-finite one before anything
    // is applied (docs/KFAC.md#factors, "Non-finite rows").
    updateFactor(this.#acc, x, { beta: this.pendingDenominator / D, scale: (w * R) / d, bias: this.bias, checkFinite: false });
    this.pendingDenominator = D;
    this.pendingCaptures += 1;
  }

  /**
   * Folds the accumulated statistics into the EMA: F ← βF + (1−β)F_batch. With `guard` (the
   * step record and the slot of its all-finite flag) the device skips the update when the flag
   * is 0; the step then calls `uncommit()` after reading the record.
   */
  commit(beta: number, guard?: { record: StepRecord; slot: number }): void {
    this.#beforeCommit = undefined; // an uncommit undoes this step's commit only
    if (this.pendingCaptures === 0) return;
    const acc = this.#acc as Tensor;
    if (guard) guard.record.emaCommit(this.ema, acc, beta, guard.slot);
    else {
      ops.scale(this.ema, beta, this.ema);
      ops.axpy(1 - beta, acc, this.ema);
    }
    this.#beforeCommit = { weight: this.weight, updates: this.updates };
    this.weight = 1 - (1 - this.weight) * beta;
    this.updates += 1;
    this.pendingDenominator = 0;
    this.pendingCaptures = 0;
  }

  /** The counters as before the last `commit` (whose guarded update the device skipped). */
  uncommit(): void {
    if (!this.#beforeCommit) return;
    this.weight = this.#beforeCommit.weight;
    this.updates = this.#beforeCommit.updates;
    this.#beforeCommit = undefined;
  }

  /** The statistics captured since the last commit (undefined when none). */
  get pending(): Tensor | undefined {
    return this.pendingCaptures > 0 ? this.#acc : undefined;
  }

  /** Drops statistics captured since the last commit. */
  discard(): void {
    this.pendingDenominator = 0;
    this.pendingCaptures = 0;
  }

  /** dScaled = d·correction again (after `uncommit`). */
  rescale(): void {
    if (this.decomp && this.dScaled) ops.scale(this.decomp.d, this.correction, this.dScaled);
  }

  /** The bias correction: the factor the step uses is `ema · correction` (1/weight; 1 before any update). */
  get correction(): number {
    return this.weight > 0 ? 1 / this.weight : 1;
  }

  /** The bias-corrected factor into `out` (allocated when absent). */
  corrected(out?: Tensor): Tensor {
    const o = out ?? stateLike(this.ema, [this.dim, this.dim]);
    ops.scale(this.ema, this.correction, o);
    return o;
  }

  /** Eigendecomposition of the EMA (warm refresh from the previous basis when asked). */
  decompose(warm: boolean): DecomposeOutcome {
    const out = decompose(this.ema, this.decomp, warm);
    if (this.decomp && this.decomp.Q !== out.result.Q) this.decomp.Q.dispose();
    if (this.decomp && this.decomp.d !== out.result.d) this.decomp.d.dispose();
    this.decomp = out.result;
    this.dScaled ??= stateLike(this.ema, [this.dim]);
    ops.scale(this.decomp.d, this.correction, this.dScaled);
    return out;
  }

  /**
   * Takes its eigenpairs from a batched solve of its EMA (SmallFactorSolver): vectors [n, n] at
   * element `vectorsAt` of `vectors`, values [n] at `valuesAt` of `values`, copied where they live
   * (with `guard`, only if the solve's flag in the step record is 1).
   */
  setDecomposition(vectors: Tensor, vectorsAt: number, values: Tensor, valuesAt: number, guard?: { record: StepRecord; slot: number }): void {
    const n = this.dim;
    const d = this.decomp ?? { Q: stateLike(this.ema, [n, n]), d: stateLike(this.ema, [n]) };
    if (guard) {
      // a solve that failed (flag 0) leaves the previous eigenpairs, as a refresh that keeps them
      guard.record.copyRangeIf(vectors, vectorsAt, d.Q, 0, n * n, guard.slot);
      guard.record.copyRangeIf(values, valuesAt, d.d, 0, n, guard.slot);
    } else {
      ops.copyRange(vectors, vectorsAt, d.Q, 0, n * n);
      ops.copyRange(values, valuesAt, d.d, 0, n);
    }
    this.decomp = d;
    this.dScaled ??= stateLike(this.ema, [n]);
    ops.scale(d.d, this.correction, this.dScaled);
  }

  stateTensors(): Record<string, Tensor> {
    const t: Record<string, Tensor> = { [`${this.key}/ema`]: this.ema.clone() };
    if (this.decomp) {
      t[`${this.key}/Q`] = this.decomp.Q.clone();
      t[`${this.key}/d`] = this.decomp.d.clone();
      t[`${this.key}/d_scaled`] = (this.dScaled as Tensor).clone();
    }
    return t;
  }

  stateMeta(): { weight: number; updates: number; decomposed: boolean } {
    return { weight: this.weight, updates: this.updates, decomposed: !!this.decomp };
  }

  load(meta: { weight: number; updates: number; decomposed: boolean }, need: (k: string) => Tensor): void {
    copyInto(need(`${this.key}/ema`), this.ema);
    this.weight = meta.weight;
    this.updates = meta.updates;
    this.discard();
    if (meta.decomposed) {
      this.decomp?.Q.dispose();
      this.decomp?.d.dispose();
      this.dScaled?.dispose();
      this.decomp = { Q: stateFrom(need(`${this.key}/Q`), this.ema), d: stateFrom(need(`${this.key}/d`), this.ema) };
      this.dScaled = stateFrom(need(`${this.key}/d_scaled`), this.ema);
    }
  }

  dispose(): void {
    this.ema.dispose();
    this.#acc?.dispose();
    this.decomp?.Q.dispose();
    this.decomp?.d.dispose();
    this.dScaled?.dispose();
  }
}
