/** Newton-step clipping: bound the preconditioned step P before the optimizer applies it. */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { handleOf, Tensor } from '../tensor/tensor.js';
import { checkFinite, checkOptions } from '../util/validate.js';
import { kfacNative } from './native.js';

export type ClipNewtonStepOptions =
  | {
      /** 'global' (default): one scale for all tensors; 'per-tensor': one per tensor. */
      mode?: 'global' | 'per-tensor';
      /** τ > 0. */
      maxNorm: number;
    }
  | {
      /** kfac-pytorch's kl_clip: ν = min(1, sqrt(c / (η² Σ⟨P, ∇W⟩))). */
      mode: 'fisher';
      /** The bound c > 0 on the step's quadratic (KL) size. */
      c: number;
      /** The learning rate η > 0 the step will be applied with. */
      lr: number;
      /** ∇W for each step tensor, same shapes. */
      grads: readonly Tensor[];
    };

export interface ClipNewtonStepResult {
  mode: 'global' | 'per-tensor' | 'fisher';
  /** Pre-clip ‖P‖ over all tensors. */
  norm: number;
  /** Pre-clip ‖P_i‖ per tensor. */
  norms: number[];
  /** The scale applied (global and fisher: the one scale; per-tensor: the smallest). */
  scale: number;
  /** The scale applied to each tensor (≤ 1). */
  scales: number[];
  /** Whether any tensor was scaled down. */
  clipped: boolean;
  /** Per tensor: whether it was scaled down. */
  clippedTensors: boolean[];
  /** Fisher mode: Σ⟨P_i, ∇W_i⟩ (before clipping). */
  vg?: number;
}

/**
 * Clips the Newton step in place (tensors are only ever scaled down):
 * - global: `P ← P · min(1, τ/‖P‖)` with ‖P‖ over all tensors;
 * - per-tensor: the same for each tensor on its own;
 * - fisher: `P ← P · ν`, `ν = min(1, sqrt(c / (η² |Σ⟨P, ∇W⟩|)))`; when Σ⟨P, ∇W⟩ = 0 nothing
 *   is scaled. A negative Σ⟨P, ∇W⟩ (not a descent direction: only round-off or broken
 *   factors produce one) is bounded by its magnitude, as kfac-pytorch's kl_clip does.
 * One parallel pass reduces (float64), one scales. NaN or Inf in a step or gradient
 * throws NotFiniteError naming it (e.g. `tensors[3]`) and nothing is scaled.
 */
export function clipNewtonStep(tensors: readonly Tensor[], options: ClipNewtonStepOptions): ClipNewtonStepResult {
  if (!Array.isArray(tensors)) invalidArgument('tensors', 'an array of Tensors', describe(tensors));
  const hs = tensors.map((t, i) => handleOf(t, `tensors[${i}]`));
  const o = checkOptions(options);
  const mode = o['mode'] === undefined ? 'global' : o['mode'];
  let r;
  if (mode === 'global' || mode === 'per-tensor') {
    const maxNorm = checkFinite(o['maxNorm'], 'maxNorm');
    if (maxNorm <= 0) invalidArgument('maxNorm', 'a number > 0', describe(maxNorm));
    r = kfacNative().clipNewtonStep(hs, { mode, maxNorm });
  } else if (mode === 'fisher') {
    const c = checkFinite(o['c'], 'c');
    if (c <= 0) invalidArgument('c', 'a number > 0', describe(c));
    const lr = checkFinite(o['lr'], 'lr');
    if (lr <= 0) invalidArgument('lr', 'a number > 0', describe(lr));
    const grads = o['grads'];
    if (!Array.isArray(grads)) invalidArgument('grads', 'an array of Tensors, one per step tensor', describe(grads));
    if (grads.length !== tensors.length) invalidArgument('grads', `${tensors.length} tensors (one per step tensor)`, `${grads.length}`);
    const hg = grads.map((g: unknown, i: number) => {
      const h = handleOf(g, `grads[${i}]`);
      const t = tensors[i]!;
      const gs = (g as Tensor).shape;
      if (gs.length !== t.shape.length || gs.some((d, k) => d !== t.shape[k]))
        throw new ShapeError(`grads[${i}]: expected shape [${t.shape.join(', ')}] like tensors[${i}], got [${gs.join(', ')}]`, {
          argument: `grads[${i}]`,
          expected: `shape [${t.shape.join(', ')}]`,
          got: `[${gs.join(', ')}]`,
        });
      return h;
    });
    r = kfacNative().clipNewtonStep(hs, { mode, c, lr, grads: hg });
  } else {
    return invalidArgument('mode', "'global', 'per-tensor' or 'fisher'", describe(mode));
  }
  const res: ClipNewtonStepResult = {
    mode,
    norm: r.totalNorm,
    norms: r.norms,
    scale: r.scales.length ? Math.min(...r.scales) : 1,
    scales: r.scales,
    clipped: r.anyClipped,
    clippedTensors: r.clipped,
  };
  if (mode === 'fisher') res.vg = r.vg;
  return res;
}
