/**
 * The preconditioner's Newton-step clip (docs/KFAC.md#newton-step-clipping): which bound applies
 * to the step tensors P — the per-tensor or global trust ratio (the default), a norm threshold,
 * or the Fisher bound — and its telemetry. The trust ratio is computed and applied where the
 * tensors live, its outcome read with the step record (step-record.ts); the others scale with
 * `clipNewtonStep` (clip.ts) and read their norms at once.
 */
import { NotFiniteError } from '../errors.js';
import * as ops from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { clipNewtonStep } from './clip.js';
import { at, type ResolvedNewtonClip } from './options.js';
import type { StepRecord, TrustClipAt } from './step-record.js';
import type { KfacTelemetry } from './telemetry.js';

/** The floor of ‖θ‖ in the trust-ratio clip, per element (docs/KFAC.md#default-threshold). */
export const TRUST_FLOOR_RMS = 1e-3;

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

/**
 * Clips `t.steps` in place by `nc` at step `s` with host reads (no clip, a norm threshold, the
 * Fisher bound) and writes preClipNorm, clipScale, clipped, clipThreshold. The trust ratio goes
 * through the step record instead (`trustClipToRecord`, `readTrustClip`).
 */
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
  } else {
    const tau = at(nc.value, s, 'newtonClip.maxNorm');
    tel.clipThreshold = tau;
    r = clipNewtonStep(t.steps, { mode: nc.mode, maxNorm: tau });
  }
  tel.preClipNorm = r.norm; // the clip's own reduction: ‖P‖ over all tensors before scaling
  tel.clipScale = r.scale;
  tel.clipped = r.clipped;
}

/** Whether `nc` is the trust-ratio clip (the default), which runs where the tensors live and reports through the step record. */
export function clipsOnRecord(nc: ResolvedNewtonClip | null): boolean {
  return nc !== null && nc.kind === 'trustRatio' && nc.mode !== 'fisher';
}

/**
 * The trust-ratio clip (docs/KFAC.md#default-threshold), with k = κ/η̄, queued where the tensors
 * live (ops trust_clip): global: ‖P‖ ≤ k·max(‖θ‖, θ_min·√n); per-tensor: ‖P_i‖ ≤
 * k·√n_i·max(rms θ_i, rms θ, θ_min), θ the tracked weights (and biases) in the order of the step
 * tensors. Its outcome is read with the step record (`readTrustClip`); null when there is no step.
 */
export function trustClipToRecord(nc: ResolvedNewtonClip, t: StepTensors, s: number, rates: ClipRates, record: StepRecord): TrustClipAt | null {
  if (t.steps.length === 0) return null;
  const k = (rates.trustScale * at(nc.value, s, 'newtonClip.trustRatio')) / rates.trustLr();
  return record.trustClip(t.steps, t.params, k, TRUST_FLOOR_RMS, nc.mode === 'per-tensor');
}

/** The trust-ratio clip's outcome from the record's values: a NotFiniteError for a step with NaN or Inf (nothing was scaled), else the telemetry. */
export function readTrustClip(v: Float64Array, c: TrustClipAt | null, t: StepTensors, tel: KfacTelemetry): void {
  if (!c) {
    tel.preClipNorm = 0;
    tel.clipThreshold = Infinity;
    return;
  }
  const bad = v[c.at + 4]!;
  if (bad > 0) notFinite(t.steps.map((_, i) => (i === bad - 1 ? NaN : 0)), t);
  tel.preClipNorm = v[c.at]!;
  tel.clipScale = v[c.at + 1]!;
  tel.clipThreshold = v[c.at + 2]!;
  tel.clipped = v[c.at + 3]! === 1;
}

/** NotFiniteError naming the first step tensor whose sum of squares is not finite. */
function notFinite(sums: ArrayLike<number>, t: StepTensors): void {
  for (let i = 0; i < sums.length; i++)
    if (!Number.isFinite(sums[i]!)) throw new NotFiniteError(`tensors[${i}]: the Newton step of ${t.names[i] ?? `tensor ${i}`} is not finite`, { argument: `tensors[${i}]` });
}
