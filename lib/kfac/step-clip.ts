/**
 * The preconditioner's Newton-step clip (docs/KFAC.md#newton-step-clipping): which bound applies
 * to the step tensors P — the per-tensor or global trust ratio (the default), a norm threshold,
 * or the Fisher bound — and its telemetry. The trust ratio and the norm threshold are computed
 * and applied where the tensors live (ops trust_clip), and so is the norm without a clip, their
 * outcome read with the step record (step-record.ts); the Fisher bound scales with
 * `clipNewtonStep` (clip.ts) and reads its numbers at once.
 */
import { NotFiniteError } from '../errors.js';
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
 * The Fisher bound (newtonClip: { mode: 'fisher', c }) of `t.steps` in place at step `s`, with
 * host reads (its ⟨P, ∇W⟩ and norms, clipNewtonStep); writes preClipNorm, clipScale, clipped,
 * clipThreshold. Every other clip goes through the step record (`clipToRecord`, `readClip`).
 */
export function fisherClip(nc: ResolvedNewtonClip, t: StepTensors, s: number, rates: ClipRates, tel: KfacTelemetry): void {
  const cv = at(nc.value, s, 'newtonClip.c');
  tel.clipThreshold = cv;
  const r = clipNewtonStep(t.steps, { mode: 'fisher', c: cv, lr: rates.lr('Fisher-norm'), grads: t.grads });
  tel.preClipNorm = r.norm; // the clip's own reduction: ‖P‖ over all tensors before scaling
  tel.clipScale = r.scale;
  tel.clipped = r.clipped;
}

/** Whether `nc` runs where the tensors live and reports through the step record: every clip but the Fisher bound, and no clip. */
export function clipsOnRecord(nc: ResolvedNewtonClip | null): boolean {
  return nc === null || nc.mode !== 'fisher';
}

/** Where a clip left its outcome in the step record: the clip's slots, or without a clip the steps' Σx² (the telemetry's norm, and the finiteness check). */
export type ClipAt = { kind: 'clip'; at: TrustClipAt } | { kind: 'sums'; at: number } | null;

/**
 * Queues the clip of `t.steps` where the tensors live (ops trust_clip), its outcome into the
 * record: the trust ratio (docs/KFAC.md#default-threshold) with k = κ/η̄ — global: ‖P‖ ≤
 * k·max(‖θ‖, θ_min·√n); per-tensor: ‖P_i‖ ≤ k·√n_i·max(rms θ_i, rms θ, θ_min), θ the tracked
 * weights (and biases) in the order of the step tensors — or a norm threshold (`maxNorm`: ‖P‖ ≤
 * τ, or ‖P_i‖ ≤ τ per tensor, clipNewtonStep's arithmetic). Without a clip only the steps' sums
 * of squares go to the record. Read back with `readClip`; null when there is no step to clip.
 */
export function clipToRecord(nc: ResolvedNewtonClip | null, t: StepTensors, s: number, rates: ClipRates, record: StepRecord): ClipAt {
  if (!nc) return { kind: 'sums', at: record.sums(t.steps).at };
  if (t.steps.length === 0) return null;
  const perTensor = nc.mode === 'per-tensor';
  if (nc.kind === 'maxNorm') return { kind: 'clip', at: record.trustClip(t.steps, t.params, at(nc.value, s, 'newtonClip.maxNorm'), TRUST_FLOOR_RMS, perTensor, true) };
  const k = (rates.trustScale * at(nc.value, s, 'newtonClip.trustRatio')) / rates.trustLr();
  return { kind: 'clip', at: record.trustClip(t.steps, t.params, k, TRUST_FLOOR_RMS, perTensor) };
}

/** The clip's outcome from the record's values: a NotFiniteError for a step with NaN or Inf (nothing was scaled), else the telemetry. */
export function readClip(v: Float64Array, c: ClipAt, t: StepTensors, tel: KfacTelemetry): void {
  if (!c) {
    tel.preClipNorm = 0;
    tel.clipThreshold = Infinity;
    return;
  }
  if (c.kind === 'sums') {
    // no clip: the norm is telemetry, and a non-finite step is refused here as by every clip
    const sums = t.steps.map((_, i) => v[c.at + i]!);
    notFinite(sums, t);
    tel.preClipNorm = Math.sqrt(sums.reduce((a, b) => a + b, 0));
    return;
  }
  const o = c.at.at;
  const bad = v[o + 4]!;
  if (bad > 0) notFinite(t.steps.map((_, i) => (i === bad - 1 ? NaN : 0)), t);
  tel.preClipNorm = v[o]!;
  tel.clipScale = v[o + 1]!;
  tel.clipThreshold = v[o + 2]!;
  tel.clipped = v[o + 3]! === 1;
}

/** NotFiniteError naming the first step tensor whose sum of squares is not finite. */
function notFinite(sums: ArrayLike<number>, t: StepTensors): void {
  for (let i = 0; i < sums.length; i++)
    if (!Number.isFinite(sums[i]!)) throw new NotFiniteError(`tensors[${i}]: the Newton step of ${t.names[i] ?? `tensor ${i}`} is not finite`, { argument: `tensors[${i}]` });
}
