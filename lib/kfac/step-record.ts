/**
 * The step record (docs/KFAC.md#one-read-per-step): a small float32 tensor on the device of the
 * step's tensors where the preconditioner's reductions (the captured statistics' check, the
 * gradient norm) and the trust-ratio clip's outcome are written in stream order, so a step
 * waits for the device once — when it reads the record — instead of once per number. A value
 * is a float64 in two floats (its bytes, read back exactly); a flag is 1 or 0. The commit of the
 * factors reads its guard slot on the device (`emaCommit`), so statistics with NaN or Inf are
 * never folded in, and the step refuses them after the read.
 */
import { InvalidArgumentError } from '../errors.js';
import * as ops from '../ops/index.js';
import { handleOf, type Tensor } from '../tensor/tensor.js';
import { kfacNative } from './native.js';
import type { KroneckerTerm } from './precondition.js';
import { stateLike } from './state.js';

/** Value slots the trust-ratio clip writes: ‖P‖, the smallest scale, the smallest τ, clipped (0/1), 1 + the first non-finite step (0: none). */
export const TRUST_CLIP_SLOTS = 5;

export interface TrustClipAt {
  /** The first of its TRUST_CLIP_SLOTS slots. */
  at: number;
}

export class StepRecord {
  #t: Tensor | null = null;
  #used = 0;

  /** Starts a step that writes at most `slots` values, on the device of `like`. */
  begin(like: Tensor, slots: number): void {
    const need = Math.max(1, slots);
    if (!this.#t || this.#t.device !== like.device || this.#t.size < 2 * need) {
      this.#t?.dispose();
      this.#t = stateLike(like, [2 * Math.max(need, 16)]);
    }
    this.#used = 0;
  }

  get tensor(): Tensor {
    if (!this.#t) throw new InvalidArgumentError('record: begin() comes before the record is written or read', { argument: 'record' });
    return this.#t;
  }

  #take(n: number): number {
    const at = this.#used;
    if (2 * (at + n) > this.tensor.size) throw new InvalidArgumentError(`record: ${at + n} value slots written, more than the ${this.tensor.size / 2} begin() made room for`, { argument: 'record' });
    this.#used += n;
    return at;
  }

  /**
   * Σx² of each tensor into consecutive slots (and, with `flag`, a slot that is 1 when every sum
   * is finite and so is every value already written to the slots of `check`).
   */
  sums(ts: readonly Tensor[], flag = false, check?: { at: number; count: number }): { at: number; flag: number } {
    const at = this.#take(ts.length);
    const f = flag ? this.#take(1) : -1;
    const c = check && check.count > 0 ? [check.at, check.count] : [];
    if (ts.length > 0 || f >= 0) kfacNative().sumSquaresTo(ts.map((t, i) => handleOf(t, `tensors[${i}]`)), this.tensor.handle, at, f, ...c);
    return { at, flag: f };
  }

  /** Copies values kept as a float64 in two floats (a DeviceValue's tensor: a loss) into consecutive slots; returns the first. */
  values(ts: readonly Tensor[]): number {
    const at = this.#take(ts.length);
    ts.forEach((t, i) => {
      if (t.size !== 2) throw new InvalidArgumentError(`record: values[${i}] holds ${t.size} floats, not the 2 of one value`, { argument: `values[${i}]` });
      ops.copyRange(t, 0, this.tensor, 2 * (at + i), 2);
    });
    return at;
  }

  /** Σxy of each pair (xs[i], ys[i]) into consecutive slots; returns the first. */
  dots(xs: readonly Tensor[], ys: readonly Tensor[]): number {
    const at = this.#take(xs.length);
    if (xs.length > 0)
      kfacNative().dotManyTo(
        xs.map((t, i) => handleOf(t, `xs[${i}]`)),
        ys.map((t, i) => handleOf(t, `ys[${i}]`)),
        this.tensor.handle,
        at,
      );
    return at;
  }

  /** ⟨D, G D A⟩ of each term (kfac.kroneckerQuadraticMany's numbers) into consecutive slots; returns the first. */
  kroneckerQuadratics(terms: readonly KroneckerTerm[]): number {
    const at = this.#take(terms.length);
    if (terms.length > 0)
      kfacNative().kronQuadraticManyTo(
        terms.map((t, i) => handleOf(t.dW, `terms[${i}].dW`)),
        terms.map((t, i) => (t.db === null ? null : handleOf(t.db, `terms[${i}].db`))),
        terms.map((t, i) => handleOf(t.A, `terms[${i}].A`)),
        terms.map((t, i) => handleOf(t.G, `terms[${i}].G`)),
        this.tensor.handle,
        at,
      );
    return at;
  }

  /**
   * The trust-ratio clip of `steps` (θ of each in `params`) with k = κ/η̄, in place; its outcome
   * goes to the record. With `fixed`, k is the norm bound itself (newtonClip: { maxNorm }); with
   * `eps` as well (global), the scale is k/(‖P‖ + eps) when below 1 (gradient clipping, as torch).
   */
  trustClip(steps: readonly Tensor[], params: readonly Tensor[], k: number, floor: number, perTensor: boolean, fixed = false, eps = 0): TrustClipAt {
    const at = this.#take(TRUST_CLIP_SLOTS);
    kfacNative().trustClip(
      steps.map((t, i) => handleOf(t, `steps[${i}]`)),
      params.map((t, i) => handleOf(t, `params[${i}]`)),
      { k, floor, perTensor, fixed, eps },
      this.tensor.handle,
      at,
    );
    return { at };
  }

  /** F ← βF + (1 − β)X on the device when slot `slot` is not 0 (the guard of `sums(…, true)`). */
  emaCommit(F: Tensor, X: Tensor, beta: number, slot: number): void {
    kfacNative().emaCommit(handleOf(F, 'F'), handleOf(X, 'X'), beta, this.tensor.handle, slot);
  }

  /**
   * The batched eigendecomposition of `a` [B, n, n] into `values` [B, n] and `vectors` [B, n, n]
   * (clamped at 0) without a wait; returns the slot of its flag (1: every matrix solved, finite).
   */
  eighBatched(a: Tensor, values: Tensor, vectors: Tensor): number {
    const slot = this.#take(1);
    kfacNative().eighBatchedTo(handleOf(a, 'a'), handleOf(values, 'values'), handleOf(vectors, 'vectors'), { clampNonNegative: true }, this.tensor.handle, slot);
    return slot;
  }

  /** dst[dstAt..+count) ← src[srcAt..+count) on the device when slot `slot` is not 0. */
  copyRangeIf(src: Tensor, srcAt: number, dst: Tensor, dstAt: number, count: number, slot: number): void {
    kfacNative().copyRangeIf(handleOf(src, 'src'), srcAt, handleOf(dst, 'dst'), dstAt, count, this.tensor.handle, slot);
  }

  /** Every value written this step: one download (the step's one wait for the device); none when nothing was written. */
  read(): Float64Array {
    if (this.#used === 0) return new Float64Array(0);
    const t = this.tensor;
    const host = t.device === 'cpu' ? t : t.to('cpu');
    try {
      // each slot's two floats hold a float64's bytes (native/core/record_math.h)
      const raw = host.toArray();
      return new Float64Array(raw.buffer, raw.byteOffset, this.#used).slice();
    } finally {
      if (host !== t) host.dispose();
    }
  }

  dispose(): void {
    this.#t?.dispose();
    this.#t = null;
  }
}
