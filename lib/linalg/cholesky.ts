/** Inverses of symmetric positive definite matrices by Cholesky factorisation. */
import { describe, invalidArgument } from '../errors.js';
import { expectShape, expectSquare, kfacNative } from '../kfac/native.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkFinite, checkOptions } from '../util/validate.js';

export interface DampedInverseOptions {
  /** δ added to the diagonal before inverting (default 0). */
  damping?: number;
  /** Where to write the inverse ([n, n]); it may be `a` itself. Default: a new tensor. */
  out?: Tensor;
  /** Called when float32 failed and the float64 retry was used. */
  onFloat64Retry?: () => void;
}

/**
 * `(a + δI)⁻¹` for a symmetric positive definite float32 matrix a [n, n] (only its lower
 * triangle is read; the result is exactly symmetric). Blocked Cholesky, triangular
 * inverse and LᵀL product in float32 on the GEMM; when a + δI is not positive definite
 * in float32 (or the result is not finite) the whole inverse is retried in float64, and
 * if that fails too a NumericalError naming `a` is thrown: raise the damping.
 * `out` is overwritten.
 */
export function dampedInverse(a: Tensor, options: DampedInverseOptions = {}): Tensor {
  const ha = handleOf(a, 'a');
  const o = checkOptions(options);
  const n = expectSquare(a, 'a');
  const damping = o['damping'] === undefined ? 0 : checkFinite(o['damping'], 'damping');
  const out = o['out'];
  if (out !== undefined && !(out instanceof Tensor)) invalidArgument('out', 'a Tensor', describe(out));
  const onRetry = o['onFloat64Retry'];
  if (onRetry !== undefined && typeof onRetry !== 'function') invalidArgument('onFloat64Retry', 'a function', describe(onRetry));
  if (out) expectShape(out, 'out', [n, n]);
  const r = kfacNative().dampedInverse(ha, damping, out ? handleOf(out, 'out') : null);
  if (r.usedFloat64 && onRetry) (onRetry as () => void)();
  return out ?? Tensor.fromNative(r.out);
}
