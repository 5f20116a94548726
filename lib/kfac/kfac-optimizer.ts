/**
 * KFAC: the K-FAC preconditioner followed by SGD with momentum — the standard pairing — and a
 * per-parameter policy (docs/KFAC.md#per-parameter-policy): parameters K-FAC does not track
 * (norms, embedding-like or other saved modules) get AdamW by default (`untracked: 'adamw'`,
 * lr `untrackedLr`), or the same SGD on their raw gradients (`untracked: 'sgd'`). With the
 * trust-ratio Newton clip, their updates are bounded by the same rule, so the clip covers the
 * whole update.
 *
 * With `adaptiveDamping`, every `every` steps the optimizer asks for the loss at the new
 * weights on the same batch (`wantsLoss()` / `observeLoss()`, driven by the Trainer) and adapts
 * λ by Levenberg–Marquardt from the reduction ratio ρ (docs/KFAC.md#adaptive-damping). A step
 * whose quadratic model is not finite is undone and reported.
 */
import { ConfigError, describe, invalidArgument } from '../errors.js';
import * as ops from '../ops/index.js';
import { hyperAt, type OptimizerState } from '../optim/optimizer.js';
import { AdamW } from '../optim/adamw.js';
import { SGD } from '../optim/sgd.js';
import { TrustReference } from '../optim/trust-lr.js';
import type { Hyper, Param } from '../optim/types.js';
import type { DeviceValue } from '../tensor/device-value.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOptions } from '../util/validate.js';
import type { KfacLayer } from './layer.js';
import { type AdaptiveDampingOptions, type AdaptiveTrustOptions, at, oneOf, resolveAdaptiveDamping, resolveAdaptiveTrust, resolveNewtonClip, type ResolvedAdaptiveDamping, type ResolvedAdaptiveTrust } from './options.js';
import { KfacPreconditioner, type KfacPreconditionerOptions, type KfacTelemetry, TRUST_FLOOR_RMS } from './preconditioner.js';
import { copyInto, stateLike } from './state.js';
import { StepRecord } from './step-record.js';
import { GradientMomentum, type MomentumOf } from './gradient-momentum.js';

export interface KfacOptions extends KfacPreconditionerOptions {
  /** Learning rate (default 0.1 — K-FAC steps are already curvature-scaled). */
  lr?: Hyper;
  /** Momentum μ (default 0.9): SGD's on the clipped Newton step, or the gradients' (`momentumOf`). */
  momentum?: Hyper;
  /** L2 weight decay added to the preconditioned step (default 0). */
  weightDecay?: Hyper;
  nesterov?: boolean;
  /**
   * What the momentum averages (docs/KFAC.md#momentum): 'step' (default; kfac-pytorch's order) the
   * clipped Newton steps, SGD's momentum after the preconditioner; 'gradient' the gradients, whose
   * running average the preconditioner and the clip then take (a run's default).
   */
  momentumOf?: MomentumOf;
  /** The optimizer of parameters K-FAC does not track: 'adamw' (default) or 'sgd' (the K-FAC SGD on raw gradients). */
  untracked?: 'adamw' | 'sgd';
  /** AdamW's learning rate for untracked parameters (default 1e-3). */
  untrackedLr?: Hyper;
  /** Levenberg–Marquardt damping from the reduction ratio (default off; true: the defaults). */
  adaptiveDamping?: AdaptiveDampingOptions | boolean;
  /**
   * The learning rate η̄ the trust-ratio clip is relative to (docs/KFAC.md#default-threshold):
   * the applied step is bounded by (η/η̄)·κ·(…), so a schedule's warm-up and decay shape K-FAC's
   * clipped step as they shape a first-order step. Default: `lr` when it is a number; with a
   * schedule, the largest lr it has given so far (pass the schedule's peak for its warm-up to act).
   */
  trustLr?: number;
  /** The adaptive step length: κ follows the gradient's agreement with the previous step (docs/KFAC.md#adaptive-step-length; default off; true: the defaults). */
  adaptiveTrust?: AdaptiveTrustOptions | boolean;
}

interface Probe {
  /** θ before the step, per parameter (in `params` order; the optimizer's buffers, not disposed with the probe). */
  before: Tensor[];
  /** M(δ), the quadratic model's predicted loss change, from the values of the probe's record. */
  modelOf(v: Float64Array): number;
  /** M(δ) once read; null while the record waits for the losses at the new weights (observeLoss). */
  model: number | null;
  /** Slots the probe's record keeps for those losses. */
  lossSlots: number;
  sgd: OptimizerState | null;
  adamw: OptimizerState | null;
  /** The adaptive step length's multiplier before the step (restored with the weights). */
  trustScale: number;
  tel: KfacTelemetry;
}

export class KFAC {
  readonly preconditioner: KfacPreconditioner;
  readonly sgd: SGD;
  /** AdamW over the untracked parameters (policy 'adamw' with at least one untracked parameter). */
  readonly adamw: AdamW | null;
  readonly params: readonly Param[];
  readonly untracked: 'adamw' | 'sgd';
  #extraPrev: Tensor[] = [];
  readonly adaptive: ResolvedAdaptiveDamping | null;
  /** Telemetry of the last step. */
  last: KfacTelemetry | undefined;
  #lambda: number;
  #probe: Probe | null = null;
  #buffers: { before: Tensor[]; raw: Tensor[]; delta: Tensor[] } | null = null;
  /** The probe's numbers, written where the tensors live and read once. */
  readonly #probeRecord = new StepRecord();
  /** The untracked parameters' trust bound's norms, likewise. */
  readonly #untrackedRecord = new StepRecord();
  readonly #trust: TrustReference;
  readonly adaptiveTrust: ResolvedAdaptiveTrust | null;
  /** The multiplier m of κ (adaptive step length). */
  #trustScale = 1;
  /** P_{t−1} per tracked parameter (adaptive step length; null where a parameter had no step). */
  #prevP: (Tensor | null)[] = [];
  readonly #trackedCount: number;
  /** What the momentum averages; with 'gradient', `gradientMomentum` keeps it and SGD has none. */
  readonly momentumOf: MomentumOf;
  readonly gradientMomentum: GradientMomentum | null;

  constructor(layers: readonly KfacLayer[], extraParams: readonly Param[] = [], options: KfacOptions = {}) {
    const o = checkOptions(options);
    const { lr, momentum, weightDecay, nesterov, momentumOf, adaptiveDamping, untracked, untrackedLr, trustLr, adaptiveTrust, ...pre } = o as KfacOptions;
    this.momentumOf = oneOf(momentumOf, 'momentumOf', ['step', 'gradient'] as const, 'step');
    this.#trust = new TrustReference(trustLr);
    if (untracked !== undefined && untracked !== 'adamw' && untracked !== 'sgd') invalidArgument('untracked', "'adamw' or 'sgd'", describe(untracked));
    this.untracked = untracked ?? 'adamw';
    // every option is checked before the preconditioner allocates its factors
    this.adaptive = resolveAdaptiveDamping(adaptiveDamping);
    this.adaptiveTrust = resolveAdaptiveTrust(adaptiveTrust);
    if (this.adaptiveTrust && resolveNewtonClip((pre as { newtonClip?: unknown }).newtonClip)?.kind !== 'trustRatio')
      throw new ConfigError('adaptiveTrust adapts the trust ratio κ of the Newton clip: it needs newtonClip: { trustRatio } (the default clip)', { argument: 'adaptiveTrust' });
    for (const p of extraParams)
      if (!p || !(p.tensor instanceof Tensor)) invalidArgument('extraParams', 'parameters { name, tensor, grad }', describe(p));
    const tracked = layers.flatMap((l) => [l.weight, ...(l.bias ? [l.bias] : [])]);
    this.#trackedCount = tracked.length;
    this.params = [...tracked, ...extraParams];
    this.preconditioner = new KfacPreconditioner(layers, pre);
    try {
      this.#lambda = at(this.preconditioner.damping, 0, 'damping');
      if (this.adaptive) this.#lambda = Math.min(this.adaptive.max, Math.max(this.adaptive.min, this.#lambda));
      const byAdam = this.untracked === 'adamw' && extraParams.length > 0;
      this.adamw = byAdam ? new AdamW(extraParams, { lr: untrackedLr ?? 1e-3, weightDecay: weightDecay ?? 0 }) : null;
      const sgdParams = byAdam ? tracked : this.params;
      const ofGradient = this.momentumOf === 'gradient';
      this.sgd = new SGD(sgdParams, {
        lr: lr ?? 0.1,
        momentum: ofGradient ? 0 : (momentum ?? 0.9),
        weightDecay: weightDecay ?? 0,
        nesterov: ofGradient ? false : (nesterov ?? false),
      });
      if (ofGradient && nesterov && typeof momentum === 'number' && momentum <= 0)
        invalidArgument('nesterov', 'momentum > 0', `momentum ${momentum}`);
      // SGD's parameters (the untracked ones too under policy 'sgd', for which this is SGD's own momentum)
      this.gradientMomentum = ofGradient ? new GradientMomentum(sgdParams, momentum ?? 0.9, nesterov ?? false) : null;
      if (byAdam) this.#extraPrev = extraParams.map((p) => stateLike(p.tensor, p.tensor.shape));
    } catch (e) {
      this.preconditioner.dispose(); // a bad option after the factors were allocated: give them back
      throw e;
    }
  }

  get stepCount(): number {
    return this.sgd.stepCount;
  }

  /** The damping the next step uses (the controller's λ with adaptive damping). */
  get damping(): number {
    return this.adaptive ? this.#lambda : at(this.preconditioner.damping, this.preconditioner.stepCount, 'damping');
  }

  /** Pushes the statistics of the micro-batch just back-propagated (see KfacPreconditioner.capture). */
  capture(ctx: { batchSize: number; layers?: string }): void {
    this.preconditioner.capture(ctx);
  }

  /** The step reads the micro-batches' losses left on the device with its own record (see `step`). */
  readsLosses(): boolean {
    return true;
  }

  /**
   * Preconditions the tracked gradients, clips the Newton step, applies SGD. `losses`: the
   * micro-batches' losses still on the device (a forward's `lossValue`), read with the step's
   * one wait and resolved; a non-finite one refuses the step (NotFiniteError, nothing applied).
   */
  step(ctx: { batchSize: number; losses?: readonly DeviceValue[] }): KfacTelemetry {
    this.#dropProbe();
    const lrH = this.sgd.lr;
    const lr = typeof lrH === 'function' ? lrH(this.sgd.stepCount) : lrH;
    const probing = this.adaptive !== null && this.sgd.stepCount % this.adaptive.every === 0;
    if (this.adaptive) this.preconditioner.dampingOverride = this.#lambda;
    let sgdState: OptimizerState | null = null;
    let adamState: OptimizerState | null = null;
    // the probe's θ_old, raw gradients and δ: buffers kept across probes (allocated once)
    const buf = probing ? this.#probeBuffers() : null;
    const hasGrad = this.params.map((p) => p.grad !== null && p.grad !== undefined);
    if (buf) {
      this.params.forEach((p, i) => {
        ops.copy(p.tensor, buf.before[i]!);
        if (p.grad) ops.copy(p.grad, buf.raw[i]!);
      });
      sgdState = this.sgd.stateDict(); // restored with the weights when the step is undone
      adamState = this.adamw?.stateDict() ?? null;
    }
    // without trustLr and no positive lr yet, the preconditioner's check names `lr`
    const trustLr = this.#trust.at(lr, typeof lrH === 'function');
    const trustBefore = this.#trustScale;
    const h = this.adaptiveTrust ? this.#adaptTrust() : NaN;
    this.preconditioner.trustScale = this.#trustScale;
    // with momentumOf 'gradient', the preconditioner takes the gradients' momentum; a refused step leaves m and ∇ as they were
    this.gradientMomentum?.apply((m, s) => hyperAt(m, s, 'momentum', 0, 1e6));
    let tel: KfacTelemetry;
    try {
      tel = this.preconditioner.step({ batchSize: ctx.batchSize, lr, ...(trustLr === undefined ? {} : { trustLr }), ...(ctx.losses ? { losses: ctx.losses } : {}) });
    } catch (e) {
      this.gradientMomentum?.revert();
      throw e;
    }
    this.gradientMomentum?.commit();
    tel.lr = lr;
    tel.stepAgreement = h;
    if (this.adaptiveTrust && tel.preconditioned) this.#keepStep();
    this.sgd.step();
    if (this.adamw) this.#stepUntracked(tel, (lr / (trustLr ?? lr)) * this.#trustScale);
    this.last = tel;
    if (!buf) return tel;
    // δ = θ_new − θ_old; θ_old stays in `before` for an undo
    const { before, raw, delta: deltas } = buf;
    this.params.forEach((p, i) => {
      ops.copy(p.tensor, deltas[i]!);
      ops.axpy(-1, before[i]!, deltas[i]!);
    });
    // ⟨δ, ∇⟩ of every parameter with a gradient, every ‖δW‖², ‖δb‖² and every block's curvature
    // ⟨δ̃, G δ̃ A⟩ go to the probe's record where the tensors live and are read once:
    // M(δ) = Σ⟨δ, ∇⟩ + ½ Σ curvature + ½ λ Σ‖δ‖², added in that order
    const withGrad = this.params.flatMap((_, i) => (hasGrad[i] ? [i] : []));
    const index = new Map(this.params.map((p, i) => [p, i]));
    const pairs = this.preconditioner.blocks.map((b) => {
      const dW = deltas[index.get(b.layer.weight)!]!;
      const db = b.layer.bias ? (deltas[index.get(b.layer.bias)!] ?? null) : null;
      return { b, dW, db };
    });
    const squares = pairs.flatMap(({ dW, db }) => (db ? [dW, db] : [dW]));
    const rec = this.#probeRecord;
    // room for the losses at the new weights, which observeLoss copies in before the one read
    const lossSlots = ctx.losses?.length ?? 0;
    rec.begin(this.params[0]!.tensor, withGrad.length + squares.length + pairs.length + lossSlots);
    const dotsAt = rec.dots(withGrad.map((i) => deltas[i]!), withGrad.map((i) => raw[i]!));
    const sqAt = rec.sums(squares).at;
    const terms = pairs.map(({ b, dW, db }) => b.curvatureTerm(dW, db));
    let curvAt: number;
    try {
      curvAt = rec.kroneckerQuadratics(terms.map((t) => t.term));
    } finally {
      for (const t of terms) t.dispose();
    }
    const lambda = this.#lambda;
    // read later, once, with the loss after the step (observeLoss)
    const modelOf = (v: Float64Array): number => {
      let model = 0;
      for (let i = 0; i < withGrad.length; i++) model += v[dotsAt + i]!;
      let sq = 0;
      let k = 0;
      pairs.forEach(({ db }, j) => {
        model += 0.5 * terms[j]!.curvature(v[curvAt + j]!);
        const w = v[sqAt + k++]!;
        sq += w + (db ? v[sqAt + k++]! : 0);
      });
      return model + 0.5 * lambda * sq;
    };
    this.#probe = { before, modelOf, model: null, lossSlots, sgd: sgdState, adamw: adamState, trustScale: trustBefore, tel };
    // a step given its losses on the device (the Trainer's) reads the record with the losses after
    // it (observeLoss: one wait for both); a caller that reads its losses itself gets M(δ) now
    if (lossSlots === 0 && !this.#readModel(this.#probe, rec.read())) this.#dropProbe();
    return tel;
  }

  /** M(δ) from the probe record's values into the probe and its telemetry; a non-finite one undoes the step (false). */
  #readModel(p: Probe, v: Float64Array): boolean {
    const model = (p.model = p.modelOf(v));
    p.tel.quadraticModel = model;
    if (Number.isFinite(model)) return true;
    this.#undo();
    p.tel.rejected = true;
    p.tel.events.push(`the quadratic model of step ${p.tel.step} is not finite (${model}): the step was undone`);
    this.#lambda = Math.min(this.adaptive!.max, this.#lambda / this.adaptive!.omega);
    return false;
  }

  /** Whether the last step waits for the loss at the new weights on the same batch. */
  wantsLoss(): boolean {
    return this.#probe !== null;
  }

  /**
   * The loss on the step's batch before and after the step: ρ = (after − before)/M(δ) adapts λ
   * (ρ > 3/4: λω; ρ < 1/4: λ/ω; bounded); with `reject`, a step whose loss rose is undone, and a
   * non-finite loss after the step always is, as is a step whose quadratic model is not finite.
   * `after`: the loss, or the micro-batches' losses at the new weights still on the device (a
   * forward's `lossValue`, their mean is the loss), which then ride in the probe's record: its
   * one read gives M(δ) and them (each value resolved). Returns the step's telemetry, updated.
   */
  observeLoss(o: { before: number; after: number | readonly DeviceValue[] }): KfacTelemetry | undefined {
    const p = this.#probe;
    if (!p || !this.adaptive) return undefined;
    const a = this.adaptive;
    const rec = this.#probeRecord;
    const deferred = typeof o.after === 'number' ? null : o.after;
    const ride = p.model === null && deferred !== null && deferred.length > 0 && deferred.length <= p.lossSlots && deferred.every((d) => d.pending);
    const at = ride ? rec.values(deferred.map((d) => d.tensor)) : -1;
    // the probe's one wait: M(δ)'s terms, and the losses after the step when they ride along
    const v = p.model === null ? rec.read() : null;
    let after: number;
    if (deferred === null) after = o.after as number;
    else {
      let sum = 0;
      deferred.forEach((d, i) => {
        if (at >= 0) d.resolve(v![at + i]!);
        sum += d.value();
      });
      after = sum / deferred.length;
    }
    if (v && !this.#readModel(p, v)) {
      this.#dropProbe();
      return p.tel;
    }
    const model = p.model!;
    const rho = (after - o.before) / model;
    p.tel.rho = rho;
    if (!Number.isFinite(after) || (a.reject && after > o.before)) {
      this.#undo();
      p.tel.rejected = true;
      p.tel.events.push(`step ${p.tel.step} raised the loss from ${o.before} to ${after}: undone`);
    }
    if (!(rho >= 0.25)) this.#lambda /= a.omega;
    else if (rho > 0.75) this.#lambda *= a.omega;
    this.#lambda = Math.min(a.max, Math.max(a.min, this.#lambda));
    this.preconditioner.dampingOverride = this.#lambda;
    this.#dropProbe();
    return p.tel;
  }

  /**
   * The adaptive step length, before the step: h = cos(∇W_t, P_{t−1}) over the tracked tensors
   * (one dot per tensor and one multi-tensor reduction), m ← clamp(m·exp(rate·(h − target))).
   * Returns h (NaN before the first preconditioned step or when a norm is 0).
   */
  #adaptTrust(): number {
    const a = this.adaptiveTrust!;
    const pairs: [Tensor, Tensor][] = [];
    this.params.slice(0, this.#trackedCount).forEach((p, i) => {
      const prev = this.#prevP[i];
      if (prev && p.grad) pairs.push([p.grad, prev]);
    });
    if (pairs.length === 0) return NaN;
    let dot = 0;
    for (const [g, q] of pairs) dot += ops.dot(g, q);
    const sq = ops.sumSquaresMany(pairs.flat());
    let gg = 0;
    let pp = 0;
    sq.forEach((v, i) => (i % 2 === 0 ? (gg += v) : (pp += v)));
    const h = dot / Math.sqrt(gg * pp);
    if (!Number.isFinite(h)) return NaN;
    this.#trustScale = Math.min(a.max, Math.max(a.min, this.#trustScale * Math.exp(a.rate * (h - a.target))));
    return h;
  }

  /** Keeps this step's clipped Newton step P_t (now in the tracked gradients) for the next agreement. */
  #keepStep(): void {
    this.params.slice(0, this.#trackedCount).forEach((p, i) => {
      if (!p.grad) return;
      let prev = this.#prevP[i] ?? null;
      if (!prev) prev = this.#prevP[i] = stateLike(p.tensor, p.tensor.shape);
      ops.copy(p.grad, prev);
    });
  }

  #undo(): void {
    const p = this.#probe as Probe;
    this.params.forEach((q, i) => ops.copy(p.before[i]!, q.tensor));
    if (p.sgd) this.sgd.loadStateDict(p.sgd);
    if (p.adamw) this.adamw?.loadStateDict(p.adamw);
    this.gradientMomentum?.undo();
    // the adaptive step length forgets the undone step: m as before it, no P_{t−1} (the next h is NaN)
    this.#trustScale = p.trustScale;
    for (const t of this.#prevP) t?.dispose();
    this.#prevP = [];
  }

  /** AdamW on the untracked parameters; with the trust-ratio clip, each update is bounded as a K-FAC tensor's. */
  #stepUntracked(tel: KfacTelemetry, lrScale: number): void {
    const adamw = this.adamw as AdamW;
    const nc = this.preconditioner.newtonClip;
    const trust = nc?.kind === 'trustRatio' ? at(nc.value, tel.step, 'newtonClip.trustRatio') * lrScale : null;
    if (trust === null) return adamw.step();
    adamw.params.forEach((p, i) => ops.copy(p.tensor, this.#extraPrev[i]!));
    adamw.step();
    // the same rule as the K-FAC tensors: ‖δ_i‖ ≤ (η/η̄)·κ·√n_i·max(rms θ_i, rms θ_tracked, θ_min)
    // One reduction for ‖θ_tracked‖² and every ‖θ_old,i‖², one for every ‖δ_i‖², both into a
    // record read once (one host synchronisation).
    const weights = this.preconditioner.blocks.map((b) => b.layer.weight.tensor);
    const params = adamw.params;
    const rec = this.#untrackedRecord;
    rec.begin(weights[0] ?? params[0]!.tensor, weights.length + 2 * this.#extraPrev.length);
    const beforeAt = rec.sums([...weights, ...this.#extraPrev]).at;
    params.forEach((p, i) => ops.axpy(-1, p.tensor, this.#extraPrev[i]!)); // prev ← θ_old − θ_new = −δ
    const deltaAt = rec.sums(this.#extraPrev.slice(0, params.length)).at;
    const v = rec.read();
    const before = Array.from(v.subarray(beforeAt, beforeAt + weights.length + this.#extraPrev.length));
    const deltaSq = Array.from(v.subarray(deltaAt, deltaAt + params.length));
    let sq = 0;
    let n = 0;
    weights.forEach((w, i) => {
      sq += before[i]!;
      n += w.size;
    });
    const rmsAll = Math.max(Math.sqrt(sq / Math.max(1, n)), TRUST_FLOOR_RMS);
    params.forEach((p, i) => {
      const prev = this.#extraPrev[i]!;
      const ni = p.tensor.size;
      const tau = trust * Math.sqrt(ni) * Math.max(Math.sqrt(before[weights.length + i]! / ni), rmsAll);
      const norm = Math.sqrt(deltaSq[i]!);
      if (norm > tau) {
        ops.axpy(1 - tau / norm, prev, p.tensor); // θ ← θ_new + (1 − τ/‖δ‖)(θ_old − θ_new)
        tel.untrackedClipped += 1;
      }
    });
  }

  /** The probe's buffers, one per parameter (θ_old, raw gradient, δ), made at the first probe. */
  #probeBuffers(): { before: Tensor[]; raw: Tensor[]; delta: Tensor[] } {
    const make = () => this.params.map((p) => stateLike(p.tensor, p.tensor.shape));
    this.#buffers ??= { before: make(), raw: make(), delta: make() };
    return this.#buffers;
  }

  #dropProbe(): void {
    if (!this.#probe) return;
    if (this.#probe.sgd) for (const t of Object.values(this.#probe.sgd.tensors)) t.dispose();
    if (this.#probe.adamw) for (const t of Object.values(this.#probe.adamw.tensors)) t.dispose();
    this.#probe = null;
  }

  stateDict(): { meta: Record<string, unknown>; tensors: Record<string, Tensor> } {
    const p = this.preconditioner.stateDict();
    const s = this.sgd.stateDict();
    const tensors: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(p.tensors)) tensors[`preconditioner/${k}`] = v;
    for (const [k, v] of Object.entries(s.tensors)) tensors[`sgd/${k}`] = v;
    const a = this.adamw?.stateDict();
    if (a) for (const [k, v] of Object.entries(a.tensors)) tensors[`adamw/${k}`] = v;
    this.#prevP.forEach((t, i) => {
      if (t) tensors[`trust/prev/${i}`] = t.clone();
    });
    for (const { index, m } of this.gradientMomentum?.buffers() ?? []) tensors[`momentum/${index}`] = m.clone();
    return {
      meta: {
        kind: 'kfac',
        preconditioner: p.meta,
        sgd: { kind: s.kind, step: s.step, perParam: s.perParam },
        ...(a ? { adamw: { kind: a.kind, step: a.step, perParam: a.perParam } } : {}),
        ...(this.adaptive ? { damping: this.#lambda } : {}),
        peakLr: this.#trust.peak,
        ...(this.adaptiveTrust ? { trustScale: this.#trustScale } : {}),
        ...(this.gradientMomentum ? { momentumOf: 'gradient', momentumSteps: this.gradientMomentum.stepCount } : {}),
      },
      tensors,
    };
  }

  loadStateDict(state: { meta: Record<string, unknown>; tensors: Record<string, Tensor> }): void {
    if (state.meta['kind'] !== 'kfac') invalidArgument('state.meta.kind', "'kfac'", describe(state.meta['kind']));
    // before anything is loaded: a momentum buffer of the other kind cannot be carried over
    const savedOf = state.meta['momentumOf'] ?? 'step';
    if (savedOf !== this.momentumOf)
      throw new ConfigError(
        `the checkpoint's momentum averages ${savedOf === 'gradient' ? 'the gradients' : 'the Newton steps'} and this optimizer's averages ${this.momentumOf === 'gradient' ? 'the gradients' : 'the Newton steps'}: resume with momentumOf: '${String(savedOf)}' (--momentum-of ${String(savedOf)})`,
        { argument: 'momentumOf' },
      );
    const pick = (prefix: string) =>
      Object.fromEntries(Object.entries(state.tensors).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    this.preconditioner.loadStateDict({ meta: state.meta['preconditioner'] as Record<string, unknown>, tensors: pick('preconditioner/') });
    const sm = state.meta['sgd'] as { kind: string; step: number; perParam: Record<string, Record<string, number>> };
    this.sgd.loadStateDict({ kind: sm.kind, step: sm.step, perParam: sm.perParam, tensors: pick('sgd/') });
    const am = state.meta['adamw'] as { kind: string; step: number; perParam: Record<string, Record<string, number>> } | undefined;
    if (this.adamw && am) this.adamw.loadStateDict({ kind: am.kind, step: am.step, perParam: am.perParam, tensors: pick('adamw/') });
    const d = state.meta['damping'];
    if (this.adaptive && typeof d === 'number' && Number.isFinite(d)) this.#lambda = d;
    const ts = state.meta['trustScale'];
    if (this.adaptiveTrust && typeof ts === 'number' && Number.isFinite(ts) && ts > 0) this.#trustScale = ts;
    for (const t of this.#prevP) t?.dispose();
    this.#prevP = [];
    if (this.adaptiveTrust)
      this.params.slice(0, this.#trackedCount).forEach((p, i) => {
        const t = state.tensors[`trust/prev/${i}`];
        if (t && t.size === p.tensor.size) {
          const q = stateLike(p.tensor, p.tensor.shape);
          copyInto(t, q);
          this.#prevP[i] = q;
        }
      });
    this.#trust.restore(state.meta['peakLr']);
    if (this.gradientMomentum) {
      const m = new Map<number, Tensor>();
      for (const [k, v] of Object.entries(pick('momentum/'))) m.set(Number(k), v);
      const steps = state.meta['momentumSteps'];
      this.gradientMomentum.load(m, typeof steps === 'number' && Number.isInteger(steps) && steps >= 0 ? steps : 0);
    }
    this.#dropProbe();
  }

  dispose(): void {
    this.#dropProbe();
    this.#probeRecord.dispose();
    this.#untrackedRecord.dispose();
    this.preconditioner.dispose();
    this.sgd.dispose();
    this.adamw?.dispose();
    this.gradientMomentum?.dispose();
    for (const t of this.#extraPrev) t.dispose();
    for (const t of this.#prevP) t?.dispose();
    if (this.#buffers) for (const t of [...this.#buffers.before, ...this.#buffers.raw, ...this.#buffers.delta]) t.dispose();
    this.#buffers = null;
  }
}
