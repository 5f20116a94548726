/**
 * The preconditioner's Newton-step clip (docs/KFAC.md#newton-step-clipping): which bound applies
 * to the step tensors P — the per-tensor or global trust ratio (the default), a norm threshold,
 * or the Fisher bound — and its telemetry. The scaling itself is `clipNewtonStep` (clip.ts).
 */
import { NotFiniteError } from '../errors.js';
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { clipNewtonStep } from './clip.js';
import { at, type ResolvedNewtonClip } from './options.js';
import type { KfacTelemetry } from './telemetry.js';

/** The floor of ‖θ‖ in the trust-ratio clip, per element (docs/KFAC.md#default-threshold). */
export const TRUST_FLOOR_RMS = 1e-3;

/** ‖ts‖ over all tensors: one multi-tensor reduction (one host synchronisation on a device). */
export function normOf(ts: readonly Tensor[]): number {
  let sq = 0;
  for (const v of ops.sumSquaresMany(ts)) sq += v;
  return Math.sqrt(sq);
}

export interface StepTensors {
  /** The step tensors P (scaled in place). */
  steps: Tensor[];
  /** ∇W of each step tensor (the Fisher bound reads them). */
  grads: Tensor[];
  /** θ of each step tensor (the trust ratio reads them). */
  params: Tensor[];
  /** The layer of each step tensor (for error messages). */
  names: string[];
}

export interface ClipRates {
  /** The learning rate the step will be applied with; `which` names the clip that needs it. */
  lr(which: string): number;
  /** η̄, the learning rate the trust ratio is relative to. */
  trustLr(): number;
  /** Multiplier of κ (the adaptive step length's). */
  trustScale: number;
}

/** Clips `t.steps` in place by `nc` at step `s` and writes preClipNorm, clipScale, clipped, clipThreshold. */
export function clipSteps(nc: ResolvedNewtonClip | null, t: StepTensors, s: number, rates: ClipRates, tel: KfacTelemetry): void {
  if (!nc) {
    // no clip: the norm is telemetry, and a non-finite step is refused here as by every clip
    const sums = ops.sumSquaresMany(t.steps);
    notFinite(sums, t);
    tel.preClipNorm = Math.sqrt(sums.reduce((a, b) => a + b, 0));
    return;
  }
  let r;
  if (nc.mode === 'fisher') {
    const cv = at(nc.value, s, 'newtonClip.c');
    tel.clipThreshold = cv;
    r = clipNewtonStep(t.steps, { mode: 'fisher', c: cv, lr: rates.lr('Fisher-norm'), grads: t.grads });
  } else if (nc.kind === 'trustRatio') {
    r = trustRatioClip(t, (rates.trustScale * at(nc.value, s, 'newtonClip.trustRatio')) / rates.trustLr(), nc.mode);
    tel.clipThreshold = r.threshold;
  } else {
    const tau = at(nc.value, s, 'newtonClip.maxNorm');
    tel.clipThreshold = tau;
    r = clipNewtonStep(t.steps, { mode: nc.mode, maxNorm: tau });
  }
  tel.preClipNorm = r.norm; // the clip's own reduction: ‖P‖ over all tensors before scaling
  tel.clipScale = r.scale;
  tel.clipped = r.clipped;
}

/** NotFiniteError naming the first step tensor whose sum of squares is not finite. */
function notFinite(sums: ArrayLike<number>, t: StepTensors): void {
  for (let i = 0; i < sums.length; i++)
    if (!Number.isFinite(sums[i]!)) throw new NotFiniteError(`tensors[${i}]: the Newton step of ${t.names[i] ?? `tensor ${i}`} is not finite`, { argument: `tensors[${i}]` });
}

/**
 * The trust-ratio clip (docs/KFAC.md#default-threshold), with k = κ/η̄:
 * global: ‖P‖ ≤ k·max(‖θ‖, θ_min·√n); per-tensor: ‖P_i‖ ≤ k·√n_i·max(rms θ_i, rms θ, θ_min),
 * θ the tracked weights (and biases) in the order of the step tensors.
 */
export function trustRatioClip(t: StepTensors, k: number, mode: 'global' | 'per-tensor'): { norm: number; scale: number; clipped: boolean; threshold: number } {
  const { steps, params } = t;
  // ‖θ_i‖² and, per tensor, ‖P_i‖²: one multi-tensor reduction (θ does not change in between)
  const sums = ops.sumSquaresMany(mode === 'global' ? params : [...params, ...steps]);
  const pSq = sums.slice(0, params.length);
  const n = params.reduce((acc, p) => acc + p.size, 0);
  const rmsAll = Math.max(Math.sqrt(pSq.reduce((a, b) => a + b, 0) / n), TRUST_FLOOR_RMS);
  if (mode === 'global') {
    const tau = k * rmsAll * Math.sqrt(n);
    const r = clipNewtonStep(steps, { mode: 'global', maxNorm: tau });
    return { norm: r.norm, scale: r.scale, clipped: r.clipped, threshold: tau };
  }
  notFinite(sums.slice(params.length), t);
  const norms = steps.map((_, i) => Math.sqrt(sums[params.length + i]!));
  let scale = 1;
  let threshold = Infinity;
  steps.forEach((p, i) => {
    const ni = params[i]!.size;
    const tau = k * Math.sqrt(ni) * Math.max(Math.sqrt(pSq[i]! / ni), rmsAll);
    threshold = Math.min(threshold, tau);
    if (norms[i]! > tau) {
      const si = tau / norms[i]!;
      ops.scale(p, si, p);
      scale = Math.min(scale, si);
    }
  });
  return { norm: Math.sqrt(norms.reduce((a, b) => a + b * b, 0)), scale, clipped: scale < 1, threshold };
}
