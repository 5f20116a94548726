/**
 * One fine-tuning run from a plain configuration: load the model and data, apply LoRA, build the
 * optimizer (AdamW, SGD or K-FAC with optional Newton-step or gradient clipping), train with the
 * Trainer, save the adapter in PEFT format, and write `run.json` beside the JSONL log.
 *
 * Everything that can fail on bad input (model, tokenizer, data, options) is checked by
 * `prepareRun` before anything is written.
 *
 * The pieces live beside it and are re-exported here: run-config.ts (RunConfig, DEFAULTS),
 * run-model.ts (buildModel), run-optimizer.ts (buildOptimizer, the schedule and the Newton clip),
 * run-log.ts (run.json's summary, the JSONL log).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError, FormatError, KfacError } from '../errors.js';
import { BEST, CHECKPOINTS, dropoutState, INTERRUPTED, newestCheckpoint, restoreDropoutState } from './checkpoints.js';
import { captureBlockwise, type TransformerModel, withOomContext } from '../models/index.js';
import {
  loadCheckpoint,
  saveAdapter,
  saveBitfit,
  saveBottleneck,
  saveCheckpoint,
  savePrefixTuning,
  savePromptTuning,
  saveIa3Adapter,
} from '../peft/index.js';
import { DataError } from './data.js';
import { resolveData, type ResolvedData } from './datasets.js';
import { CausalLmTask, ClassificationTask } from './tasks.js';
import { resolveSeq2SeqData, Seq2SeqTask } from './seq2seq.js';
import { isT5Json } from '../models/t5-config.js';
import type { T5Model } from '../models/t5.js';
import { openTextCodec, type TextCodec } from './text.js';
import { type FitResult, Trainer, type TrainerEvent, type TrainerState, writeJsonAtomic } from './trainer.js';
import type { PreparedRun, RunConfig, RunResult } from './run-config.js';
import { buildModel } from './run-model.js';
import { buildOptimizer, kfacNewtonClip, warmupSteps } from './run-optimizer.js';
import { runSummary, truncateLog } from './run-log.js';

export { DEFAULT_OPTIMIZER, DEFAULTS, defaultTrustRatio, defaultWarmupFraction, withDefaults } from './run-config.js';
export type { OptimizerName, PreparedRun, RunConfig, RunResult } from './run-config.js';
export { applyRunPeft, buildModel, loadRunModel, placementOf } from './run-model.js';
export { buildOptimizer, kfacBlocksOfRun, kfacNewtonClip, warmupSteps } from './run-optimizer.js';
export type { RunOptimizer } from './run-optimizer.js';
export { readLog, runSummary } from './run-log.js';
export type { RunSummary } from './run-log.js';

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
