/**
 * The K-FAC preconditioner. It only rewrites gradients — ∇W ← P, the preconditioned step —
 * so any optimizer can apply them afterwards (the KFAC optimizer pairs it with SGD+momentum).
 *
 * Per step (GUIDE §3, §4):
 *   1. optional gradient clipping before preconditioning (the ablation);
 *   2. every `factorEvery` steps, for each layer: A ← βA + (1−β)·ãᵀã/R (ã = [a | 1] with a
 *      bias; layers with one inputKey share A) and G ← βG + (1−β)·N²·gᵀg/R, N the batch size:
 *      the loss is mean-reduced over the batch, so the per-example gradient is N·g
 *      (lossReduction 'sum' uses 1). Factors start at 0 and are bias-corrected by 1 − Πβ
 *      (or start at the identity with factorInit 'identity');
 *   3. every `inverseEvery` steps: eigendecompositions (warm refresh from the last basis when
 *      enabled; float64 retry; the previous basis kept when a decomposition fails) or, for
 *      the inverse method, π-damped inverses;
 *   4. P = Q_G[(Q_Gᵀ ∇W Q_A) ⊘ (d_G d_Aᵀ + λ)]Q_Aᵀ, or (G + √λ/π I)⁻¹ ∇W (A + π√λ I)⁻¹;
 *   5. Newton-step clipping of P: global, per-tensor, or the Fisher-norm (kl_clip) variant;
 *   6. ∇W ← P.
 * No steady-state allocation: factor, step and inverse buffers are made once per layer.
 */
import { describe, invalidArgument, KfacError } from '../errors.js';
import { dampedInverse } from '../linalg/cholesky.js';
import * as ops from '../ops/index.js';
import { clipGradNorm } from '../optim/clip.js';
import { hyperAt, hyperOption } from '../optim/optimizer.js';
import type { Hyper } from '../optim/types.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOptions } from '../util/validate.js';
import { clipNewtonStep } from './clip.js';
import { decompose, type Decomposition } from './decompose.js';
import { updateFactor } from './factor.js';
import type { KfacLayer } from './layer.js';
import { piDamping, preconditionEigen, preconditionInverse } from './precondition.js';

export type NewtonClip = { mode?: 'global' | 'per-tensor'; maxNorm: Hyper } | { mode: 'fisher'; c: Hyper };

export interface KfacPreconditionerOptions {
  /** λ (default 1e-3). */
  damping?: Hyper;
  /** β of the factor EMA (default 0.95). */
  factorDecay?: Hyper;
  /** Update the factors every this many steps (default 1). */
  factorEvery?: Hyper;
  /** Refresh decompositions / inverses every this many steps (default 10). */
  inverseEvery?: Hyper;
  /** 'eigen' (exact damping of A⊗G, default) or 'inverse' (π-damped inverses). */
  method?: 'eigen' | 'inverse';
  /** Refresh eigenbases from the previous basis instead of solving from scratch (default true). */
  warmRefresh?: boolean;
  /** Steps during which factors accumulate but gradients pass through unchanged (default 0). */
  warmupSteps?: number;
  /** Clip the preconditioned step (default: no clipping). */
  newtonClip?: NewtonClip | null;
  /** Clip the raw gradients by global norm before preconditioning (default: off). */
  gradClip?: Hyper | null;
  /** How the loss was reduced over the batch: 'mean' (default) scales G by N², 'sum' by 1. */
  lossReduction?: 'mean' | 'sum';
  /**
   * How the R rows of a layer that sees every token (R = N·T) make up G: 'per-row' (default,
   * G = N²·gᵀg/R, every row an example) or 'expand' (K-FAC-expand for weight sharing over a
   * sequence: an example's gradient is the sum over its tokens, so G = N²·gᵀg/N — R/N times
   * 'per-row'; layers with one row per example, such as a pooled head, are unchanged).
   */
  sequence?: 'per-row' | 'expand';
  /** 'bias-corrected' (default): factors start at 0 and are divided by 1 − Πβ; 'identity': they start at I. */
  factorInit?: 'bias-corrected' | 'identity';
}

export interface StepContext {
  /** Examples in the batch the loss was averaged over (N). */
  batchSize: number;
  /** Learning rate the step will be applied with (needed by the Fisher-norm clip). */
  lr?: number;
}

export interface KfacTelemetry {
  step: number;
  /** False during warm-up: gradients were left as they were. */
  preconditioned: boolean;
  factorsUpdated: boolean;
  decomposed: boolean;
  damping: number;
  /** Global gradient norm before any clipping. */
  gradNorm: number;
  /** ‖P‖ over all layers before Newton-step clipping (NaN when not preconditioned). */
  preClipNorm: number;
  /** Scale the Newton clip applied (1: none). */
  clipScale: number;
  clipped: boolean;
  /** Fraction of preconditioned steps so far whose step was clipped. */
  clipRate: number;
  /** Scale of the gradient clip before preconditioning (1: none). */
  gradClipScale: number;
  decompositions: { cold: number; warm: number; fallback: number; kept: number };
  /** Largest warm-refresh residual ‖AQ − QΛ‖/‖A‖ this step (NaN when none). */
  refreshResidual: number;
  timings: { factorsMs: number; decompositionsMs: number; preconditionMs: number; clipMs: number };
  /** Unusual events: decompositions that failed and kept the previous basis, etc. */
  events: string[];
}

interface Factor {
  key: string;
  dim: number;
  ema: Tensor;
  /** 1 − Πβ over the updates so far (1 with the identity prior). */
  weight: number;
  updates: number;
  decomp: Decomposition | undefined;
  /** Eigenvalues divided by `weight` (what the step uses). */
  dScaled: Tensor | undefined;
}

interface LayerState {
  layer: KfacLayer;
  a: Factor;
  g: Factor;
  dout: number;
  din: number;
  hasBias: boolean;
  P: Tensor;
  Pb: Tensor | null;
  Ainv: Tensor | undefined;
  Ginv: Tensor | undefined;
  /** Bias-corrected copies for the inverse method. */
  scratchA: Tensor | undefined;
  scratchG: Tensor | undefined;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function normOf(ts: readonly Tensor[]): number {
  let sq = 0;
  for (const t of ts) sq += ops.sumSquares(t);
  return Math.sqrt(sq);
}

export class KfacPreconditioner {
  readonly layers: readonly KfacLayer[];
  readonly method: 'eigen' | 'inverse';
  readonly warmRefresh: boolean;
  readonly warmupSteps: number;
  readonly lossReduction: 'mean' | 'sum';
  readonly sequence: 'per-row' | 'expand';
  readonly factorInit: 'bias-corrected' | 'identity';
  readonly damping: Hyper;
  readonly factorDecay: Hyper;
  readonly factorEvery: Hyper;
  readonly inverseEvery: Hyper;
  readonly newtonClip: NewtonClip | null;
  readonly gradClip: Hyper | null;
  /** Steps taken so far. */
  stepCount = 0;
  #preconditionedSteps = 0;
  #clippedSteps = 0;
  #factors = new Map<string, Factor>();
  #states: LayerState[] = [];

  constructor(layers: readonly KfacLayer[], options: KfacPreconditionerOptions = {}) {
    if (!Array.isArray(layers) || layers.length === 0) invalidArgument('layers', 'a non-empty array of K-FAC layers', describe(layers));
    const o = checkOptions(options);
    this.layers = layers;
    this.damping = hyperOption(o, 'damping', 1e-3, 0, Infinity);
    this.factorDecay = hyperOption(o, 'factorDecay', 0.95, 0, 1);
    this.factorEvery = hyperOption(o, 'factorEvery', 1, 1, 1e9);
    this.inverseEvery = hyperOption(o, 'inverseEvery', 10, 1, 1e9);
    const method = o['method'] ?? 'eigen';
    if (method !== 'eigen' && method !== 'inverse') invalidArgument('method', "'eigen' or 'inverse'", describe(method));
    this.method = method;
    const warm = o['warmRefresh'] ?? true;
    if (typeof warm !== 'boolean') invalidArgument('warmRefresh', 'a boolean', describe(warm));
    this.warmRefresh = warm;
    const warmup = o['warmupSteps'] ?? 0;
    if (typeof warmup !== 'number' || !Number.isInteger(warmup) || warmup < 0) invalidArgument('warmupSteps', 'a non-negative integer', describe(warmup));
    this.warmupSteps = warmup;
    const red = o['lossReduction'] ?? 'mean';
    if (red !== 'mean' && red !== 'sum') invalidArgument('lossReduction', "'mean' or 'sum'", describe(red));
    this.lossReduction = red;
    const seq = o['sequence'] ?? 'per-row';
    if (seq !== 'per-row' && seq !== 'expand') invalidArgument('sequence', "'per-row' or 'expand'", describe(seq));
    this.sequence = seq;
    const init = o['factorInit'] ?? 'bias-corrected';
    if (init !== 'bias-corrected' && init !== 'identity') invalidArgument('factorInit', "'bias-corrected' or 'identity'", describe(init));
    this.factorInit = init;
    this.newtonClip = this.#checkNewtonClip(o['newtonClip']);
    const gc = o['gradClip'];
    this.gradClip = gc === undefined || gc === null ? null : hyperOption(o, 'gradClip', 0, 0, Infinity);

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
      const aKey = `A:${l.inputKey ?? l.name}${hasBias ? '+1' : ''}`;
      const a = this.#factor(aKey, din + (hasBias ? 1 : 0), `layers[${i}]`);
      const g = this.#factor(`G:${l.name}`, dout, `layers[${i}]`);
      this.#states.push({
        layer: l,
        a,
        g,
        dout,
        din,
        hasBias,
        P: Tensor.zeros([dout, din]),
        Pb: hasBias ? Tensor.zeros([dout]) : null,
        Ainv: undefined,
        Ginv: undefined,
        scratchA: undefined,
        scratchG: undefined,
      });
    });
  }

  #checkNewtonClip(v: unknown): NewtonClip | null {
    if (v === undefined || v === null) return null;
    const o = checkOptions(v, 'newtonClip');
    const mode = o['mode'] ?? 'global';
    if (mode === 'fisher') return { mode, c: hyperOption(o, 'c', 1e-3, 0, Infinity) };
    if (mode !== 'global' && mode !== 'per-tensor') invalidArgument('newtonClip.mode', "'global', 'per-tensor' or 'fisher'", describe(mode));
    if (o['maxNorm'] === undefined) invalidArgument('newtonClip.maxNorm', 'a positive number or a function of the step', 'nothing');
    return { mode, maxNorm: hyperOption(o, 'maxNorm', 1, 0, Infinity) };
  }

  #factor(key: string, dim: number, where: string): Factor {
    const f = this.#factors.get(key);
    if (f) {
      if (f.dim !== dim) invalidArgument(`${where}.inputKey`, `an input of size ${f.dim - (key.endsWith('+1') ? 1 : 0)} like the other layers sharing it`, String(dim));
      return f;
    }
    const ema = Tensor.zeros([dim, dim]);
    let weight = 0;
    if (this.factorInit === 'identity') {
      const eye = new Float32Array(dim * dim);
      for (let i = 0; i < dim; i++) eye[i * dim + i] = 1;
      ema.set(eye);
      weight = 1;
    }
    const nf: Factor = { key, dim, ema, weight, updates: 0, decomp: undefined, dScaled: undefined };
    this.#factors.set(key, nf);
    return nf;
  }

  /** The bias-corrected factors of a layer as float32 arrays (for inspection and tests). */
  factors(layerName: string): { A: Float32Array; G: Float32Array } {
    const s = this.#states.find((x) => x.layer.name === layerName);
    if (!s) return invalidArgument('layerName', 'the name of a tracked layer', JSON.stringify(layerName));
    const corr = (f: Factor) => {
      const v = f.ema.toArray();
      if (f.weight > 0 && f.weight !== 1) for (let i = 0; i < v.length; i++) v[i] = v[i]! / f.weight;
      return v;
    };
    return { A: corr(s.a), G: corr(s.g) };
  }

  /** Rewrites the tracked gradients in place with the (clipped) Newton step. */
  step(ctx: StepContext): KfacTelemetry {
    const c = checkOptions(ctx, 'context');
    const N = c['batchSize'];
    if (typeof N !== 'number' || !Number.isInteger(N) || N < 1) invalidArgument('batchSize', 'a positive integer', describe(N));
    const s = this.stepCount;
    const damping = hyperAt(this.damping, s, 'damping', 0, 1e12);
    const beta = hyperAt(this.factorDecay, s, 'factorDecay', 0, 1);
    const factorEvery = Math.max(1, Math.round(hyperAt(this.factorEvery, s, 'factorEvery', 1, 1e9)));
    const inverseEvery = Math.max(1, Math.round(hyperAt(this.inverseEvery, s, 'inverseEvery', 1, 1e9)));
    const tel: KfacTelemetry = {
      step: s,
      preconditioned: false,
      factorsUpdated: false,
      decomposed: false,
      damping,
      gradNorm: NaN,
      preClipNorm: NaN,
      clipScale: 1,
      clipped: false,
      clipRate: 0,
      gradClipScale: 1,
      decompositions: { cold: 0, warm: 0, fallback: 0, kept: 0 },
      refreshResidual: NaN,
      timings: { factorsMs: 0, decompositionsMs: 0, preconditionMs: 0, clipMs: 0 },
      events: [],
    };
    const live = this.#states.filter((st) => st.layer.weight.grad !== null);
    const grads = live.flatMap((st) => [st.layer.weight.grad as Tensor, ...(st.hasBias && st.layer.bias?.grad ? [st.layer.bias.grad] : [])]);

    // 1. Gradient clipping before preconditioning (the ablation), and the raw gradient norm.
    if (this.gradClip !== null) {
      const r = clipGradNorm(grads, hyperAt(this.gradClip, s, 'gradClip', 0, 1e12));
      tel.gradNorm = r.norm;
      tel.gradClipScale = r.scale;
    } else {
      tel.gradNorm = normOf(grads);
    }

    // 2. Factor updates.
    let t0 = process.hrtime.bigint();
    if (s % factorEvery === 0) {
      const gScale = this.lossReduction === 'mean' ? N * N : 1;
      const doneA = new Set<string>();
      for (const st of this.#states) {
        if (!doneA.has(st.a.key)) {
          doneA.add(st.a.key);
          this.#update(st.a, st.layer.input(), beta, 1, st.hasBias);
        }
        const g = st.layer.outputGrad();
        const rows = g.size / Math.max(1, g.shape[g.rank - 1] ?? 1);
        this.#update(st.g, g, beta, this.sequence === 'expand' ? gScale * Math.max(1, rows / N) : gScale, false);
      }
      tel.factorsUpdated = true;
    }
    tel.timings.factorsMs = ms(t0);

    // 3. Decompositions / inverses.
    t0 = process.hrtime.bigint();
    const needs = [...this.#factors.values()].some((f) => f.decomp === undefined) && this.method === 'eigen';
    if ((s % inverseEvery === 0 || needs) && [...this.#factors.values()].every((f) => f.updates > 0 || f.weight > 0)) {
      this.#refresh(damping, tel);
      tel.decomposed = true;
    }
    tel.timings.decompositionsMs = ms(t0);

    // 4–6. Precondition, clip, write back.
    if (s >= this.warmupSteps && this.#ready()) {
      t0 = process.hrtime.bigint();
      for (const st of live) this.#precondition(st, damping);
      tel.timings.preconditionMs = ms(t0);
      t0 = process.hrtime.bigint();
      const steps = live.flatMap((st) => [st.P, ...(st.Pb && st.layer.bias?.grad ? [st.Pb] : [])]);
      if (this.newtonClip) {
        const nc = this.newtonClip;
        const r =
          nc.mode === 'fisher'
            ? clipNewtonStep(steps, { mode: 'fisher', c: hyperAt(nc.c, s, 'newtonClip.c', 0, 1e12), lr: this.#lr(c), grads })
            : clipNewtonStep(steps, { mode: nc.mode ?? 'global', maxNorm: hyperAt(nc.maxNorm, s, 'newtonClip.maxNorm', 0, 1e12) });
        tel.preClipNorm = r.norm; // the clip's own reduction: ‖P‖ over all tensors before scaling
        tel.clipScale = r.scale;
        tel.clipped = r.clipped;
      } else {
        tel.preClipNorm = normOf(steps);
      }
      for (const st of live) {
        ops.copy(st.P, st.layer.weight.grad as Tensor);
        if (st.Pb && st.layer.bias?.grad) ops.copy(st.Pb, st.layer.bias.grad);
      }
      tel.timings.clipMs = ms(t0);
      tel.preconditioned = true;
      this.#preconditionedSteps += 1;
      if (tel.clipped) this.#clippedSteps += 1;
    }
    tel.clipRate = this.#preconditionedSteps ? this.#clippedSteps / this.#preconditionedSteps : 0;
    this.stepCount += 1;
    return tel;
  }

  #lr(c: Record<string, unknown>): number {
    const lr = c['lr'];
    if (typeof lr !== 'number' || !Number.isFinite(lr) || lr <= 0) invalidArgument('lr', 'the positive learning rate (the Fisher-norm clip needs it)', describe(lr));
    return lr;
  }

  #update(f: Factor, x: Tensor, beta: number, scale: number, bias: boolean): void {
    const rows = x.rank >= 1 ? x.shape[x.rank - 1] : undefined;
    if (rows === undefined || rows !== f.dim - (bias ? 1 : 0))
      invalidArgument(`rows for factor ${f.key}`, `[R, ${f.dim - (bias ? 1 : 0)}]`, `[${x.shape.join(', ')}]`);
    updateFactor(f.ema, x, { beta, scale, bias });
    f.weight = 1 - (1 - f.weight) * beta;
    f.updates += 1;
  }

  #ready(): boolean {
    if (this.method === 'eigen') return [...this.#factors.values()].every((f) => f.decomp !== undefined);
    return this.#states.every((st) => st.Ainv !== undefined && st.Ginv !== undefined);
  }

  #refresh(damping: number, tel: KfacTelemetry): void {
    if (this.method === 'eigen') {
      let worst = NaN;
      for (const f of this.#factors.values()) {
        const out = decompose(f.ema, f.decomp, this.warmRefresh);
        tel.decompositions[out.kind] += 1;
        if (out.residual !== undefined) worst = Number.isNaN(worst) ? out.residual : Math.max(worst, out.residual);
        if (out.kind === 'kept') tel.events.push(`kept the previous eigenbasis of ${f.key}: ${out.error?.message ?? 'decomposition failed'}`);
        if (f.decomp && f.decomp.Q !== out.result.Q) f.decomp.Q.dispose();
        if (f.decomp && f.decomp.d !== out.result.d) f.decomp.d.dispose();
        if (out.retriedFloat64) tel.events.push(`${f.key}: the float32 solve failed; float64 was used`);
        f.decomp = out.result;
        const scaled = f.dScaled ?? Tensor.zeros([f.dim]);
        ops.scale(f.decomp.d, f.weight > 0 ? 1 / f.weight : 1, scaled);
        f.dScaled = scaled;
      }
      tel.refreshResidual = worst;
      return;
    }
    for (const st of this.#states) {
      st.scratchA ??= Tensor.zeros([st.a.dim, st.a.dim]);
      st.scratchG ??= Tensor.zeros([st.g.dim, st.g.dim]);
      ops.scale(st.a.ema, st.a.weight > 0 ? 1 / st.a.weight : 1, st.scratchA);
      ops.scale(st.g.ema, st.g.weight > 0 ? 1 / st.g.weight : 1, st.scratchG);
      const pi = piDamping(st.scratchA, st.scratchG, damping);
      try {
        st.Ainv = dampedInverse(st.scratchA, { damping: Math.max(pi.dampA, 1e-12), ...(st.Ainv ? { out: st.Ainv } : {}) });
        st.Ginv = dampedInverse(st.scratchG, { damping: Math.max(pi.dampG, 1e-12), ...(st.Ginv ? { out: st.Ginv } : {}) });
        tel.decompositions.cold += 2;
      } catch (e) {
        if (!(e instanceof KfacError) || st.Ainv === undefined || st.Ginv === undefined) throw e;
        tel.decompositions.kept += 2;
        tel.events.push(`kept the previous inverses of ${st.layer.name}: ${e.message}`);
      }
    }
  }

  #precondition(st: LayerState, damping: number): void {
    const gradBias = st.hasBias ? st.layer.bias?.grad ?? undefined : undefined;
    const common = {
      grad: st.layer.weight.grad as Tensor,
      out: st.P,
      ...(gradBias && st.Pb ? { gradBias, outBias: st.Pb } : {}),
    };
    if (this.method === 'eigen') {
      const A = st.a.decomp as Decomposition;
      const G = st.g.decomp as Decomposition;
      preconditionEigen({ ...common, A: { Q: A.Q, d: st.a.dScaled as Tensor }, G: { Q: G.Q, d: st.g.dScaled as Tensor }, damping });
    } else {
      preconditionInverse({ ...common, Ainv: st.Ainv as Tensor, Ginv: st.Ginv as Tensor });
    }
  }

  /** Everything needed to resume: factors, eigenbases or inverses, counters. Tensors are copies. */
  stateDict(): { meta: Record<string, unknown>; tensors: Record<string, Tensor> } {
    const tensors: Record<string, Tensor> = {};
    const factors: Record<string, { weight: number; updates: number; decomposed: boolean }> = {};
    for (const f of this.#factors.values()) {
      tensors[`${f.key}/ema`] = f.ema.clone();
      if (f.decomp) {
        tensors[`${f.key}/Q`] = f.decomp.Q.clone();
        tensors[`${f.key}/d`] = f.decomp.d.clone();
        tensors[`${f.key}/d_scaled`] = (f.dScaled as Tensor).clone();
      }
      factors[f.key] = { weight: f.weight, updates: f.updates, decomposed: !!f.decomp };
    }
    for (const st of this.#states) {
      if (st.Ainv) tensors[`${st.layer.name}/Ainv`] = st.Ainv.clone();
      if (st.Ginv) tensors[`${st.layer.name}/Ginv`] = st.Ginv.clone();
    }
    return {
      meta: { kind: 'kfac-preconditioner', method: this.method, step: this.stepCount, preconditionedSteps: this.#preconditionedSteps, clippedSteps: this.#clippedSteps, factors },
      tensors,
    };
  }

  loadStateDict(state: { meta: Record<string, unknown>; tensors: Record<string, Tensor> }): void {
    const m = state.meta;
    if (m['kind'] !== 'kfac-preconditioner' || m['method'] !== this.method) invalidArgument('state.meta', `a ${this.method} K-FAC preconditioner state`, describe(m['kind']));
    const need = (k: string): Tensor => state.tensors[k] ?? invalidArgument(`state.tensors['${k}']`, 'a tensor', 'nothing');
    const factors = m['factors'] as Record<string, { weight: number; updates: number; decomposed: boolean }>;
    for (const f of this.#factors.values()) {
      const fm = factors[f.key] ?? invalidArgument(`state.meta.factors['${f.key}']`, 'factor metadata', 'nothing');
      ops.copy(need(`${f.key}/ema`), f.ema);
      f.weight = fm.weight;
      f.updates = fm.updates;
      if (fm.decomposed) {
        f.decomp = { Q: need(`${f.key}/Q`).clone(), d: need(`${f.key}/d`).clone() };
        f.dScaled = need(`${f.key}/d_scaled`).clone();
      }
    }
    for (const st of this.#states) {
      const a = state.tensors[`${st.layer.name}/Ainv`];
      const g = state.tensors[`${st.layer.name}/Ginv`];
      if (a) st.Ainv = a.clone();
      if (g) st.Ginv = g.clone();
    }
    this.stepCount = m['step'] as number;
    this.#preconditionedSteps = m['preconditionedSteps'] as number;
    this.#clippedSteps = m['clippedSteps'] as number;
  }

  dispose(): void {
    for (const f of this.#factors.values()) {
      f.ema.dispose();
      f.decomp?.Q.dispose();
      f.decomp?.d.dispose();
      f.dScaled?.dispose();
    }
    for (const st of this.#states) {
      st.P.dispose();
      st.Pb?.dispose();
      st.Ainv?.dispose();
      st.Ginv?.dispose();
      st.scratchA?.dispose();
      st.scratchG?.dispose();
    }
  }
}
