/**
 * The shapes of a fine-tuning run (lib/train/run.ts): its configuration with the defaults the
 * command line fills in, the prepared inputs and the result.
 */
import { DEFAULT_TRUST_RATIO } from '../kfac/options.js';
import type { DeviceRequest } from '../models/index.js';
import type { ResolvedData } from './datasets.js';
import type { TextCodec } from './text.js';
import type { FitResult } from './trainer.js';

export type OptimizerName = 'adamw' | 'kfac' | 'sgd' | 'shampoo' | 'soap';

export interface RunConfig {
  /** A Hugging Face model folder or a llama2.c .bin checkpoint. */
  model: string;
  tokenizer?: string;
  /** See resolveData: GLUE folder, task folder, table file or text. */
  data: string;
  dev?: string;
  textColumn?: string;
  textPairColumn?: string;
  labelColumn?: string;
  /** Cap on training examples / documents used (default: all). */
  trainLimit?: number;
  /** Cap on dev examples (classification) or dev blocks (causal LM). */
  evalLimit?: number;
  /** The PEFT method (default 'lora'). */
  peft?: 'lora' | 'ia3' | 'bitfit' | 'adapter' | 'prefix' | 'prompt';
  /** Bottleneck adapters: 'houlsby' or 'pfeiffer' (default). */
  adapterKind?: 'houlsby' | 'pfeiffer';
  /** Bottleneck adapters: hidden size / bottleneck size (default 16). */
  reductionFactor?: number;
  /** Prompt and prefix tuning: virtual tokens (default 8). */
  numVirtualTokens?: number;
  /** Prefix tuning: PEFT's reparameterisation MLP (default 'off'). */
  prefixProjection?: 'on' | 'off';
  /** IA3: the targets whose input is scaled (default: the family's FFN output projection). */
  feedforwardModules?: string[] | 'all-linear';
  loraR: number;
  loraAlpha: number;
  loraDropout: number;
  /** 'all-linear', or module names (default: the family's query and value projections). */
  targets?: string[] | 'all-linear';
  optimizer: OptimizerName;
  lr: number;
  weightDecay: number;
  /** The lr schedule after warm-up (default 'cosine': decay to 0 at the last step). */
  schedule: 'constant' | 'linear' | 'cosine';
  /** Linear warm-up steps (default: 10% of the run's steps, rounded). */
  warmup?: number;
  momentum: number;
  /** Nesterov momentum for SGD and K-FAC (default 'off'). */
  nesterov?: 'on' | 'off';
  /** K-FAC: what the momentum averages, the clipped Newton steps or the gradients (docs/KFAC.md#momentum). */
  momentumOf?: 'step' | 'gradient';
  damping: number;
  factorDecay: number;
  inverseEvery: number;
  /** K-FAC: steps between factor (and EKFAC moment) updates (default 1: every step; docs/KFAC.md#cost). */
  factorEvery?: number;
  /** K-FAC: factors of at most this dimension are decomposed at every step (default: the method's, docs/KFAC.md#small-factors). */
  smallFactorDim?: number;
  /** K-FAC's G factor over sequences: 'expand' (an example's gradient sums its tokens) or 'per-row'. */
  kfacSequence: 'expand' | 'per-row';
  /**
   * Newton-step clipping (K-FAC only): a norm threshold τ, or 'off'; when absent the default
   * trust-ratio clip with `trustRatio` κ (docs/KFAC.md#default-threshold).
   */
  newtonClip?: number | 'off';
  /** K-FAC preconditioning: 'ekfac' (eigenvalue-corrected, the default), 'eigen' or 'inverse'. */
  kfacMethod: 'eigen' | 'inverse' | 'ekfac';
  /** K-FAC: Levenberg–Marquardt damping from the reduction ratio (one extra forward every 5 steps). */
  adaptiveDamping: 'on' | 'off';
  /** K-FAC's adaptive step length (docs/KFAC.md#adaptive-step-length). */
  adaptiveTrust: 'on' | 'off';
  /** κ of the default trust-ratio Newton clip (K-FAC only). */
  trustRatio: number;
  /**
   * Default: 'per-tensor' for the trust-ratio clip, 'global' for a norm threshold; 'fisher'
   * (kfac-pytorch's kl_clip) takes `newtonClip` as its bound c.
   */
  newtonClipMode?: 'global' | 'per-tensor' | 'fisher';
  /** Gradient clipping by global norm (any optimizer; for K-FAC it clips before preconditioning). */
  gradClip?: number;
  steps?: number;
  epochs: number;
  batchSize: number;
  gradAccumulation: number;
  maxLength: number;
  evalEvery?: number;
  patience?: number;
  seed: number;
  /** Label used in logs and reports. */
  name: string;
  /** Where the model, adapters, optimizer state and batches live (default 'cpu'; 'auto': the GPU when usable). */
  device?: DeviceRequest;
  /** Storage of the frozen base Linear weights (default 'float32'; LoadOptions.dtype). */
  dtype?: 'float32' | 'bfloat16';
  /** Storage of the activations on cuda (default 'float32'; LoadOptions.activations). */
  activations?: 'float32' | 'bfloat16';
  /** Gradient checkpointing per transformer block (K-FAC captures each block during the backward). */
  gradientCheckpointing?: boolean;
}

export const DEFAULTS = {
  loraR: 8,
  loraAlpha: 16,
  loraDropout: 0,
  lr: { adamw: 1e-3, kfac: 0.1, sgd: 0.01, shampoo: 1e-3, soap: 3e-3 } as Record<OptimizerName, number>,
  weightDecay: 0,
  schedule: 'cosine' as const,
  /** The default warm-up as a fraction of the run's steps (K-FAC with the momentum of the gradients: none, `kfacWarmupFraction`). */
  warmupFraction: 0.1,
  /** K-FAC's default warm-up when its momentum averages the gradients: its first step is already the radius (docs/KFAC.md#schedule). */
  kfacWarmupFraction: 0,
  momentum: 0.9,
  damping: 1e-4,
  factorDecay: 0.95,
  inverseEvery: 10,
  kfacSequence: 'expand' as const,
  /** κ of K-FAC's trust-ratio clip in a run (BENCHMARKS.md, "K-FAC at its defaults"); the library's KFAC defaults to 0.01. */
  trustRatio: 0.0125,
  /** κ of K-FAC's clip when the momentum averages the gradients: the step is the radius itself (docs/KFAC.md#momentum). */
  trustRatioOfGradient: 0.035,
  /** What K-FAC's momentum averages in a run. */
  kfacMomentumOf: 'gradient' as const,
  /** κ of Shampoo's and SOAP's trust-ratio clip (their own default, the library's K-FAC default). */
  shampooTrustRatio: DEFAULT_TRUST_RATIO,
  /** K-FAC's momentum in a run is Nesterov's (when momentum > 0); SGD's is plain unless asked. */
  kfacNesterov: 'on' as const,
  adaptiveDamping: 'on' as const,
  adaptiveTrust: 'off' as const,
  kfacMethod: 'ekfac' as const,
  epochs: 1,
  batchSize: 16,
  gradAccumulation: 1,
  maxLength: 128,
  seed: 0,
};

/** The optimizer of a run that names none. */
export const DEFAULT_OPTIMIZER: OptimizerName = 'kfac';

/**
 * A whole configuration from the fields given and the defaults (the optimizer's default lr when
 * none is given; K-FAC when no optimizer is). Checks nothing: the command line's `completeRun`
 * checks the combinations, `prepareRun` the inputs.
 */
export function withDefaults(given: Partial<RunConfig> & Pick<RunConfig, 'model' | 'data'>): RunConfig {
  const optimizer: OptimizerName = given.optimizer ?? DEFAULT_OPTIMIZER;
  const { lr: _lr, warmupFraction: _warmupFraction, kfacWarmupFraction: _kw, shampooTrustRatio: _s, kfacNesterov: _n, trustRatioOfGradient: _g, kfacMomentumOf: _m, ...rest } = DEFAULTS;
  const momentumOf = optimizer === 'kfac' ? (given.momentumOf ?? DEFAULTS.kfacMomentumOf) : given.momentumOf;
  const c: RunConfig = {
    ...rest,
    name: '',
    ...given,
    optimizer,
    lr: given.lr ?? DEFAULTS.lr[optimizer],
    trustRatio: given.trustRatio ?? defaultTrustRatio(optimizer, momentumOf),
    ...(momentumOf === undefined ? {} : { momentumOf }),
  };
  if (c.nesterov === undefined && optimizer === 'kfac' && c.momentum > 0) c.nesterov = DEFAULTS.kfacNesterov;
  return c;
}

/**
 * κ of the default trust-ratio clip of a run of `optimizer`: K-FAC's (the step's own length when
 * its momentum averages the gradients), or Shampoo's and SOAP's.
 */
export function defaultTrustRatio(optimizer: OptimizerName, momentumOf?: 'step' | 'gradient'): number {
  if (optimizer === 'shampoo' || optimizer === 'soap') return DEFAULTS.shampooTrustRatio;
  return optimizer === 'kfac' && (momentumOf ?? DEFAULTS.kfacMomentumOf) === 'gradient' ? DEFAULTS.trustRatioOfGradient : DEFAULTS.trustRatio;
}

/**
 * The default warm-up of a run of `optimizer`, as a fraction of its steps: none for K-FAC with the
 * momentum of the gradients (whose every step is the trust radius, docs/KFAC.md#schedule), else
 * 10%. `momentumOf` absent is today's default, as in `defaultTrustRatio`.
 */
export function defaultWarmupFraction(optimizer: OptimizerName, momentumOf?: 'step' | 'gradient'): number {
  return optimizer === 'kfac' && (momentumOf ?? DEFAULTS.kfacMomentumOf) === 'gradient' ? DEFAULTS.kfacWarmupFraction : DEFAULTS.warmupFraction;
}

export interface PreparedRun {
  config: RunConfig;
  data: ResolvedData;
  codec: TextCodec;
}

export interface RunResult {
  name: string;
  config: RunConfig;
  fit: FitResult;
  totalSteps: number;
  monitor: string;
  mode: 'min' | 'max';
  outDir: string;
}
