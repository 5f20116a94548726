/**
 * Symmetric eigendecomposition: cold (`eigh`), warm from a previous basis (`eighRefresh`)
 * and many small matrices at once (`eighBatched`). float32, CPU. Eigenvalues ascend;
 * eigenvector j is column j of `vectors`, so A = Q·diag(values)·Qᵀ.
 */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkOptions } from '../util/validate.js';

export interface EighOut {
  /** Receives the eigenvalues ([n], or [B, r] for eighBatched); overwritten. */
  values?: Tensor;
  /** Receives the eigenvectors ([n, n], or [B, r, r]); overwritten. */
  vectors?: Tensor;
}

export interface EighOptions {
  /** Clamp eigenvalues at 0 (for PSD Kronecker factors whose tiny eigenvalues round negative). */
  clampNonNegative?: boolean;
  /** Output tensors to write instead of allocating new ones. */
  out?: EighOut;
}

export interface EighResult {
  values: Tensor;
  vectors: Tensor;
  /** The float32 solve failed (no convergence or non-finite output) and float64 was used. */
  retriedFloat64: boolean;
}

export interface EighRefreshOptions extends EighOptions {
  /** The eigenvalues that came with previousVectors (reported back if every solve fails). */
  previousValues?: Tensor;
  /** Above this ‖AQ − QΛ‖_F/‖A‖_F the warm result is rejected (default 1e-4). */
  maxResidual?: number;
  /** Above this ‖off(QᵀAQ)‖_F/‖A‖_F the previous basis is stale (default 0.25). */
  maxOffDiagonal?: number;
}

export interface EighRefreshResult extends EighResult {
  /** ‖AQ − QΛ‖_F/‖A‖_F of the returned pair (estimated with 16 random probes). */
  residual: number;
  /** ‖off(Q_prevᵀ A Q_prev)‖_F/‖A‖_F: how far the previous basis was from diagonalising A. */
  offDiagonal: number;
  /** The previous basis was stale and a cold solve was used. */
  fellBack: boolean;
  /** Every solve failed: `vectors` is the previous basis (and `values` previousValues, or its Rayleigh quotients). */
  keptPrevious: boolean;
  /** Jacobi sweeps of the warm path. */
  sweeps: number;
}

export interface EighBatchedResult {
  values: Tensor;
  vectors: Tensor;
  /** How many matrices needed the fallback solver. */
  retried: number;
}

function checkMatrixTensor(t: unknown, name: string, rank: number): Tensor {
  handleOf(t, name);
  const x = t as Tensor;
  // dtype and device are checked natively, once (native/core/ops_eigh.cpp)
  const s = x.shape;
  if (s.length !== rank || s[rank - 1] !== s[rank - 2])
    throw new ShapeError(`${name}: expected ${rank === 2 ? 'a square matrix [n, n]' : 'square matrices [B, r, r]'}, got shape [${s.join(', ')}]`, {
      argument: name,
      expected: rank === 2 ? '[n, n]' : '[B, r, r]',
      got: `[${s.join(', ')}]`,
    });
  return x;
}

function checkOut(t: unknown, name: string, shape: readonly number[]): Tensor | undefined {
  if (t === undefined) return undefined;
  if (!(t instanceof Tensor)) return invalidArgument(name, 'a Tensor', describe(t));
  handleOf(t, name);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new ShapeError(`${name}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`, { argument: name, expected: `[${shape.join(', ')}]`, got: `[${t.shape.join(', ')}]` });
  return t;
}

function readCommon(options: unknown, valuesShape: number[], vectorsShape: number[]) {
  const o = checkOptions(options);
  const clampNonNegative = o['clampNonNegative'] === undefined ? false : checkBoolean(o['clampNonNegative'], 'clampNonNegative');
  const out = checkOptions(o['out'], 'out');
  const values = checkOut(out['values'], 'out.values', valuesShape);
  const vectors = checkOut(out['vectors'], 'out.vectors', vectorsShape);
  return { o, clampNonNegative, values, vectors };
}

/** Eigendecomposition of the symmetric matrix a [n, n] (the mean of a and aᵀ is used). */
export function eigh(a: Tensor, options: EighOptions = {}): EighResult {
  const A = checkMatrixTensor(a, 'a', 2);
  const n = A.shape[0] as number;
  const { clampNonNegative, values, vectors } = readCommon(options, [n], [n, n]);
  const r = native().eigh(handleOf(A, 'a'), values ? handleOf(values, 'out.values') : null, vectors ? handleOf(vectors, 'out.vectors') : null, { clampNonNegative });
  return {
    values: values ?? Tensor.fromNative(r.values),
    vectors: vectors ?? Tensor.fromNative(r.vectors),
    retriedFloat64: r.retriedFloat64,
  };
}

/**
 * Eigendecomposition of a [n, n] starting from the eigenvectors of a nearby matrix
 * (previousVectors [n, n], e.g. the last refresh of an EMA curvature factor). Falls back to
 * a cold solve when the previous basis is stale; keeps it (and says so) if every solve fails.
 * `out.vectors` may be previousVectors itself.
 */
export function eighRefresh(a: Tensor, previousVectors: Tensor, options: EighRefreshOptions = {}): EighRefreshResult {
  const A = checkMatrixTensor(a, 'a', 2);
  const n = A.shape[0] as number;
  const P = checkMatrixTensor(previousVectors, 'previousVectors', 2);
  if (P.shape[0] !== n)
    throw new ShapeError(`previousVectors: expected shape [${n}, ${n}] like a, got [${P.shape.join(', ')}]`, { argument: 'previousVectors', expected: `[${n}, ${n}]`, got: `[${P.shape.join(', ')}]` });
  const { o, clampNonNegative, values, vectors } = readCommon(options, [n], [n, n]);
  const prevValues = checkOut(o['previousValues'], 'previousValues', [n]);
  const opts: { clampNonNegative: boolean; maxResidual?: number; maxOffDiagonal?: number } = { clampNonNegative };
  for (const key of ['maxResidual', 'maxOffDiagonal'] as const) {
    if (o[key] === undefined) continue;
    const v = checkFinite(o[key], key);
    if (!(v > 0)) invalidArgument(key, 'a positive number', describe(v));
    opts[key] = v;
  }
  const r = native().eighRefresh(
    handleOf(A, 'a'),
    handleOf(P, 'previousVectors'),
    prevValues ? handleOf(prevValues, 'previousValues') : null,
    values ? handleOf(values, 'out.values') : null,
    vectors ? handleOf(vectors, 'out.vectors') : null,
    opts,
  );
  return {
    values: values ?? Tensor.fromNative(r.values),
    vectors: vectors ?? Tensor.fromNative(r.vectors),
    retriedFloat64: r.retriedFloat64,
    residual: r.residual,
    offDiagonal: r.offDiagonal,
    fellBack: r.fellBack,
    keptPrevious: r.keptPrevious,
    sweeps: r.sweeps,
  };
}

/** Eigendecompositions of B small symmetric matrices a [B, r, r] (r up to 64 is the intended range). */
export function eighBatched(a: Tensor, options: EighOptions = {}): EighBatchedResult {
  const A = checkMatrixTensor(a, 'a', 3);
  const [b, r] = A.shape as [number, number, number];
  const { clampNonNegative, values, vectors } = readCommon(options, [b, r], [b, r, r]);
  const res = native().eighBatched(handleOf(A, 'a'), values ? handleOf(values, 'out.values') : null, vectors ? handleOf(vectors, 'out.vectors') : null, { clampNonNegative });
  return {
    values: values ?? Tensor.fromNative(res.values),
    vectors: vectors ?? Tensor.fromNative(res.vectors),
    retried: res.retried,
  };
}
