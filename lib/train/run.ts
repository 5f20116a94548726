/**
 * One fine-tuning run from a plain configuration: load the model and data, apply LoRA, build the
 * optimizer (AdamW, SGD or K-FAC with optional Newton-step or gradient clipping), train with the
 * Trainer, save the adapter in PEFT format, and write `run.json` beside the JSONL log.
 *
 * Everything that can fail on bad input (model, tokenizer, data, options) is checked by
 * `prepareRun` before anything is written.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { ConfigError, FormatError, KfacError } from '../errors.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { BEST, CHECKPOINTS, dropoutState, INTERRUPTED, newestCheckpoint, restoreDropoutState } from './checkpoints.js';
import { KFAC } from '../kfac/kfac-optimizer.js';
import type { NewtonClip } from '../kfac/options.js';
import { captureBlockwise, type DeviceRequest, loadModel, type TransformerModel, withOomContext } from '../models/index.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { warmupConstant, warmupCosine, warmupLinear } from '../optim/schedule.js';
import { SGD } from '../optim/sgd.js';
import { Shampoo } from '../optim/shampoo.js';
import {
  applyBitfit,
  applyBottleneck,
  applyIa3,
  applyLora,
  applyPrefixTuning,
  applyPromptTuning,
  kfacLayersForBitfit,
  kfacLayersForBottleneck,
  kfacLayersForIa3,
  kfacLayersForLora,
  kfacLayersForPrefix,
  kfacLayersForPrompt,
  loadCheckpoint,
  saveAdapter,
  saveBitfit,
  saveBottleneck,
  saveCheckpoint,
  savePrefixTuning,
  savePromptTuning,
  saveIa3Adapter,
  untrackedParameters,
  untrackedTrainable,
} from '../peft/index.js';
import { DataError } from './data.js';
import { resolveData, type ResolvedData } from './datasets.js';
import { CausalLmTask, ClassificationTask } from './tasks.js';
import { resolveSeq2SeqData, Seq2SeqTask } from './seq2seq.js';
import { isT5Json } from '../models/t5-config.js';
import type { T5Model } from '../models/t5.js';
import { openTextCodec, type TextCodec } from './text.js';
import { type FitResult, Trainer, type TrainerEvent, type TrainerState, writeJsonAtomic } from './trainer.js';

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
  damping: number;
  factorDecay: number;
  inverseEvery: number;
  /** K-FAC's G factor over sequences: 'expand' (an example's gradient sums its tokens) or 'per-row'. */
  kfacSequence: 'expand' | 'per-row';
  /**
   * Newton-step clipping (K-FAC only): a norm threshold τ, or 'off'; when absent the default
   * trust-ratio clip with `trustRatio` κ (docs/KFAC.md#default-threshold).
   */
  newtonClip?: number | 'off';
  /** K-FAC preconditioning: 'eigen' (default), 'inverse' or 'ekfac' (eigenvalue-corrected). */
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
  /** The default warm-up as a fraction of the run's steps. */
  warmupFraction: 0.1,
  momentum: 0.9,
  damping: 1e-3,
  factorDecay: 0.95,
  inverseEvery: 10,
  kfacSequence: 'expand' as const,
  trustRatio: 0.01,
  adaptiveDamping: 'on' as const,
  adaptiveTrust: 'off' as const,
  kfacMethod: 'eigen' as const,
  epochs: 1,
  batchSize: 16,
  gradAccumulation: 1,
  maxLength: 128,
  seed: 0,
};

/** PEFT's default LoRA targets per architecture (query and value projections). */
const DEFAULT_TARGETS: Record<string, string[]> = {
  llama: ['q_proj', 'v_proj'],
  bert: ['query', 'value', 'q_lin', 'v_lin'],
  gpt2: ['c_attn'],
  t5: ['q', 'v'],
};

/** PEFT's default IA3 targets per architecture, and the feed-forward ones among them. */
const IA3_TARGETS: Record<string, { targets: string[]; ff: string[] }> = {
  llama: { targets: ['k_proj', 'v_proj', 'down_proj'], ff: ['down_proj'] },
  bert: { targets: ['key', 'value', 'output.dense', 'k_lin', 'v_lin', 'lin2'], ff: ['output.dense', 'lin2'] },
  gpt2: { targets: ['c_attn', 'mlp.c_proj'], ff: ['mlp.c_proj'] },
  t5: { targets: ['k', 'v', 'wo'], ff: ['wo'] },
};

/** A model folder whose config.json is an encoder-decoder (T5): its data is read as source → target pairs. */
export function isSeq2SeqModel(model: string): boolean {
  const file = join(model, 'config.json');
  if (!existsSync(file)) return false;
  try {
    return isT5Json(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return false;
  }
}

export interface PreparedRun {
  config: RunConfig;
  data: ResolvedData;
  codec: TextCodec;
}

/** Opens the tokenizer and data (no model weights yet, nothing written); throws typed errors on bad input. */
export function prepareRun(config: RunConfig, shared?: { data: ResolvedData; codec: TextCodec }): PreparedRun {
  if (config.newtonClip !== undefined && config.optimizer !== 'kfac' && !(config.newtonClip === 'off' && (config.optimizer === 'shampoo' || config.optimizer === 'soap'))) throw new ConfigError(`--newton-clip needs --optimizer kfac (got ${config.optimizer}): the Newton step exists only for K-FAC`);
  const second = config.optimizer === 'shampoo' || config.optimizer === 'soap';
  if (config.newtonClipMode !== undefined && config.optimizer !== 'kfac' && !second) throw new ConfigError(`--newton-clip-mode needs --optimizer kfac, shampoo or soap (got ${config.optimizer}): ${config.optimizer} has no Newton-step clip`, { argument: 'newtonClipMode' });
  if (config.newtonClipMode !== undefined && config.newtonClipMode !== 'per-tensor' && second) throw new ConfigError(`--newton-clip-mode ${config.newtonClipMode}: ${config.optimizer} clips per tensor only`, { argument: 'newtonClipMode' });
  if (config.optimizer === 'kfac') kfacNewtonClip(config); // a Fisher mode without its bound fails here, before anything is written
  if (!existsSync(config.model)) throw new ConfigError(`--model ${config.model}: no such file or folder`);
  if (!statSync(config.model).isDirectory() && !config.model.endsWith('.bin'))
    throw new ConfigError(`--model ${config.model}: not a model (expected a Hugging Face model folder or a llama2.c .bin checkpoint)`);
  const codec = shared?.codec ?? openTextCodec(config.model, config.tokenizer);
  const dataOptions = { ...pick(config, ['dev', 'textColumn', 'textPairColumn', 'labelColumn']), seed: config.seed };
  const data = shared?.data ?? (isSeq2SeqModel(config.model) ? resolveSeq2SeqData(config.data, dataOptions) : resolveData(config.data, dataOptions));
  return { config, data, codec };
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const r: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) r[k] = o[k];
  return r;
}

/** loadModel's placement options of a run: device, storage dtype, gradient checkpointing. */
export function placementOf(c: Pick<RunConfig, 'device' | 'dtype' | 'gradientCheckpointing'>): { device?: DeviceRequest; dtype?: 'float32' | 'bfloat16'; checkpointing?: boolean } {
  return { ...(c.device ? { device: c.device } : {}), ...(c.dtype ? { dtype: c.dtype } : {}), ...(c.gradientCheckpointing ? { checkpointing: true } : {}) };
}

export function buildModel(p: PreparedRun): TransformerModel {
  const c = p.config;
  const d = p.data;
  const place = placementOf(c);
  const model =
    d.kind === 'seq2seq'
      ? loadModel(c.model, place)
      : d.kind === 'causal-lm'
        ? loadModel(c.model, { task: 'causal-lm', ...place })
        : loadModel(c.model, { task: d.kind === 'regression' ? 'regression' : 'sequence-classification', numLabels: d.spec.numLabels, seed: c.seed, ...place });
  if ((model.task === 'seq2seq-lm') !== (d.kind === 'seq2seq')) {
    model.dispose();
    throw new ConfigError(`--model ${c.model}: ${d.kind === 'seq2seq' ? 'source → target data needs an encoder-decoder model' : 'an encoder-decoder model needs source → target data'}`);
  }
  if (model.config.vocabSize < p.codec.vocabSize) throw new ConfigError(`the tokenizer (${p.codec.source}) has ${p.codec.vocabSize} tokens but the model only ${model.config.vocabSize} embeddings`);
  applyRunPeft(model, c);
  return model;
}

/** Applies the run's PEFT method (`c.peft`, default LoRA) with its options and defaults to `model`. */
export function applyRunPeft(model: TransformerModel, c: RunConfig): void {
  const family = model.config.family;
  const names = new Set(model.namedModules().map(([n]) => n.slice(n.lastIndexOf('.') + 1)));
  const paths = model.namedModules().map(([n]) => n);
  const present = (t: string) => paths.some((p) => p === t || p.endsWith(`.${t}`));
  if (c.peft === 'bitfit') {
    applyBitfit(model, { targetModules: c.targets === 'all-linear' ? null : (c.targets ?? null), baseModelNameOrPath: c.model });
    return;
  }
  if (c.peft === 'adapter') {
    applyBottleneck(model, { kind: c.adapterKind ?? 'pfeiffer', reductionFactor: c.reductionFactor ?? 16, seed: c.seed, baseModelNameOrPath: c.model });
    return;
  }
  if (c.peft === 'prefix') {
    applyPrefixTuning(model, { numVirtualTokens: c.numVirtualTokens ?? 8, prefixProjection: c.prefixProjection === 'on', seed: c.seed, baseModelNameOrPath: c.model });
    return;
  }
  if (c.peft === 'prompt') {
    applyPromptTuning(model, { numVirtualTokens: c.numVirtualTokens ?? 8, seed: c.seed, baseModelNameOrPath: c.model });
    return;
  }
  if (c.peft === 'ia3') {
    const d = IA3_TARGETS[family]!;
    if (c.targets === 'all-linear' || c.feedforwardModules === 'all-linear') throw new ConfigError("--peft ia3: name the target modules ('all-linear' is a LoRA shorthand)");
    const targets = c.targets ?? d.targets.filter(present);
    const ff = c.feedforwardModules ?? d.ff.filter((t) => present(t) && targets.includes(t));
    applyIa3(model, { targetModules: targets, feedforwardModules: ff.length ? ff : null, baseModelNameOrPath: c.model }, c.seed);
    return;
  }
  const targets = c.targets ?? DEFAULT_TARGETS[family]!.filter((t) => names.has(t));
  applyLora(model, { targetModules: targets, r: c.loraR, alpha: c.loraAlpha, dropout: c.loraDropout, seed: c.seed, baseModelNameOrPath: c.model });
}

/** The run's warm-up steps: `warmup`, or 10% of the steps (docs/KFAC.md#schedule). */
export function warmupSteps(c: Pick<RunConfig, 'warmup'>, totalSteps: number): number {
  return c.warmup ?? Math.round(DEFAULTS.warmupFraction * totalSteps);
}

function schedule(c: RunConfig, totalSteps: number): (s: number) => number {
  const warmup = warmupSteps(c, totalSteps);
  if (c.schedule === 'constant') return warmupConstant(c.lr, warmup);
  return c.schedule === 'linear' ? warmupLinear(c.lr, warmup, totalSteps) : warmupCosine(c.lr, warmup, totalSteps);
}

export type RunOptimizer = {
  step(ctx: { batchSize: number }): unknown;
  capture?(ctx: { batchSize: number; layers?: string }): void;
  wantsLoss?(): boolean;
  observeLoss?(o: { before: number; after: number }): unknown;
  inner: AdamW | SGD | KFAC | Shampoo;
};

/** The K-FAC Newton clip of a run: a norm threshold, off, or the default trust ratio. */
export function kfacNewtonClip(c: Pick<RunConfig, 'newtonClip' | 'newtonClipMode' | 'trustRatio'>): NewtonClip | null {
  if (c.newtonClipMode === 'fisher') {
    if (typeof c.newtonClip !== 'number') throw new ConfigError('--newton-clip-mode fisher needs --newton-clip C (the bound c of the Fisher clip)', { argument: 'newtonClip' });
    return { mode: 'fisher', c: c.newtonClip };
  }
  if (c.newtonClip === 'off') return null;
  if (c.newtonClip !== undefined) return { mode: c.newtonClipMode ?? 'global', maxNorm: c.newtonClip };
  return { mode: c.newtonClipMode ?? 'per-tensor', trustRatio: c.trustRatio };
}

/** The K-FAC blocks of a PEFT method on `model`, and the trainable parameters they leave to AdamW. */
export function kfacBlocksOfRun(model: TransformerModel, peft: RunConfig['peft']): { layers: ReturnType<typeof kfacLayersForLora>; extra: ReturnType<typeof untrackedParameters> } {
  const layers = peft === 'ia3' ? kfacLayersForIa3(model) : peft === 'bitfit' ? kfacLayersForBitfit(model) : peft === 'adapter' ? kfacLayersForBottleneck(model) : peft === 'prompt' ? kfacLayersForPrompt(model) : peft === 'prefix' ? kfacLayersForPrefix(model) : kfacLayersForLora(model, { heads: true });
  const extra = peft !== undefined && peft !== 'lora' ? untrackedTrainable(model, layers) : untrackedParameters(model, layers);
  return { layers, extra };
}

export function buildOptimizer(c: RunConfig, model: TransformerModel, totalSteps: number): RunOptimizer {
  const lr = schedule(c, totalSteps);
  if (c.optimizer === 'kfac') {
    const { layers, extra } = kfacBlocksOfRun(model, c.peft);
    const inner = new KFAC(layers, extra, {
      lr,
      momentum: c.momentum,
      weightDecay: c.weightDecay,
      damping: c.damping,
      factorDecay: c.factorDecay,
      inverseEvery: c.inverseEvery,
      sequence: c.kfacSequence,
      newtonClip: kfacNewtonClip(c),
      adaptiveDamping: c.adaptiveDamping === 'on',
      adaptiveTrust: c.adaptiveTrust === 'on',
      method: c.kfacMethod,
      // untracked parameters (norms, embedding-like saved modules): AdamW at 1e-3, on the same schedule's shape
      untrackedLr: (step: number) => (lr(step) / c.lr) * 1e-3,
      // the trust radius is relative to the peak lr, so the schedule shapes the clipped step too
      trustLr: c.lr,
      gradClip: c.gradClip ?? null,
    });
    return { inner, step: (ctx) => inner.step(ctx), capture: (ctx) => inner.capture(ctx), wantsLoss: () => inner.wantsLoss(), observeLoss: (o) => inner.observeLoss(o) };
  }
  const params = model.trainableParameters();
  if (c.optimizer === 'shampoo' || c.optimizer === 'soap') {
    if (typeof c.newtonClip === 'number') throw new ConfigError(`--newton-clip ${c.newtonClip}: ${c.optimizer} supports the trust-ratio clip (--trust-ratio) or --newton-clip off`);
    const inner = new Shampoo(params, { variant: c.optimizer, lr, trustLr: c.lr, newtonClip: c.newtonClip === 'off' ? null : { trustRatio: c.trustRatio } });
    return {
      inner,
      step: () => {
        if (c.gradClip !== undefined) clipGradNorm(params.map((p) => p.grad), c.gradClip);
        return inner.step();
      },
    };
  }
  const inner = c.optimizer === 'adamw' ? new AdamW(params, { lr, weightDecay: c.weightDecay }) : new SGD(params, { lr, momentum: c.momentum, weightDecay: c.weightDecay });
  return {
    inner,
    step: () => {
      const clip = c.gradClip === undefined ? undefined : clipGradNorm(params.map((p) => p.grad), c.gradClip);
      inner.step();
      return clip ? { gradNorm: clip.norm, clipped: clip.clipped } : {};
    },
  };
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

export interface RunHooks {
  onEvent?: (e: TrainerEvent, totalSteps: number) => void;
  /** Continue from the newest complete checkpoint in `<out>` (checkpoints/step-* or checkpoint-interrupted). */
  resume?: boolean;
  /** Publish a full checkpoint every N steps into `<out>/checkpoints/step-<N>` (crash-safe). */
  saveEvery?: number;
  /** Keep the newest K periodic checkpoints (default: all). */
  keepLast?: number;
  /** Told which checkpoint a resumed run continues from. */
  onResume?: (dir: string, step: number) => void;
  /** Trainer catches SIGINT (default true). */
  handleSigint?: boolean;
}

/** Monitor and direction of a task: the first metric (max) or perplexity (min). */
export function monitorOf(data: ResolvedData): { monitor: string; mode: 'min' | 'max' } {
  if (data.kind === 'seq2seq') return { monitor: 'exact_match', mode: 'max' };
  return data.kind === 'causal-lm' ? { monitor: 'perplexity', mode: 'min' } : { monitor: data.spec.metrics[0] ?? 'loss', mode: data.spec.metrics[0] ? 'max' : 'min' };
}

export function buildTask(p: PreparedRun, model: TransformerModel): CausalLmTask | ClassificationTask | Seq2SeqTask {
  const c = p.config;
  const d = p.data;
  if (d.kind === 'seq2seq') {
    const train = c.trainLimit ? d.train.slice(0, c.trainLimit) : d.train;
    const dev = c.evalLimit ? d.dev.slice(0, c.evalLimit) : d.dev;
    return new Seq2SeqTask(model as T5Model, p.codec, train, dev, { batchSize: c.batchSize, maxLength: c.maxLength });
  }
  if (d.kind === 'causal-lm') {
    const ctx = model.config.maxPositions;
    if (c.maxLength > ctx) throw new ConfigError(`--max-length ${c.maxLength}: the model ${c.model} has ${ctx} positions, so a block can hold at most ${ctx} tokens (use --max-length ${ctx} or less)`);
    const train = c.trainLimit ? d.train.slice(0, c.trainLimit) : d.train;
    return new CausalLmTask(model, p.codec, train, d.dev, { batchSize: c.batchSize, blockLength: c.maxLength, ...(c.evalLimit ? { maxEvalBlocks: c.evalLimit } : {}) });
  }
  const train = c.trainLimit ? d.train.slice(0, c.trainLimit) : d.train;
  const dev = c.evalLimit ? d.dev.slice(0, c.evalLimit) : d.dev;
  return new ClassificationTask(model, p.codec, d.spec, train, dev, { batchSize: c.batchSize, maxLength: c.maxLength });
}

/** Trains one configuration into `outDir` (created here, after every input was checked). */
export async function executeRun(p: PreparedRun, outDir: string, hooks: RunHooks = {}): Promise<RunResult> {
  const c = p.config;
  const model = buildModel(p);
  try {
    const task = buildTask(p, model);
    if (task.batchesPerEpoch === 0) throw new DataError(`${p.data.source}: no training ${p.data.kind === 'causal-lm' ? `block of ${c.maxLength} tokens` : 'examples'}`);
    const perEpoch = Math.ceil(task.batchesPerEpoch / c.gradAccumulation);
    const totalSteps = c.steps ?? perEpoch * c.epochs;
    const epochs = c.steps ? Math.max(c.epochs, Math.ceil(c.steps / perEpoch)) : c.epochs;
    const opt = buildOptimizer(c, model, totalSteps);
    // a checkpointed model frees each block's activations after its backward: K-FAC reads them first
    if (model.checkpointing) captureBlockwise(model, opt);
    const { monitor, mode } = monitorOf(p.data);
    let resume: TrainerState | undefined;
    const interruptDir = join(outDir, INTERRUPTED);
    if (hooks.resume && c.peft !== undefined && c.peft !== 'lora') throw new ConfigError(`--resume: checkpoints of --peft ${c.peft} runs hold the adapter only (resume is available for lora)`);
    if (hooks.resume) {
      const from = newestCheckpoint(outDir);
      if (!from) throw new ConfigError(`--resume: no checkpoint in ${outDir} (neither ${join(outDir, CHECKPOINTS, 'step-*')} nor ${interruptDir})`);
      let extra: Record<string, unknown>;
      try {
        extra = loadCheckpoint(from.dir, { model, optimizer: opt.inner });
      } catch (e) {
        if (e instanceof KfacError) throw new KfacError(e.code, `--resume: the checkpoint ${from.dir} cannot be used: ${e.message}`, { cause: e });
        throw e;
      }
      const t = extra['trainer'] as TrainerState | undefined;
      if (!t || typeof t.step !== 'number') throw new FormatError(join(from.dir, 'optimizer.json'), '--resume: no trainer state in this checkpoint');
      resume = t;
      restoreDropoutState(model, extra['rng']);
      hooks.onResume?.(from.dir, t.step);
    }
    mkdirSync(outDir, { recursive: true });
    for (const e of readdirSync(outDir)) if (e.startsWith('.tmp-') || e.startsWith('.old-')) rmSync(join(outDir, e), { recursive: true, force: true });
    const logFile = join(outDir, 'metrics.jsonl');
    if (!resume) rmSync(logFile, { force: true });
    else truncateLog(logFile, resume.step);
    writeJsonAtomic(join(outDir, 'config.json'), { ...c, warmup: warmupSteps(c, totalSteps) }); // the warm-up the run used
    const saveMethod = (dir: string) =>
      c.peft === 'ia3' ? saveIa3Adapter(model, dir) : c.peft === 'bitfit' ? saveBitfit(model, dir) : c.peft === 'adapter' ? saveBottleneck(model, dir) : c.peft === 'prompt' ? savePromptTuning(model, dir) : c.peft === 'prefix' ? savePrefixTuning(model, dir) : saveAdapter(model, dir);
    task.save = (dir: string, state: TrainerState) =>
      c.peft !== undefined && c.peft !== 'lora' ? saveMethod(dir) : saveCheckpoint(dir, { model, optimizer: opt.inner, extra: { trainer: state, rng: dropoutState(model) } });
    const trainer = new Trainer(task, opt, {
      maxSteps: totalSteps,
      epochs,
      gradAccumulation: c.gradAccumulation,
      ...(c.evalEvery ? { evalEvery: c.evalEvery } : {}),
      ...(c.patience ? { patience: c.patience } : {}),
      monitor,
      mode,
      seed: c.seed,
      bestDir: join(outDir, BEST),
      interruptDir,
      ...(hooks.saveEvery ? { saveEvery: hooks.saveEvery, checkpointDir: join(outDir, CHECKPOINTS), ...(hooks.keepLast ? { keepLast: hooks.keepLast } : {}) } : {}),
      logFile,
      onEvent: (e) => hooks.onEvent?.(e, totalSteps),
      handleSigint: hooks.handleSigint ?? true,
      ...(resume ? { resume } : {}),
    });
    let fit: FitResult;
    try {
      fit = await trainer.fit();
    } catch (e) {
      throw withOomContext('training', e);
    }
    if (!fit.interrupted) saveMethod(join(outDir, 'adapter'));
    const result: RunResult = { name: c.name, config: c, fit, totalSteps, monitor, mode, outDir };
    writeJsonAtomic(join(outDir, 'run.json'), runSummary(result));
    if ('dispose' in opt.inner) opt.inner.dispose();
    return result;
  } finally {
    model.dispose();
  }
}

export interface RunSummary {
  name: string;
  steps: number;
  monitor: string;
  final: number | undefined;
  best: { value: number; step: number } | null;
  msPerStep: number;
  diverged: boolean;
  interrupted: boolean;
  stoppedEarly: boolean;
  clipRate: number | undefined;
}

export function runSummary(r: RunResult): RunSummary {
  const steps = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'step' }> => e.kind === 'step');
  const evals = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'eval' }> => e.kind === 'eval');
  const last = evals.at(-1);
  const value = (e: Extract<TrainerEvent, { kind: 'eval' }>) => (r.monitor === 'loss' ? e.loss : e.metrics[r.monitor]!);
  const timed = steps.filter((s) => s.ms > 0);
  const tele = steps.at(-1)?.optimizer as { clipRate?: number } | undefined;
  return {
    name: r.name,
    steps: r.fit.state.step,
    monitor: r.monitor,
    final: last ? value(last) : undefined,
    best: r.fit.state.best,
    msPerStep: timed.length ? timed.reduce((s, e) => s + e.ms, 0) / timed.length : NaN,
    diverged: r.fit.diverged,
    interrupted: r.fit.interrupted,
    stoppedEarly: r.fit.stoppedEarly,
    clipRate: !['kfac', 'shampoo', 'soap'].includes(r.config.optimizer) || r.config.newtonClip === 'off' ? undefined : tele?.clipRate,
  };
}

/** Keeps the log lines of steps up to `step` (a resumed run logs the later ones again); a torn last line is dropped. */
function truncateLog(file: string, step: number): void {
  if (!existsSync(file)) return;
  const kept = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => {
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false;
      }
    });
  writeFilesAtomic(dirname(file), [{ name: basename(file), bytes: new TextEncoder().encode(kept.map((l) => l + '\n').join('')) }]);
}

/** Reads a run's JSONL log back (for reports). */
export function readLog(file: string): TrainerEvent[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TrainerEvent);
}
