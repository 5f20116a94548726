/**
 * The K-FAC preconditioner. It only rewrites gradients — ∇W ← P, the preconditioned step —
 * so any optimizer can apply them afterwards (the KFAC optimizer pairs it with SGD+momentum).
 * Formulas and conventions: docs/KFAC.md. Per step:
 *   0. `capture()` after every backward pushes the layers' (a, g) statistics of that
 *      micro-batch into the blocks' factors, weighted so that n micro-batches of b examples
 *      give the factors of one batch of n·b (docs/KFAC.md#accumulation); `step()` without a
 *      capture since the last step captures once itself (one batch, no accumulation);
 *   1. optional gradient clipping before preconditioning (the ablation);
 *   2. every `factorEvery` steps: the captured statistics are folded into the EMAs;
 *   3. every `inverseEvery` steps each block refreshes its decompositions or inverses (the
 *      small factors at every step, batched by small-factors.ts);
 *   4. each block writes its preconditioned step P;
 *   5. Newton-step clipping of P (docs/KFAC.md#newton-step-clipping), on by default;
 *   6. ∇W ← P.
 * Per-layer blocks: blocks.ts; options and bounds: options.ts; state tensors: state.ts.
 */
import { ConfigError, describe, invalidArgument, KfacError, NotFiniteError } from '../errors.js';
import * as ops from '../ops/index.js';
import type { Hyper } from '../optim/types.js';
import { DeviceValue } from '../tensor/device-value.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOptions } from '../util/validate.js';
import { EigenBlock, InverseBlock, type LayerBlock, type RefreshSink } from './blocks.js';
import { aFactorKey } from './cost.js';
import { EkfacBlock } from './ekfac-block.js';
import { KFactor } from './kfactor.js';
import type { KfacLayer } from './layer.js';
import { at, type KfacMethod, type KfacPreconditionerOptions, type ResolvedNewtonClip, resolveKfacOptions } from './options.js';
import { SmallFactorSolver } from './small-factors.js';
import { type ClipAt, clipsOnRecord, clipToRecord, fisherClip, readClip, type StepTensors, TRUST_FLOOR_RMS } from './step-clip.js';
import { StepRecord, TRUST_CLIP_SLOTS, type TrustClipAt } from './step-record.js';
import { type KfacTelemetry, startTelemetry } from './telemetry.js';

export type { KfacPreconditionerOptions, NewtonClip } from './options.js';
export type { KfacTelemetry } from './telemetry.js';

export interface StepContext {
  /** Examples in the batch the loss was averaged over (N); used when nothing was captured. */
  batchSize: number;
  /** Learning rate the step will be applied with (needed by the trust-ratio and Fisher-norm clips). */
  lr?: number;
  /**
   * The learning rate the trust ratio is relative to (default: `lr`). With a schedule, pass its
   * peak: the radius on P is then κ·(…)/η̄, so the applied step η·P follows the schedule's shape
   * (warm-up and decay shrink it) instead of staying at κ whatever η is.
   */
  trustLr?: number;
  /**
   * The micro-batches' losses still on the device (a forward's `lossValue`): copied into the step
   * record, read with it and resolved (no wait of their own); a non-finite one refuses the step
   * before anything is applied, and its statistics are never folded in.
   */
  losses?: readonly DeviceValue[];
}

export interface CaptureContext {
  /** Examples in this micro-batch, over which its loss was averaged. */
  batchSize: number;
  /**
   * Capture only the layers whose name starts with this prefix (one checkpointed block, while
   * its activations are alive), without ending the micro-batch; the call without it captures
   * the layers not captured yet and ends the micro-batch.
   */
  layers?: string;
}

export { TRUST_FLOOR_RMS } from './step-clip.js';

/** The step record's check: the statistics' sums and flag, and the losses copied in before them. */
interface Checked {
  at: number;
  flag: number;
  losses: readonly DeviceValue[];
  lossAt: number;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

export class KfacPreconditioner {
  readonly layers: readonly KfacLayer[];
  readonly method: KfacMethod;
  readonly warmRefresh: boolean;
  /** Factors of at most this dimension are decomposed at every factor update (0: off). */
  readonly smallFactorDim: number;
  readonly warmupSteps: number;
  readonly lossReduction: 'mean' | 'sum';
  readonly sequence: 'per-row' | 'expand';
  readonly factorInit: 'bias-corrected' | 'identity';
  readonly damping: Hyper;
  readonly factorDecay: Hyper;
  readonly factorEvery: Hyper;
  readonly inverseEvery: Hyper;
  readonly newtonClip: ResolvedNewtonClip | null;
  readonly gradClip: Hyper | null;
  /** Steps taken so far. */
  stepCount = 0;
  /** When set, the damping used instead of the `damping` option (the adaptive-damping controller sets it). */
  dampingOverride: number | null = null;
  /** Multiplier of the trust ratio κ (the adaptive step-length controller of KFAC sets it; 1 otherwise). */
  trustScale = 1;
  #preconditionedSteps = 0;
  #clippedSteps = 0;
  #refreshRound = 0;
  #small: SmallFactorSolver;
  readonly #record = new StepRecord();
  /** The refresh round when the step began (factors decomposed since have a later one). */
  #roundAtStep = 0;
  #factors = new Map<string, KFactor>();
  #blocks: LayerBlock[] = [];
  /** Micro-batches captured since the last step. */
  #captures = 0;
  /** Blocks (and A factors) captured by partial captures of the micro-batch in progress. */
  readonly #partial = new Set<LayerBlock>();
  readonly #partialA = new Set<KFactor>();

  constructor(layers: readonly KfacLayer[], options: KfacPreconditionerOptions = {}) {
    if (!Array.isArray(layers) || layers.length === 0) invalidArgument('layers', 'a non-empty array of K-FAC layers', describe(layers));
    const o = resolveKfacOptions(options);
    this.layers = layers;
    this.damping = o.damping;
    this.factorDecay = o.factorDecay;
    this.factorEvery = o.factorEvery;
    this.inverseEvery = o.inverseEvery;
    this.method = o.method;
    this.warmRefresh = o.warmRefresh;
    this.smallFactorDim = o.smallFactorDim;
    this.#small = new SmallFactorSolver(o.smallFactorDim);
    this.warmupSteps = o.warmupSteps;
    this.lossReduction = o.lossReduction;
    this.sequence = o.sequence;
    this.factorInit = o.factorInit;
    this.newtonClip = o.newtonClip;
    this.gradClip = o.gradClip;

    const names = new Set<string>();
    layers.forEach((l, i) => {
      if (!l || typeof l !== 'object' || typeof l.name !== 'string') invalidArgument(`layers[${i}]`, 'a K-FAC layer { name, weight, input(), outputGrad() }', describe(l));
      if (names.has(l.name)) invalidArgument(`layers[${i}].name`, 'a unique name', JSON.stringify(l.name));
      names.add(l.name);
      const w = l.weight?.tensor;
      if (!(w instanceof Tensor) || w.rank !== 2) invalidArgument(`layers[${i}].weight`, 'a parameter with a 2-D tensor [dout, din]', describe(w));
      const [dout, din] = w.shape as [number, number];
      const hasBias = !!l.bias;
      if (l.bias && (!(l.bias.tensor instanceof Tensor) || l.bias.tensor.rank !== 1 || l.bias.tensor.shape[0] !== dout))
        invalidArgument(`layers[${i}].bias`, `a parameter with a tensor of shape [${dout}]`, describe(l.bias.tensor));
      const a = this.#factor(aFactorKey(l), din + (hasBias ? 1 : 0), hasBias, w, `layers[${i}]`);
      const g = this.#factor(`G:${l.name}`, dout, false, w, `layers[${i}]`);
      this.#blocks.push(this.method === 'inverse' ? new InverseBlock(l, a, g) : this.method === 'ekfac' ? new EkfacBlock(l, a, g) : new EigenBlock(l, a, g));
    });
  }

  #factor(key: string, dim: number, bias: boolean, like: Tensor, where: string): KFactor {
    const f = this.#factors.get(key);
    if (f) {
      if (f.dim !== dim) invalidArgument(`${where}.inputKey`, `an input of size ${f.dim - (bias ? 1 : 0)} like the other layers sharing it`, String(dim - (bias ? 1 : 0)));
      return f;
    }
    const nf = new KFactor(key, dim, bias, like, this.factorInit === 'identity');
    this.#factors.set(key, nf);
    return nf;
  }

  /** The per-layer blocks, in layer order. */
  get blocks(): readonly LayerBlock[] {
    return this.#blocks;
  }

  /** The bias-corrected factors of a layer as float32 arrays (for inspection and tests). */
  factors(layerName: string): { A: Float32Array; G: Float32Array } {
    const b = this.#blocks.find((x) => x.layer.name === layerName);
    if (!b) return invalidArgument('layerName', 'the name of a tracked layer', JSON.stringify(layerName));
    const corr = (f: KFactor) => {
      const t = f.corrected();
      const h = t.device === 'cpu' ? t : t.to('cpu');
      const v = h.toArray();
      if (h !== t) h.dispose();
      t.dispose();
      return v;
    };
    return { A: corr(b.a), G: corr(b.g) };
  }

  #factorsDue(step: number): boolean {
    const every = Math.max(1, Math.round(at(this.factorEvery, step, 'factorEvery')));
    return step % every === 0;
  }

  /**
   * Pushes the statistics of the micro-batch just back-propagated into the factors (call after
   * every backward of an optimizer step; a no-op on steps that do not update factors).
   * A tracked layer without an input or output gradient is a ConfigError naming it.
   */
  capture(ctx: CaptureContext): void {
    const c = checkOptions(ctx, 'context');
    const N = c['batchSize'];
    if (typeof N !== 'number' || !Number.isInteger(N) || N < 1) invalidArgument('batchSize', 'a positive integer', describe(N));
    const only = c['layers'];
    if (only !== undefined && typeof only !== 'string') invalidArgument('layers', 'a layer name prefix', describe(only));
    if (!this.#factorsDue(this.stepCount)) return;
    const micro = this.#captures;
    const read = (b: LayerBlock, what: 'input' | 'outputGrad'): Tensor => {
      let why = 'none';
      try {
        const t = b.layer[what]();
        if (t instanceof Tensor && !t.disposed) return t;
        why = t instanceof Tensor ? 'a disposed tensor' : describe(t);
      } catch (e) {
        if (!(e instanceof KfacError)) throw e;
        why = e.message;
      }
      this.#dropPending();
      throw new ConfigError(
        `K-FAC layer ${b.layer.name} captured nothing in micro-batch ${micro + 1} of step ${this.stepCount} (${what === 'input' ? 'its input' : 'its output gradient'}: ${why}); every tracked layer must take part in every forward and backward`,
        { argument: `layers.${b.layer.name}` },
      );
    };
    // G's weight and denominator (docs/KFAC.md#factors): the per-example gradient is N·g for a mean-reduced loss
    const gw = this.lossReduction === 'mean' ? N * N : 1;
    const doneA = this.#partialA;
    const rows = (x: Tensor) => x.size / Math.max(1, x.shape[x.rank - 1] ?? 1);
    for (const b of this.#blocks) {
      if (this.#partial.has(b) || (only !== undefined && !b.layer.name.startsWith(only))) continue;
      if (only !== undefined) this.#partial.add(b);
      if (!doneA.has(b.a)) {
        doneA.add(b.a);
        const x = read(b, 'input');
        b.a.capture(x, 1, rows(x));
      }
      const g = read(b, 'outputGrad');
      const R = rows(g);
      const dG = this.sequence === 'expand' ? Math.min(R, N) : R;
      b.g.capture(g, gw, dG);
      if (b.capturesRows) b.captureRows(read(b, 'input'), g, gw, dG);
    }
    if (only !== undefined) return;
    this.#partial.clear();
    this.#partialA.clear();
    this.#captures += 1;
  }

  /** Drops every statistic captured since the last step. */
  #dropPending(): void {
    for (const f of this.#factors.values()) f.discard();
    for (const x of this.#blocks) x.discardRows();
    this.#captures = 0;
    this.#partial.clear();
    this.#partialA.clear();
  }

  /** Micro-batches captured since the last step. */
  get pendingCaptures(): number {
    return this.#captures;
  }

  /** Rewrites the tracked gradients in place with the (clipped) Newton step. */
  step(ctx: StepContext): KfacTelemetry {
    const c = checkOptions(ctx, 'context');
    const N = c['batchSize'];
    if (typeof N !== 'number' || !Number.isInteger(N) || N < 1) invalidArgument('batchSize', 'a positive integer', describe(N));
    const s = this.stepCount;
    const damping = this.dampingOverride ?? at(this.damping, s, 'damping');
    const beta = at(this.factorDecay, s, 'factorDecay');
    const inverseEvery = Math.max(1, Math.round(at(this.inverseEvery, s, 'inverseEvery')));
    const sink: RefreshSink = { decompositions: { cold: 0, warm: 0, fallback: 0, kept: 0 }, events: [], residual: NaN };
    const tel = startTelemetry(s, damping, typeof c['lr'] === 'number' ? c['lr'] : NaN, this.trustScale, sink);
    const losses = c['losses'] ?? [];
    if (!Array.isArray(losses) || !losses.every((l) => l instanceof DeviceValue && l.pending))
      invalidArgument('losses', 'an array of device values not yet read (a forward\'s lossValue)', describe(losses));
    const live = this.#blocks.filter((b) => b.grad !== null);
    const grads = live.flatMap((b) => [b.grad as Tensor, ...(b.biasGrad ? [b.biasGrad] : [])]);

    // 1. The captured statistics' check and the raw gradient norm (capturing once now when
    // nothing was pushed), written to the step record: the rows were not scanned at capture
    // (docs/KFAC.md#factors), and the factors' commit below reads the all-finite flag where the
    // factors live, so statistics with NaN or Inf are never folded in; the step refuses them
    // after its one read. Gradient clipping before preconditioning (the ablation) reads its own norm.
    const due = this.#factorsDue(s);
    if (due && this.#captures === 0) this.capture({ batchSize: N });
    const pending = due ? [...this.#factors.values()].filter((f) => f.pending !== undefined) : [];
    const pendingRows = due ? this.#blocks.filter((b) => b.pendingRows !== undefined) : [];
    this.#roundAtStep = this.#refreshRound;
    const rec = this.#record;
    rec.begin(this.#blocks[0]!.layer.weight.tensor, losses.length + pending.length + pendingRows.length + 1 + 2 * Math.max(TRUST_CLIP_SLOTS, grads.length) + this.#factors.size);
    // the losses first: the statistics' flag is 1 only when they are finite too
    const lossAt = rec.values(losses.map((l) => l.tensor));
    const stats = [...pending.map((f) => f.pending as Tensor), ...pendingRows.map((b) => b.pendingRows as Tensor)];
    const checked: Checked =
      stats.length > 0 || losses.length > 0 ? { ...rec.sums(stats, true, { at: lossAt, count: losses.length }), losses, lossAt } : { at: 0, flag: -1, losses, lossAt };
    const guard = { record: rec, slot: checked.flag };
    // ‖∇W‖ for the telemetry, or gradient clipping before preconditioning (the ablation, by the
    // global norm as clipGradNorm: scale maxNorm/(‖∇W‖ + 10⁻⁶) when below 1), queued where the
    // gradients live, so the preconditioning below reads the clipped ones
    let gradSums: { at: number } | null = null;
    let gradClipped: TrustClipAt | null = null;
    if (this.gradClip === null) gradSums = rec.sums(grads);
    else if (grads.length > 0) {
      const gradParams = live.flatMap((b) => [b.layer.weight.tensor, ...(b.biasGrad ? [b.layer.bias!.tensor] : [])]);
      gradClipped = rec.trustClip(grads, gradParams, at(this.gradClip, s, 'gradClip'), TRUST_FLOOR_RMS, false, true, 1e-6);
    } else {
      tel.gradNorm = 0;
      tel.gradClipScale = 1;
    }

    // 2. Factor updates from the captured statistics (skipped on the device if the flag is 0).
    let t0 = process.hrtime.bigint();
    if (due) {
      tel.microBatches = this.#captures;
      for (const f of this.#factors.values()) f.commit(beta, guard);
      for (const b of this.#blocks) b.commitRows(beta, guard);
      tel.factorsUpdated = true;
    }
    this.#captures = 0;
    this.#partial.clear();
    this.#partialA.clear();
    tel.timings.factorsMs = ms(t0);

    // 3. Decompositions / inverses. A refresh reads a number per large factor anyway; before it,
    // the record is read once more, so refused statistics never reach a decomposition.
    t0 = process.hrtime.bigint();
    const anyUnready = this.#blocks.some((b) => !b.ready());
    if ((s % inverseEvery === 0 || anyUnready) && [...this.#factors.values()].every((f) => f.updates > 0 || f.weight > 0)) {
      if (checked.flag >= 0) this.#checkStatistics(rec.read(), checked, pending, pendingRows);
      this.#refreshRound += 1;
      this.#small.refresh(this.#factors.values(), this.warmRefresh, this.#refreshRound, sink, rec);
      for (const b of this.#blocks) b.refresh(damping, this.warmRefresh, this.#refreshRound, sink);
      tel.refreshResidual = sink.residual;
      tel.decomposed = true;
    } else if (this.smallFactorDim > 0 && tel.factorsUpdated) {
      // between refreshes: the small factors (LoRA's r×r side) follow the current factor
      this.#refreshRound += 1;
      this.#small.refresh(this.#factors.values(), this.warmRefresh, this.#refreshRound, sink, rec);
    }
    tel.timings.decompositionsMs = ms(t0);

    // 4–6. Precondition, clip, read the record, write back.
    const preconditioning = s >= this.warmupSteps && this.#blocks.every((b) => b.ready());
    let clip: { t: StepTensors; at: ClipAt } | null = null;
    if (preconditioning) {
      t0 = process.hrtime.bigint();
      for (const b of live) b.precondition(damping);
      tel.timings.preconditionMs = ms(t0);
      t0 = process.hrtime.bigint();
      const steps = live.flatMap((b) => b.steps());
      const params = live.flatMap((b) => [b.layer.weight.tensor, ...(b.Pb && b.biasGrad && b.layer.bias ? [b.layer.bias.tensor] : [])]);
      const names = live.flatMap((b) => [b.layer.name, ...(b.Pb && b.biasGrad && b.layer.bias ? [`${b.layer.name} (bias)`] : [])]);
      const t = { steps, grads, params, names };
      const rates = { lr: (which: string) => this.#lr(c, which), trustLr: () => this.#trustLr(c), trustScale: this.trustScale };
      if (clipsOnRecord(this.newtonClip)) clip = { t, at: clipToRecord(this.newtonClip, t, s, rates, rec) };
      else fisherClip(this.newtonClip!, t, s, rates, tel);
      tel.timings.clipMs = ms(t0);
    }
    // the step's one wait for the device: the statistics' flag, the gradient norm, the small
    // factors' solves, the clip's outcome
    const v = rec.read();
    if (checked.flag >= 0) this.#checkStatistics(v, checked, pending, pendingRows);
    this.#small.checkRecord(v, sink);
    if (gradSums) tel.gradNorm = Math.sqrt(grads.reduce((acc, _, i) => acc + v[gradSums.at + i]!, 0));
    if (gradClipped) {
      const o = gradClipped.at;
      if (v[o + 4]! > 0) throw new NotFiniteError(`gradients: expected a finite norm, got ${v[o]}`, { argument: 'grads', expected: 'finite gradients', got: String(v[o]) });
      tel.gradNorm = v[o]!;
      tel.gradClipScale = v[o + 1]!;
    }
    if (clip) readClip(v, clip.at, clip.t, tel);
    if (preconditioning) {
      t0 = process.hrtime.bigint();
      for (const b of live) {
        ops.copy(b.P, b.grad as Tensor);
        if (b.Pb && b.biasGrad) ops.copy(b.Pb, b.biasGrad);
      }
      tel.timings.clipMs += ms(t0);
      tel.preconditioned = true;
      this.#preconditionedSteps += 1;
      if (tel.clipped) this.#clippedSteps += 1;
    }
    tel.clipRate = this.#preconditionedSteps ? this.#clippedSteps / this.#preconditionedSteps : 0;
    this.stepCount += 1;
    return tel;
  }

  /**
   * Resolves the losses read with the record. Then, when a loss or the captured statistics hold
   * NaN or Inf (the record's flag is 0): the device skipped the statistics' commit (the guard),
   * so the factors and EKFAC's moments are as before the step; their counters go back too, and
   * the eigenvalues the small factors' solve of this step scaled with the advanced counters are
   * scaled again (its eigenpairs are those of the unchanged factors, the same as before). Nothing
   * is applied, the step is refused naming the first non-finite loss, else the first bad factor.
   */
  #checkStatistics(v: Float64Array, checked: Checked, pending: KFactor[], rows: LayerBlock[]): void {
    checked.losses.forEach((l, i) => {
      if (l.pending) l.resolve(v[checked.lossAt + i]!);
    });
    if (v[checked.flag] === 1) return;
    for (const f of this.#factors.values()) {
      f.uncommit();
      if (f.refreshedIn > this.#roundAtStep) f.rescale(); // decomposed in this step
    }
    for (const b of this.#blocks) b.uncommitRows();
    const bad = checked.losses.findIndex((l) => !Number.isFinite(l.value()));
    if (bad >= 0) {
      const m = checked.losses.length > 1 ? ` of micro-batch ${bad + 1}` : '';
      throw new NotFiniteError(`the loss${m} is ${checked.losses[bad]!.value()}: the step was refused and nothing applied`, { argument: 'loss' });
    }
    const names = [...pending.map((f) => `factor ${f.key}`), ...rows.map((b) => `the EKFAC moments of ${b.layer.name}`)];
    const i = Math.max(0, names.findIndex((_, j) => !Number.isFinite(v[checked.at + j]!)));
    const key = pending[i]?.key;
    throw new NotFiniteError(`${names[i] ?? 'a factor'}: the rows captured since the last step hold NaN or Inf; the step was refused and nothing applied`, {
      argument: key ? `factors.${key}` : `layers.${rows[i - pending.length]?.layer.name ?? ''}`,
    });
  }

  /** η̄ of the trust-ratio clip: `trustLr` when given (a positive number), else the step's lr. */
  #trustLr(c: Record<string, unknown>): number {
    const t = c['trustLr'];
    if (t === undefined) return this.#lr(c, 'trust-ratio');
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) invalidArgument('trustLr', 'a positive learning rate', describe(t));
    return t;
  }

  #lr(c: Record<string, unknown>, which: string): number {
    const lr = c['lr'];
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0)
      invalidArgument('lr', `the positive learning rate (the ${which} Newton clip needs it; pass newtonClip: { maxNorm } or null to clip without it)`, describe(lr));
    return lr;
  }

  /** Everything needed to resume: factors, eigenbases or inverses, counters. Tensors are copies. */
  stateDict(): { meta: Record<string, unknown>; tensors: Record<string, Tensor> } {
    const tensors: Record<string, Tensor> = {};
    const factors: Record<string, ReturnType<KFactor['stateMeta']>> = {};
    for (const f of this.#factors.values()) {
      Object.assign(tensors, f.stateTensors());
      factors[f.key] = f.stateMeta();
    }
    const blocks: Record<string, Record<string, number>> = {};
    for (const b of this.#blocks) {
      Object.assign(tensors, b.stateTensors());
      const bm = b.stateMeta();
      if (bm) blocks[b.layer.name] = bm;
    }
    return {
      meta: {
        kind: 'kfac-preconditioner',
        method: this.method,
        step: this.stepCount,
        preconditionedSteps: this.#preconditionedSteps,
        clippedSteps: this.#clippedSteps,
        factors,
        ...(Object.keys(blocks).length ? { blocks } : {}),
      },
      tensors,
    };
  }

  loadStateDict(state: { meta: Record<string, unknown>; tensors: Record<string, Tensor> }): void {
    const m = state.meta;
    if (m['kind'] !== 'kfac-preconditioner' || m['method'] !== this.method) invalidArgument('state.meta', `a ${this.method} K-FAC preconditioner state`, describe(m['kind']));
    const need = (k: string): Tensor => state.tensors[k] ?? invalidArgument(`state.tensors['${k}']`, 'a tensor', 'nothing');
    const factors = m['factors'] as Record<string, ReturnType<KFactor['stateMeta']>>;
    for (const f of this.#factors.values()) f.load(factors[f.key] ?? invalidArgument(`state.meta.factors['${f.key}']`, 'factor metadata', 'nothing'), need);
    const bm = (m['blocks'] ?? {}) as Record<string, Record<string, number>>;
    for (const b of this.#blocks) b.loadState(state.tensors, bm[b.layer.name]);
    this.stepCount = m['step'] as number;
    this.#preconditionedSteps = m['preconditionedSteps'] as number;
    this.#clippedSteps = m['clippedSteps'] as number;
    this.#captures = 0;
    this.#partial.clear();
    this.#partialA.clear();
  }

  dispose(): void {
    this.#small.dispose();
    this.#record.dispose();
    for (const f of this.#factors.values()) f.dispose();
    for (const b of this.#blocks) b.dispose();
  }
}
