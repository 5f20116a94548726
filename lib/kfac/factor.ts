/** K-FAC factor updates: the running curvature factors A and G of a linear layer. */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkOptions } from '../util/validate.js';
import { expectShape, kfacNative } from './native.js';

export interface UpdateFactorOptions {
  /** EMA decay β in [0, 1] (default 0: replace the factor; it is then never read). */
  beta?: number;
  /**
   * Multiplies XᵀX/R (default 1). Use 1 for the A factor. For the G factor with a loss
   * that was mean-reduced over a batch of N examples, the per-example gradient is N·g,
   * so pass scale = N² (a sum-reduced loss needs 1).
   */
  scale?: number;
  /** Append an implicit column of ones to X (the layer has a bias): the factor is (d+1)×(d+1). */
  bias?: boolean;
  /**
   * Refuse rows holding NaN or Inf with a NotFiniteError before the factor changes (default
   * true). `false` skips that scan: on cuda the scan is a host wait per call (its flag is read
   * back), which K-FAC's own capture avoids (docs/KFAC.md#factors); a non-finite row then reaches
   * the factor.
   */
  checkFinite?: boolean;
}

/**
 * One fused update of a curvature factor, in place:
 * `factor ← β·factor + (1−β)·scale/R · X̃ᵀX̃` with X [R, d] (or [..., d]: every leading
 * index is a row) and X̃ = X, or [X | 1] with `bias` (the ones column is never built).
 * Only the lower triangle of the old factor is read (when β ≠ 0); the new factor is
 * exactly symmetric. Returns `factor`.
 */
export function updateFactor(factor: Tensor, x: Tensor, options: UpdateFactorOptions = {}): Tensor {
  const hf = handleOf(factor, 'factor');
  const hx = handleOf(x, 'x');
  const o = checkOptions(options);
  const beta = o['beta'] === undefined ? 0 : checkFinite(o['beta'], 'beta');
  if (beta < 0 || beta > 1) invalidArgument('beta', 'a number in [0, 1]', describe(beta));
  const scale = o['scale'] === undefined ? 1 : checkFinite(o['scale'], 'scale');
  if (scale < 0) invalidArgument('scale', 'a number >= 0', describe(scale));
  const bias = o['bias'] === undefined ? false : checkBoolean(o['bias'], 'bias');
  const checkRows = o['checkFinite'] === undefined ? true : checkBoolean(o['checkFinite'], 'checkFinite');
  if (x.rank < 1)
    throw new ShapeError('x: expected at least 1 dimension (rows × features), got a scalar', { argument: 'x', expected: 'at least 1 dimension', got: '[]' });
  const d = x.shape[x.rank - 1]!;
  if (x.size === 0 || d === 0)
    throw new ShapeError(`x: expected at least one row and one feature, got shape [${x.shape.join(', ')}]`, { argument: 'x', expected: 'a non-empty [R, d]', got: `[${x.shape.join(', ')}]` });
  const D = d + (bias ? 1 : 0);
  expectShape(factor, 'factor', [D, D]);
  kfacNative().factorUpdate(hx, hf, { beta, scale, bias, checkFinite: checkRows });
  return factor;
}

export interface EkfacMomentsOptions {
  /** The eigenvectors of A [Da, Da] and of G [dout, dout] (in their columns). */
  QA: Tensor;
  QG: Tensor;
  /** Weight of this micro-batch, ≥ 0 (default 1). */
  alpha?: number;
  /** Weight of what `acc` holds, in [0, 1] (default 0: replaced, never read). */
  beta?: number;
  /** x̃ = [x | 1] (the layer has a bias; Da = din + 1). */
  bias?: boolean;
}

/**
 * EKFAC's second moments of one micro-batch, in place:
 * `acc ← β·acc + α·(g Q_G)²ᵀ (x̃ Q_A)²` (squares elementwise), x [..., din] a layer's inputs and
 * g [..., dout] its output gradients, row for row; acc [dout, Da]. With α = w/R this is the mean
 * over rows of the squared gradients projected into the Kronecker eigenbasis
 * (docs/KFAC.md#ekfac). Runs where the tensors live. Returns `acc`.
 */
export function ekfacMoments(acc: Tensor, x: Tensor, g: Tensor, options: EkfacMomentsOptions): Tensor {
  const ha = handleOf(acc, 'acc');
  const hx = handleOf(x, 'x');
  const hg = handleOf(g, 'g');
  const o = checkOptions(options);
  const QA = handleOf(o['QA'], 'QA');
  const QG = handleOf(o['QG'], 'QG');
  const alpha = o['alpha'] === undefined ? 1 : checkFinite(o['alpha'], 'alpha');
  if (alpha < 0) invalidArgument('alpha', 'a number >= 0', describe(alpha));
  const beta = o['beta'] === undefined ? 0 : checkFinite(o['beta'], 'beta');
  if (beta < 0 || beta > 1) invalidArgument('beta', 'a number in [0, 1]', describe(beta));
  const bias = o['bias'] === undefined ? false : checkBoolean(o['bias'], 'bias');
  kfacNative().ekfacMoments(hx, hg, QA, QG, ha, { alpha, beta, bias });
  return acc;
}
