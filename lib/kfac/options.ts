/**
 * The K-FAC preconditioner's options: defaults and validation, one rule in one place with one
 * bound. Constructors call `resolveKfacOptions` once; per-step values of hyperparameters that
 * may be functions of the step are read through `at()` with the same bounds. The formulas the
 * options select are in docs/KFAC.md.
 */
import { ConfigError, describe, invalidArgument, NotFiniteError } from '../errors.js';
import type { Hyper } from '../optim/types.js';
import { checkKnownOptions, checkOptions } from '../util/validate.js';

/**
 * Newton-step clipping (docs/KFAC.md#newton-step-clipping):
 * - `{ mode: 'global' | 'per-tensor', maxNorm: τ }`: ‖P‖ ≤ τ;
 * - `{ mode: 'global' | 'per-tensor', trustRatio: κ }`: the applied step η‖P‖ is at most κ
 *   times the tracked weights' norm (per tensor: κ·√n_i·max(rms θ_i, rms θ)); the default is
 *   per-tensor with κ = 0.01;
 * - `{ mode: 'fisher', c }`: kfac-pytorch's kl_clip.
 */
export type NewtonClip =
  | { mode?: 'global' | 'per-tensor'; maxNorm: Hyper }
  | { mode?: 'global' | 'per-tensor'; trustRatio: Hyper }
  | { mode: 'fisher'; c: Hyper };

export type KfacMethod = 'eigen' | 'inverse' | 'ekfac';

export interface KfacPreconditionerOptions {
  /** λ (default 1e-4); the starting value when adaptive damping is on. */
  damping?: Hyper;
  /** β of the factor EMA (default 0.95). */
  factorDecay?: Hyper;
  /** Update the factors every this many steps (default 1). */
  factorEvery?: Hyper;
  /** Refresh decompositions / inverses every this many steps (default 10). */
  inverseEvery?: Hyper;
  /**
   * 'ekfac' (default: eigenvalue-corrected, the Kronecker eigenbasis with running second
   * moments of the projected gradients as its eigenvalues), 'eigen' (exact damping of A⊗G) or
   * 'inverse' (π-damped inverses). docs/KFAC.md#ekfac says why EKFAC is the default.
   */
  method?: KfacMethod;
  /**
   * Eigenvalue correction: true is method 'ekfac' (with 'inverse' a ConfigError); false without a
   * method is 'eigen' (with 'ekfac' a ConfigError).
   */
  eigenvalueCorrection?: boolean;
  /** Refresh eigenbases from the previous basis instead of solving from scratch (default true). */
  warmRefresh?: boolean;
  /**
   * Factors of at most this dimension — LoRA's r×r side — are decomposed again at every factor
   * update, between the `inverseEvery` refreshes, so their eigenbasis is that of the current
   * factor (docs/KFAC.md#small-factors). Default 64 with method 'ekfac' (the default), 0 (off) with 'eigen'; with
   * 'inverse' a ConfigError.
   */
  smallFactorDim?: number;
  /** Steps during which factors accumulate but gradients pass through unchanged (default 0). */
  warmupSteps?: number;
  /** Clip the preconditioned step (default: per-tensor trust ratio 0.01; null: no clipping). */
  newtonClip?: NewtonClip | null;
  /** Clip the raw gradients by global norm before preconditioning (default: off). */
  gradClip?: Hyper | null;
  /** How the loss was reduced over the batch: 'mean' (default) scales G by N², 'sum' by 1. */
  lossReduction?: 'mean' | 'sum';
  /**
   * How the R rows of a layer that sees every token (R = N·T) make up G: 'per-row' (default,
   * every row an example) or 'expand' (K-FAC-expand: an example's gradient sums its tokens).
   * docs/KFAC.md#factors.
   */
  sequence?: 'per-row' | 'expand';
  /** 'bias-corrected' (default): factors start at 0 and are divided by 1 − Πβ; 'identity': they start at I. */
  factorInit?: 'bias-corrected' | 'identity';
}

export interface ResolvedNewtonClip {
  mode: 'global' | 'per-tensor' | 'fisher';
  /** Which quantity the threshold is: maxNorm τ, trustRatio κ, or the Fisher bound c. */
  kind: 'maxNorm' | 'trustRatio' | 'c';
  value: Hyper;
}

export interface ResolvedKfacOptions {
  damping: Hyper;
  factorDecay: Hyper;
  factorEvery: Hyper;
  inverseEvery: Hyper;
  method: KfacMethod;
  warmRefresh: boolean;
  smallFactorDim: number;
  warmupSteps: number;
  newtonClip: ResolvedNewtonClip | null;
  gradClip: Hyper | null;
  lossReduction: 'mean' | 'sum';
  sequence: 'per-row' | 'expand';
  factorInit: 'bias-corrected' | 'identity';
}

/**
 * Levenberg–Marquardt damping from the reduction ratio ρ of the quadratic model
 * (docs/KFAC.md#adaptive-damping): every `every` steps the loss is re-evaluated on the same
 * batch after the step, ρ = (L(θ+δ) − L(θ)) / M(δ); ρ > 3/4 multiplies λ by ω, ρ < 1/4 divides it
 * by ω, λ ∈ [min, max]. With `reject`, a step with ρ < 0 (the loss rose) is undone.
 */
export interface AdaptiveDampingOptions {
  /** Steps between two ρ evaluations (default 5). */
  every?: number;
  /** ω (default (19/20)^every). */
  omega?: number;
  /** Bounds of λ (default [1e-6, 1]). */
  min?: number;
  max?: number;
  /** Undo steps whose loss rose (default false). */
  reject?: boolean;
}

export interface ResolvedAdaptiveDamping {
  every: number;
  omega: number;
  min: number;
  max: number;
  reject: boolean;
}

/** `o[k]` (or `fallback`): a finite number in (lo, hi] (`openLo`) or [lo, hi], else InvalidArgumentError naming `owner.k`. */
function boundedOption(o: Record<string, unknown>, owner: string, k: string, fallback: number, lo: number, hi: number, openLo: boolean): number {
  const x = o[k] ?? fallback;
  if (typeof x !== 'number' || !Number.isFinite(x) || (openLo ? x <= lo : x < lo) || x > hi) invalidArgument(`${owner}.${k}`, `a number in ${openLo ? '(' : '['}${lo}, ${hi}]`, describe(x));
  return x;
}

/** `undefined` / false: off; true: the defaults. */
export function resolveAdaptiveDamping(v: unknown): ResolvedAdaptiveDamping | null {
  if (v === undefined || v === false || v === null) return null;
  const o = v === true ? {} : checkOptions(v, 'adaptiveDamping');
  const every = o['every'] ?? 5;
  if (typeof every !== 'number' || !Number.isInteger(every) || every < 1) invalidArgument('adaptiveDamping.every', 'a positive integer', describe(every));
  const num = (k: string, fallback: number, lo: number, hi: number, openLo: boolean): number => boundedOption(o, 'adaptiveDamping', k, fallback, lo, hi, openLo);
  const omega = num('omega', (19 / 20) ** every, 0, 1, true);
  const min = num('min', 1e-6, 0, 1e12, true);
  const max = num('max', 1, min, 1e12, false);
  const reject = o['reject'] ?? false;
  if (typeof reject !== 'boolean') invalidArgument('adaptiveDamping.reject', 'a boolean', describe(reject));
  if (omega === 1) throw new ConfigError('adaptiveDamping.omega: 1 never changes λ; pass adaptiveDamping: false instead', { argument: 'adaptiveDamping.omega' });
  return { every, omega, min, max, reject };
}

/** The largest factor EKFAC decomposes at every factor update by default (LoRA ranks up to 64). */
export const DEFAULT_SMALL_FACTOR_DIM = 64;
/** The default trust ratio κ of the Newton-step clip (docs/KFAC.md#default-threshold). */
export const DEFAULT_TRUST_RATIO = 0.01;
/** The default Newton clip: per-tensor, trust ratio κ. */
export const DEFAULT_NEWTON_CLIP: NewtonClip = Object.freeze({ mode: 'per-tensor', trustRatio: DEFAULT_TRUST_RATIO });

/** Bounds of every numeric option: [lo, hi], `open` excludes lo. One table, used at construction and per step. */
export const BOUNDS = {
  damping: { lo: 0, hi: 1e12 },
  factorDecay: { lo: 0, hi: 1 },
  factorEvery: { lo: 1, hi: 1e9 },
  inverseEvery: { lo: 1, hi: 1e9 },
  gradClip: { lo: 0, hi: 1e12, open: true },
  'newtonClip.maxNorm': { lo: 0, hi: 1e12, open: true },
  'newtonClip.trustRatio': { lo: 0, hi: 1e6, open: true },
  'newtonClip.c': { lo: 0, hi: 1e12, open: true },
} as const satisfies Record<string, { lo: number; hi: number; open?: boolean }>;

export type BoundedKey = keyof typeof BOUNDS;

function inRange(v: number, key: BoundedKey): boolean {
  const b: { lo: number; hi: number; open?: boolean } = BOUNDS[key];
  return (b.open ? v > b.lo : v >= b.lo) && v <= b.hi;
}

function rangeText(key: BoundedKey): string {
  const b: { lo: number; hi: number; open?: boolean } = BOUNDS[key];
  return `a number in ${b.open ? '(' : '['}${b.lo}, ${b.hi}]`;
}

function checkNumber(v: unknown, key: BoundedKey, where: string): number {
  if (typeof v !== 'number') invalidArgument(key, 'a number or a function of the step', describe(v));
  if (!Number.isFinite(v)) throw new NotFiniteError(`${key}: expected a finite number${where}, got ${describe(v)}`, { argument: key });
  if (!inRange(v, key)) invalidArgument(key, `${rangeText(key)}${where}`, describe(v));
  return v;
}

function hyper(v: unknown, key: BoundedKey, fallback: Hyper): Hyper {
  if (v === undefined) return fallback;
  if (typeof v === 'function') return v as (step: number) => number;
  return checkNumber(v, key, '');
}

/** A hyperparameter's value at a step, checked against the same bound as at construction. */
export function at(h: Hyper, step: number, key: BoundedKey): number {
  return checkNumber(typeof h === 'function' ? h(step) : h, key, ` at step ${step}`);
}

/** An option that takes one of `values`: undefined is `fallback`, anything else an InvalidArgumentError naming `key`. */
export function oneOf<T extends string>(v: unknown, key: string, values: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!values.includes(v as T)) invalidArgument(key, values.map((x) => `'${x}'`).join(', '), describe(v));
  return v as T;
}

/** The one check of a Newton clip; `undefined` gives the default, `null` turns clipping off. */
export function resolveNewtonClip(v: unknown): ResolvedNewtonClip | null {
  if (v === null) return null;
  const o = checkOptions(v === undefined ? DEFAULT_NEWTON_CLIP : v, 'newtonClip');
  // Without a mode: a trust ratio is per tensor (as the default clip), a maxNorm global.
  const mode = oneOf(o['mode'], 'newtonClip.mode', ['global', 'per-tensor', 'fisher'] as const, o['trustRatio'] !== undefined ? 'per-tensor' : 'global');
  if (mode === 'fisher') {
    if (o['maxNorm'] !== undefined || o['trustRatio'] !== undefined) throw new ConfigError("newtonClip: the 'fisher' mode takes c, not maxNorm or trustRatio", { argument: 'newtonClip' });
    return { mode, kind: 'c', value: hyper(o['c'], 'newtonClip.c', 1e-3) };
  }
  if (o['c'] !== undefined) throw new ConfigError(`newtonClip: c belongs to the 'fisher' mode, not '${mode}'`, { argument: 'newtonClip.c' });
  const hasMax = o['maxNorm'] !== undefined;
  const hasRatio = o['trustRatio'] !== undefined;
  if (hasMax === hasRatio) invalidArgument('newtonClip', 'exactly one of maxNorm (a norm) and trustRatio (relative to the weights)', hasMax ? 'both' : 'neither');
  return hasMax ? { mode, kind: 'maxNorm', value: hyper(o['maxNorm'], 'newtonClip.maxNorm', 1) } : { mode, kind: 'trustRatio', value: hyper(o['trustRatio'], 'newtonClip.trustRatio', DEFAULT_TRUST_RATIO) };
}

/** Defaults and validation of every preconditioner option. */
export function resolveKfacOptions(options: unknown): ResolvedKfacOptions {
  const o = checkOptions(options);
  checkKnownOptions(o, ['damping', 'factorDecay', 'factorEvery', 'inverseEvery', 'method', 'eigenvalueCorrection', 'warmRefresh', 'smallFactorDim', 'warmupSteps', 'newtonClip', 'gradClip', 'lossReduction', 'sequence', 'factorInit'], 'K-FAC');
  const warm = o['warmRefresh'] ?? true;
  if (typeof warm !== 'boolean') invalidArgument('warmRefresh', 'a boolean', describe(warm));
  const warmup = o['warmupSteps'] ?? 0;
  if (typeof warmup !== 'number' || !Number.isInteger(warmup) || warmup < 0) invalidArgument('warmupSteps', 'a non-negative integer', describe(warmup));
  const gc = o['gradClip'];
  const ec = o['eigenvalueCorrection'];
  if (ec !== undefined && typeof ec !== 'boolean') invalidArgument('eigenvalueCorrection', 'a boolean', describe(ec));
  let method = oneOf(o['method'], 'method', ['eigen', 'inverse', 'ekfac'] as const, ec === false ? 'eigen' : 'ekfac');
  if (ec === false && method === 'ekfac')
    throw new ConfigError("eigenvalueCorrection: false contradicts method 'ekfac'; use method 'eigen' for K-FAC without the correction", { argument: 'eigenvalueCorrection' });
  if (ec && method === 'inverse')
    throw new ConfigError("eigenvalueCorrection: EKFAC corrects the eigenvalues of the Kronecker eigenbasis, which the 'inverse' method never computes; use method 'eigen' or 'ekfac'", { argument: 'eigenvalueCorrection' });
  if (ec) method = 'ekfac';
  const sfd = o['smallFactorDim'] ?? (method === 'ekfac' ? DEFAULT_SMALL_FACTOR_DIM : 0);
  if (typeof sfd !== 'number' || !Number.isInteger(sfd) || sfd < 0 || sfd > 4096) invalidArgument('smallFactorDim', 'an integer in [0, 4096]', describe(sfd));
  if (sfd > 0 && method === 'inverse')
    throw new ConfigError("smallFactorDim: the 'inverse' method keeps inverses, not eigenbases; use method 'eigen' or 'ekfac', or leave smallFactorDim unset", { argument: 'smallFactorDim' });
  return {
    damping: hyper(o['damping'], 'damping', 1e-4),
    factorDecay: hyper(o['factorDecay'], 'factorDecay', 0.95),
    factorEvery: hyper(o['factorEvery'], 'factorEvery', 1),
    inverseEvery: hyper(o['inverseEvery'], 'inverseEvery', 10),
    method,
    warmRefresh: warm,
    smallFactorDim: sfd,
    warmupSteps: warmup,
    newtonClip: resolveNewtonClip(o['newtonClip']),
    gradClip: gc === undefined || gc === null ? null : hyper(gc, 'gradClip', 1),
    lossReduction: oneOf(o['lossReduction'], 'lossReduction', ['mean', 'sum'] as const, 'mean'),
    sequence: oneOf(o['sequence'], 'sequence', ['per-row', 'expand'] as const, 'per-row'),
    factorInit: oneOf(o['factorInit'], 'factorInit', ['bias-corrected', 'identity'] as const, 'bias-corrected'),
  };
}

/**
 * The adaptive step length (docs/KFAC.md#adaptive-step-length): κ is multiplied by m, and after
 * every preconditioned step m ← m·exp(rate·(h − target)), bounded to [min, max], with
 * h = cos(∇W_t, P_{t−1}) the agreement of the new gradient with the previous (clipped) step —
 * the sign of the hypergradient of the loss with respect to the step length. Consistent
 * directions (h above the target) lengthen the step; noise or overshoot (h near or below 0)
 * shorten it.
 */
export interface AdaptiveTrustOptions {
  /** Rate of the log-multiplier per step (default 0.5). */
  rate?: number;
  /** The agreement h at which m stays put (default 0.05). */
  target?: number;
  /** Bounds of the multiplier m (default [0.25, 4]). */
  min?: number;
  max?: number;
}

export interface ResolvedAdaptiveTrust {
  rate: number;
  target: number;
  min: number;
  max: number;
}

/** `undefined` / false / null: off; true: the defaults. */
export function resolveAdaptiveTrust(v: unknown): ResolvedAdaptiveTrust | null {
  if (v === undefined || v === false || v === null) return null;
  const o = v === true ? {} : checkOptions(v, 'adaptiveTrust');
  for (const k of Object.keys(o)) if (!['rate', 'target', 'min', 'max'].includes(k)) invalidArgument(`adaptiveTrust.${k}`, 'one of rate, target, min, max', k);
  const num = (k: string, fallback: number, lo: number, hi: number): number => boundedOption(o, 'adaptiveTrust', k, fallback, lo, hi, false);

  const rate = num('rate', 0.5, 0, 100);
  const target = num('target', 0.05, -1, 1);
  const min = num('min', 0.25, 1e-6, 1);
  const max = num('max', 4, 1, 1e6);
  return { rate, target, min, max };
}
