/** Matrix products on the native GEMM of the operands' device (cpu, or cuBLAS on cuda). */
import { describe, invalidArgument } from '../errors.js';
import { native } from '../native/loader.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkOptions } from '../util/validate.js';

export interface MatmulOptions {
  /** Use aᵀ (the last two dimensions swapped). */
  transA?: boolean;
  /** Use bᵀ. */
  transB?: boolean;
  /** Scales the product (default 1). */
  alpha?: number;
  /** Scales what `out` held before (default 0; needs `out`). With 0, `out` is never read. */
  beta?: number;
  /** Where to write the result; it must already have the result's shape. */
  out?: Tensor;
  /** cuda: TF32 tensor cores for float32 inputs (about 10 mantissa bits in the products); the CPU ignores it. */
  tf32?: boolean;
}

/**
 * `alpha · op(a) · op(b) + beta · out`, row-major. a: [M, K] or [B, M, K]; b: [K, N] or
 * [B, K, N]; a 2-D operand is broadcast over the other's batch. Returns `out` when given,
 * otherwise a new tensor.
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const ha = handleOf(a, 'a');
  const hb = handleOf(b, 'b');
  const o = checkOptions(options);
  const transA = o['transA'] === undefined ? false : checkBoolean(o['transA'], 'transA');
  const transB = o['transB'] === undefined ? false : checkBoolean(o['transB'], 'transB');
  const alpha = o['alpha'] === undefined ? 1 : checkFinite(o['alpha'], 'alpha');
  const beta = o['beta'] === undefined ? 0 : checkFinite(o['beta'], 'beta');
  const tf32 = o['tf32'] === undefined ? false : checkBoolean(o['tf32'], 'tf32');
  const out = o['out'];
  if (out !== undefined && !(out instanceof Tensor)) invalidArgument('out', 'a Tensor', describe(out));

  // Ranks, inner dimensions, batches, dtypes, devices and beta without out are checked natively, once
  // (native/core/ops.cpp).
  const h = native().matmul(ha, hb, out ? handleOf(out, 'out') : null, { transA, transB, alpha, beta, tf32 });
  return out ?? Tensor.fromNative(h);
}
