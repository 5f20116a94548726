/**
 * Shampoo and SOAP, second-order peers of K-FAC for the comparison (docs/KFAC.md#shampoo-and-soap).
 * For a matrix parameter W [m, n] with gradient Γ: L ← βL + (1−β)ΓΓᵀ, R ← βR + (1−β)ΓᵀΓ
 * (bias-corrected), eigenbases Q_L, Q_R refreshed every `refreshEvery` steps.
 * - shampoo: D = L^{-1/4} M R^{-1/4} with M the first moment of Γ (β₁), grafted per tensor to
 *   the norm of the Adam step m̂/(√v̂ + ε) (layer-wise grafting, as Distributed Shampoo does);
 * - soap: Adam in the eigenbasis: Γ' = Q_Lᵀ Γ Q_R, v' ← β₂v' + (1−β₂)Γ'², D = Q_L (M'/(√v̂' + ε)) Q_Rᵀ
 *   with M' = Q_Lᵀ M Q_R (Vyas et al., 2024).
 * Vectors and other shapes get Adam. The update is θ ← θ − η·D, clipped per tensor by the same
 * trust-ratio rule as K-FAC's default Newton clip (newtonClip: null turns it off).
 * A plain TypeScript implementation in float64 for adapter-sized tensors (LoRA, heads); its state
 * is host memory, so it steps CPU parameters only (a parameter on 'cuda' is a DeviceError, never a
 * silent copy to the host and back).
 */
import { ConfigError, DeviceError, describe, invalidArgument } from '../errors.js';
import { eigh } from '../linalg/eigh.js';
import { Tensor } from '../tensor/tensor.js';
import { DEFAULT_TRUST_RATIO } from '../kfac/options.js';
import { checkKnownOptions, checkOptions, hyperAt, hyperOption, Optimizer, type OptimizerState } from './optimizer.js';
import { TrustReference } from './trust-lr.js';
import type { Hyper, Param } from './types.js';

export interface ShampooOptions {
  /** 'shampoo' (default) or 'soap'. */
  variant?: 'shampoo' | 'soap';
  lr?: Hyper;
  /** β of L and R (default 0.95). */
  factorDecay?: number;
  /** β₁, β₂ of the moments (default 0.9, 0.999). */
  betas?: readonly [number, number];
  eps?: number;
  /** Refresh the eigenbases every this many steps (default 10). */
  refreshEvery?: number;
  /** Trust-ratio clip κ of the update per tensor (default 0.01, K-FAC's library default); null: off. */
  newtonClip?: { trustRatio: number; mode?: 'per-tensor' } | null;
  /**
   * The lr η̄ the trust ratio is relative to: the bound is (η/η̄)·κ·(…), so a schedule shapes the
   * clipped update (default: lr when a number, else the largest lr so far), as K-FAC's trustLr.
   */
  trustLr?: number;
}

interface Slot {
  step: number;
  m: Float64Array;
  v: Float64Array;
  L?: Float64Array;
  R?: Float64Array;
  QL?: Float64Array;
  QR?: Float64Array;
  dL?: Float64Array;
  dR?: Float64Array;
}

export interface ShampooTelemetry {
  lr: number;
  preClipNorm: number;
  clipped: boolean;
  clipRate: number;
  refreshed: boolean;
}

function mm(a: Float64Array, b: Float64Array, m: number, k: number, n: number, tA = false, tB = false): Float64Array {
  const o = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = tA ? a[p * m + i]! : a[i * k + p]!;
      if (av === 0) continue;
      for (let j = 0; j < n; j++) o[i * n + j]! += av * (tB ? b[j * k + p]! : b[p * n + j]!);
    }
  return o;
}

function eigen(F: Float64Array, n: number, corr: number): { Q: Float64Array; d: Float64Array } {
  const t = Tensor.from(Float32Array.from(F, (x) => x / corr), [n, n]);
  const r = eigh(t, { clampNonNegative: true });
  const out = { Q: Float64Array.from(r.vectors.toArray()), d: Float64Array.from(r.values.toArray()) };
  t.dispose();
  r.vectors.dispose();
  r.values.dispose();
  return out;
}

/** Q diag(f(d)) Qᵀ applied as Qᵀ X (side 'left') etc. is done by the callers; this rebuilds Q diag(s) Qᵀ. */
function power(Q: Float64Array, d: Float64Array, n: number, p: number): Float64Array {
  const eps = 1e-4 * Math.max(...d, 0) + 1e-12;
  const s = Array.from(d, (x) => (Math.max(x, 0) + eps) ** p);
  const QS = Float64Array.from(Q, (q, idx) => q * s[idx % n]!);
  return mm(QS, Q, n, n, n, false, true);
}

export class Shampoo extends Optimizer {
  readonly kind: 'shampoo' | 'soap';
  readonly lr: Hyper;
  readonly factorDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly refreshEvery: number;
  readonly trustRatio: number | null;
  #slots = new Map<string, Slot>();
  #clipped = 0;
  readonly #trust: TrustReference;
  last: ShampooTelemetry | undefined;

  constructor(params: readonly Param[], options: ShampooOptions = {}) {
    super(params);
    const o = checkOptions(options);
    checkKnownOptions(o, ['variant', 'lr', 'factorDecay', 'betas', 'eps', 'refreshEvery', 'newtonClip', 'trustLr'], 'Shampoo / SOAP');
    const variant = o['variant'] ?? 'shampoo';
    if (variant !== 'shampoo' && variant !== 'soap') invalidArgument('variant', "'shampoo' or 'soap'", describe(variant));
    this.kind = variant;
    this.lr = hyperOption(o, 'lr', variant === 'soap' ? 3e-3 : 1e-3, 0, 1e6);
    this.factorDecay = hyperAt(hyperOption(o, 'factorDecay', 0.95, 0, 1), 0, 'factorDecay', 0, 1);
    const betas = o['betas'] ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number' && b >= 0 && b < 1)) invalidArgument('betas', 'two numbers in [0, 1)', describe(betas));
    [this.beta1, this.beta2] = betas as [number, number];
    this.eps = hyperAt(hyperOption(o, 'eps', 1e-8, 0, 1), 0, 'eps', 0, 1);
    const re = o['refreshEvery'] ?? 10;
    if (typeof re !== 'number' || !Number.isInteger(re) || re < 1) invalidArgument('refreshEvery', 'a positive integer', describe(re));
    this.refreshEvery = re;
    this.#trust = new TrustReference(o['trustLr']);
    const nc = o['newtonClip'];
    if (nc === null) this.trustRatio = null;
    else {
      const c = checkOptions(nc ?? {}, 'newtonClip');
      // Only the per-tensor trust ratio bounds this update; a norm threshold, a Fisher bound or a
      // global mode would be silently ignored, so they are refused by name.
      for (const k of Object.keys(c))
        if (k !== 'trustRatio' && k !== 'mode') throw new ConfigError(`newtonClip.${k}: ${variant} supports the per-tensor trust-ratio clip ({ trustRatio }) or null, not ${k}`, { argument: `newtonClip.${k}` });
      if (c['mode'] !== undefined && c['mode'] !== 'per-tensor') throw new ConfigError(`newtonClip.mode: ${variant} clips per tensor only, got ${describe(c['mode'])}`, { argument: 'newtonClip.mode' });
      this.trustRatio = hyperAt(hyperOption(c, 'trustRatio', DEFAULT_TRUST_RATIO, 1e-12, 1e6), 0, 'newtonClip.trustRatio', 1e-12, 1e6);
    }
  }

  step(): ShampooTelemetry {
    const lr = hyperAt(this.lr, this.stepCount, 'lr', 0, 1e6);
    const ref = this.#trust.at(lr, typeof this.lr === 'function');
    const lrScale = ref === undefined ? 1 : lr / ref;
    const [b1, b2, bf] = [this.beta1, this.beta2, this.factorDecay];
    const refresh = this.stepCount % this.refreshEvery === 0;
    const live = this.params.filter((p) => this.gradOf(p));
    for (const p of live)
      if (p.tensor.device !== 'cpu')
        throw new DeviceError(`${p.name}: Shampoo/SOAP keep float64 state on the host and step cpu parameters only; got one on ${p.tensor.device}`, {
          argument: p.name,
          expected: 'a parameter on cpu',
          got: p.tensor.device,
          hint: "use KFAC or AdamW for parameters on 'cuda'",
        });
    const thetas = live.map((p) => p.tensor.toArray());
    const nAll = thetas.reduce((a, t) => a + t.length, 0);
    const rmsAll = Math.max(Math.sqrt(thetas.reduce((a, t) => a + t.reduce((s, x) => s + x * x, 0), 0) / Math.max(1, nAll)), 1e-3);
    let pre = 0;
    let anyClipped = false;
    live.forEach((p, pi) => {
      const g = Float64Array.from(this.gradOf(p)!.toArray());
      const s = this.#slot(p);
      s.step += 1;
      const c1 = 1 - b1 ** s.step;
      const c2 = 1 - b2 ** s.step;
      for (let i = 0; i < g.length; i++) s.m[i] = b1 * s.m[i]! + (1 - b1) * g[i]!;
      let D: Float64Array;
      if (p.tensor.rank === 2 && s.L && s.R) {
        const [m, n] = p.tensor.shape as [number, number];
        const GGt = mm(g, g, m, n, m, false, true);
        const GtG = mm(g, g, n, m, n, true, false);
        for (let i = 0; i < s.L.length; i++) s.L[i] = bf * s.L[i]! + (1 - bf) * GGt[i]!;
        for (let i = 0; i < s.R.length; i++) s.R[i] = bf * s.R[i]! + (1 - bf) * GtG[i]!;
        if (refresh || !s.QL) {
          const corr = 1 - bf ** s.step;
          const l = eigen(s.L, m, corr);
          const r = eigen(s.R, n, corr);
          [s.QL, s.dL, s.QR, s.dR] = [l.Q, l.d, r.Q, r.d];
        }
        const QL = s.QL!;
        const QR = s.QR!;
        if (this.kind === 'soap') {
          const gr = mm(mm(QL, g, m, m, n, true), QR, m, n, n);
          const mr = mm(mm(QL, s.m, m, m, n, true), QR, m, n, n);
          const u = new Float64Array(m * n);
          for (let i = 0; i < u.length; i++) {
            s.v[i] = b2 * s.v[i]! + (1 - b2) * gr[i]! * gr[i]!;
            u[i] = mr[i]! / c1 / (Math.sqrt(s.v[i]! / c2) + this.eps);
          }
          D = mm(mm(QL, u, m, m, n), QR, m, n, n, false, true);
        } else {
          for (let i = 0; i < g.length; i++) s.v[i] = b2 * s.v[i]! + (1 - b2) * g[i]! * g[i]!;
          let adamSq = 0;
          for (let i = 0; i < g.length; i++) adamSq += (s.m[i]! / c1 / (Math.sqrt(s.v[i]! / c2) + this.eps)) ** 2;
          D = mm(mm(power(QL, s.dL!, m, -0.25), s.m, m, m, n), power(QR, s.dR!, n, -0.25), m, n, n);
          const dn = Math.sqrt(D.reduce((a, x) => a + x * x, 0));
          const k = dn > 0 ? Math.sqrt(adamSq) / dn : 0;
          for (let i = 0; i < D.length; i++) D[i]! *= k;
        }
      } else {
        D = new Float64Array(g.length);
        for (let i = 0; i < g.length; i++) {
          s.v[i] = b2 * s.v[i]! + (1 - b2) * g[i]! * g[i]!;
          D[i] = s.m[i]! / c1 / (Math.sqrt(s.v[i]! / c2) + this.eps);
        }
      }
      const theta = thetas[pi]!;
      let dn = Math.sqrt(D.reduce((a, x) => a + x * x, 0)) * lr;
      pre += dn * dn;
      let scale = lr;
      if (this.trustRatio !== null) {
        const tau = lrScale * this.trustRatio * Math.sqrt(theta.length) * Math.max(Math.sqrt(theta.reduce((a, x) => a + x * x, 0) / theta.length), rmsAll);
        if (dn > tau) {
          scale = (lr * tau) / dn;
          anyClipped = true;
          dn = tau;
        }
      }
      p.tensor.set(Float32Array.from(theta, (x, i) => x - scale * D[i]!));
    });
    if (anyClipped) this.#clipped += 1;
    this.stepCount += 1;
    this.last = { lr, preClipNorm: Math.sqrt(pre), clipped: anyClipped, clipRate: this.#clipped / this.stepCount, refreshed: refresh };
    return this.last;
  }

  #slot(p: Param): Slot {
    let s = this.#slots.get(p.name);
    if (!s) {
      const n = p.tensor.size;
      s = { step: 0, m: new Float64Array(n), v: new Float64Array(n) };
      if (p.tensor.rank === 2) {
        const [a, b] = p.tensor.shape as [number, number];
        s.L = new Float64Array(a * a);
        s.R = new Float64Array(b * b);
      }
      this.#slots.set(p.name, s);
    }
    return s;
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const perParam: Record<string, Record<string, number>> = {};
    for (const [name, s] of this.#slots) {
      perParam[name] = { step: s.step };
      for (const k of ['m', 'v', 'L', 'R', 'QL', 'QR', 'dL', 'dR'] as const) {
        const a = s[k];
        if (a) tensors[`${name}/${k}`] = Tensor.from(Float32Array.from(a));
      }
    }
    return { kind: this.kind, step: this.stepCount, perParam: { ...perParam, '': { clipped: this.#clipped, peakLr: this.#trust.peak } }, tensors };
  }

  loadStateDict(state: OptimizerState): void {
    if (state.kind !== this.kind) invalidArgument('state.kind', `'${this.kind}'`, describe(state.kind));
    this.#slots.clear();
    for (const p of this.params) {
      const pm = state.perParam[p.name];
      if (!pm) continue;
      const s = this.#slot(p);
      s.step = pm['step'] ?? 0;
      for (const k of ['m', 'v', 'L', 'R', 'QL', 'QR', 'dL', 'dR'] as const) {
        const t = state.tensors[`${p.name}/${k}`];
        if (t) s[k] = Float64Array.from(t.toArray());
      }
    }
    this.#clipped = state.perParam['']?.['clipped'] ?? 0;
    this.#trust.peak = 0;
    this.#trust.restore(state.perParam['']?.['peakLr']);
    this.stepCount = state.step;
  }

  dispose(): void {
    this.#slots.clear();
  }
}
