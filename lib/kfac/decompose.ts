/**
 * Eigendecompositions of Kronecker factors for the preconditioner: cold solves, warm
 * refreshes from the previous basis (written in place, so the steady state allocates
 * nothing), the float64 retry, and keeping the previous basis when everything fails.
 * Eigenvalues are clamped at 0 (the factors are PSD; negative values are round-off).
 */
import { KfacError } from '../errors.js';
import { eigh, eighRefresh } from '../linalg/eigh.js';
import type { Tensor } from '../tensor/tensor.js';

export interface Decomposition {
  /** Q [n, n], eigenvectors in columns. */
  Q: Tensor;
  /** d [n], ascending, ≥ 0. */
  d: Tensor;
}

export interface DecomposeOutcome {
  result: Decomposition;
  /** 'cold' | 'warm' (refresh accepted) | 'fallback' (refresh judged stale, cold solve) | 'kept' (all failed; previous basis kept). */
  kind: 'cold' | 'warm' | 'fallback' | 'kept';
  /** ‖FQ − QΛ‖/‖F‖ of a warm refresh. */
  residual: number | undefined;
  retriedFloat64: boolean;
  error?: KfacError;
}

export function decompose(F: Tensor, previous: Decomposition | undefined, warm: boolean): DecomposeOutcome {
  try {
    if (warm && previous) {
      const r = eighRefresh(F, previous.Q, { clampNonNegative: true, previousValues: previous.d, out: { values: previous.d, vectors: previous.Q } });
      const kind = r.keptPrevious ? 'kept' : r.fellBack ? 'fallback' : 'warm';
      return { result: { Q: r.vectors, d: r.values }, kind, residual: r.residual, retriedFloat64: r.retriedFloat64 };
    }
    const r = eigh(F, { clampNonNegative: true });
    return { result: { Q: r.vectors, d: r.values }, kind: 'cold', residual: undefined, retriedFloat64: r.retriedFloat64 };
  } catch (e) {
    if (previous && e instanceof KfacError) return { result: previous, kind: 'kept', residual: undefined, retriedFloat64: false, error: e };
    throw e;
  }
}
