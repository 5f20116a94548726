/**
 * Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: the norm over all
 * gradients together; when it exceeds maxNorm every gradient is scaled by maxNorm/(norm + 1e-6).
 * (The K-FAC optimizer clips the preconditioned step instead; this is the baseline and the
 * ablation of clipping before preconditioning.)
 */
import { NotFiniteError } from '../errors.js';
import { native } from '../native/loader.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkFinite } from '../util/validate.js';

export interface GradClipResult {
  /** The global L2 norm before clipping. */
  norm: number;
  /** The factor applied (1 when no clipping happened). */
  scale: number;
  clipped: boolean;
}

export function clipGradNorm(grads: readonly (Tensor | null)[], maxNorm: number, options: { errorIfNonfinite?: boolean } = {}): GradClipResult {
  const limit = checkFinite(maxNorm, 'maxNorm');
  const live = grads.filter((g): g is Tensor => g !== null);
  let sq = 0;
  if (live.length > 0) for (const v of native().sumSquaresMany(live.map((g) => g.handle))) sq += v;
  const norm = Math.sqrt(sq);
  if (!Number.isFinite(norm) && options.errorIfNonfinite !== false)
    throw new NotFiniteError(`gradients: expected a finite norm, got ${norm}`, { argument: 'grads', expected: 'finite gradients', got: String(norm) });
  const coef = limit / (norm + 1e-6);
  if (coef >= 1) return { norm, scale: 1, clipped: false };
  for (const g of live) native().scale(g.handle, coef, g.handle);
  return { norm, scale: coef, clipped: true };
}
