/**
 * The training loop: steps or epochs, gradient accumulation, evaluation every N steps, the best
 * checkpoint kept, early stopping, a seeded data order, a JSONL metrics log, a live progress line,
 * and a clean stop on SIGINT (a checkpoint is saved and `fit()` resolves with `interrupted`).
 * `fit()` yields to the event loop between steps, so timers and signals are served. With
 * `saveEvery`, full checkpoints are published every N steps (see checkpoints.ts: a folder is
 * there whole or not at all), so a crash or a kill loses at most N steps.
 *
 * What is trained is described by a TrainerTask (how to make batches, run forward + loss +
 * backward, evaluate, save and load); the optimizer is anything with `step(ctx)` — AdamW, SGD
 * or KFAC — so the loop is the same for every side of a comparison.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { basename, dirname } from 'node:path';

import { describe, invalidArgument, NotFiniteError } from '../errors.js';
import { withOomContext } from '../models/device.js';
import * as ops from '../ops/index.js';
import type { DeviceValue } from '../tensor/device-value.js';
import type { Tensor } from '../tensor/tensor.js';
import { writeFilesAtomic } from '../util/atomic.js';
import { checkOptions } from '../util/validate.js';
import { publishFolder, saveStepCheckpoint } from './checkpoints.js';

/** What a micro-batch's forward and backward report. */
export interface MicroBatchLoss {
  /** The loss (mean over the batch); NaN when the outputs were no longer finite. May be read lazily (a wait on a GPU). */
  readonly loss: number;
  /** Examples in the micro-batch. */
  readonly batchSize: number;
  /**
   * The same loss not yet downloaded, when the model left it on its device (a cross-entropy
   * head). An optimizer whose step reads it (`readsLosses`) then spares the step a wait.
   */
  readonly lossValue?: DeviceValue | null;
}

export interface TrainerTask<B> {
  /** Training batches of one epoch in a deterministic order for this seed. */
  batches(epoch: number, seed: number): Iterable<B>;
  /** Forward with the model in train mode (dropout on), loss (mean over the batch) and backward; parameter gradients accumulate (+=). */
  lossAndBackward(batch: B): MicroBatchLoss;
  /** The loss of a batch without a backward pass (for optimizers that probe the step, e.g. adaptive damping). */
  loss?(batch: B): number;
  /**
   * The same loss left on the device when the model leaves it there (a cross-entropy head's
   * `lossValue`), else the number: an optimizer that reads losses (`readsLosses`) reads it with
   * its own record, so the probe spares a wait.
   */
  lossValue?(batch: B): number | DeviceValue;
  /** Sets every trainable gradient to zero. */
  zeroGrad(): void;
  /** Trainable gradients (for accumulation scaling and norms). */
  grads(): Tensor[];
  /** Evaluates on held-out data: the loss and named metrics. */
  evaluate(): { loss: number; metrics: Record<string, number> };
  /**
   * Writes everything needed to resume (parameters, optimizer, trainer state) into the fresh
   * folder `dir`; the Trainer publishes it under its final name by one rename (publishFolder).
   */
  save?(dir: string, trainerState: TrainerState): void;
}

export interface StepOptimizer {
  step(ctx: { batchSize: number; losses?: readonly DeviceValue[] }): unknown;
  /**
   * True when step() takes the micro-batches' losses still on the device (`losses`) and reads
   * them with its own one wait (K-FAC's step record), so the Trainer never waits for a loss
   * itself. Such a step resolves every value it reads, and refuses a non-finite one with
   * NotFiniteError before anything is applied.
   */
  readsLosses?(): boolean;
  /**
   * Called after every micro-batch's backward, before step(): K-FAC pushes that micro-batch's
   * layer statistics into its factors here (so accumulation sees every micro-batch).
   */
  capture?(ctx: { batchSize: number; layers?: string }): void;
  /** True when the step just taken waits for the loss at the new weights on the same batch (adaptive damping). */
  wantsLoss?(): boolean;
  /**
   * The loss on the step's batch before and after the step; may update and return the step's
   * telemetry. `after` is the micro-batches' losses still on the device (their mean is the loss)
   * when the optimizer reads losses and the task leaves them there.
   */
  observeLoss?(o: { before: number; after: number | readonly DeviceValue[] }): unknown;
}

export interface TrainerOptions {
  /** Stop after this many optimizer steps (default: epochs × batches per epoch). */
  maxSteps?: number;
  /** Epochs over the training batches (default 1; ignored when maxSteps ends the run first). */
  epochs?: number;
  /** Micro-batches per optimizer step (default 1); gradients are averaged over them. */
  gradAccumulation?: number;
  /** Evaluate every this many steps (default: only at the end). */
  evalEvery?: number;
  /** The metric that decides the best checkpoint and early stopping (default: 'loss'). */
  monitor?: string;
  /** 'max' for metrics that grow (accuracy), 'min' for losses (default: 'min' for 'loss', else 'max'). */
  mode?: 'min' | 'max';
  /** Stop after this many evaluations without improvement (default: never). */
  patience?: number;
  /** Seed of the data order. */
  seed?: number;
  /** Where to save the best checkpoint (task.save), if anywhere. */
  bestDir?: string;
  /** Where to save on SIGINT (default: bestDir + '-interrupted'). */
  interruptDir?: string;
  /** Save a full checkpoint (task.save) every this many steps into checkpointDir/step-<step>. */
  saveEvery?: number;
  /** Folder of the periodic checkpoints (required with saveEvery). */
  checkpointDir?: string;
  /** Keep only the newest this many periodic checkpoints (default: all). */
  keepLast?: number;
  /** JSONL file: one line per step and per evaluation. */
  logFile?: string;
  /** Called after each step and each evaluation (for a live display). */
  onEvent?: (e: TrainerEvent) => void;
  /** Catch SIGINT during fit() (default true). */
  handleSigint?: boolean;
  /** Starting point when resuming. */
  resume?: TrainerState;
}

export interface TrainerState {
  step: number;
  epoch: number;
  /** Batches of the current epoch already consumed. */
  batchInEpoch: number;
  best: { value: number; step: number } | null;
  evalsWithoutImprovement: number;
  elapsedMs: number;
}

export type TrainerEvent =
  | { kind: 'step'; step: number; epoch: number; loss: number; ms: number; elapsedMs: number; optimizer: unknown }
  | { kind: 'eval'; step: number; loss: number; metrics: Record<string, number>; best: boolean; elapsedMs: number };

export interface FitResult {
  state: TrainerState;
  interrupted: boolean;
  stoppedEarly: boolean;
  diverged: boolean;
  history: TrainerEvent[];
}

function posInt(o: Record<string, unknown>, k: string, fallback: number | undefined): number | undefined {
  const v = o[k];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) invalidArgument(k, 'a positive integer', describe(v));
  return v;
}

export class Trainer<B> {
  readonly options: TrainerOptions;
  #stop: 'interrupt' | null = null;

  constructor(
    readonly task: TrainerTask<B>,
    readonly optimizer: StepOptimizer,
    options: TrainerOptions = {},
  ) {
    const o = checkOptions(options);
    posInt(o, 'maxSteps', undefined);
    posInt(o, 'epochs', 1);
    posInt(o, 'gradAccumulation', 1);
    posInt(o, 'evalEvery', undefined);
    posInt(o, 'saveEvery', undefined);
    posInt(o, 'keepLast', undefined);
    if (o['saveEvery'] !== undefined && (typeof o['checkpointDir'] !== 'string' || o['checkpointDir'] === '')) invalidArgument('checkpointDir', 'a folder path (saveEvery needs one)', describe(o['checkpointDir']));
    if (o['patience'] !== undefined) posInt(o, 'patience', undefined);
    if (o['mode'] !== undefined && o['mode'] !== 'min' && o['mode'] !== 'max') invalidArgument('mode', "'min' or 'max'", describe(o['mode']));
    if (o['seed'] !== undefined && (typeof o['seed'] !== 'number' || !Number.isInteger(o['seed']))) invalidArgument('seed', 'an integer', describe(o['seed']));
    this.options = options;
  }

  #publish(dir: string, state: TrainerState): void {
    publishFolder(dir, (tmp) => this.task.save!(tmp, state));
  }

  /** Asks a running fit() to save and stop after the current step (what SIGINT does). */
  requestStop(): void {
    this.#stop = 'interrupt';
  }

  async fit(): Promise<FitResult> {
    const o = this.options;
    const epochs = o.epochs ?? 1;
    const accum = o.gradAccumulation ?? 1;
    const monitor = o.monitor ?? 'loss';
    const mode = o.mode ?? (monitor === 'loss' ? 'min' : 'max');
    const seed = o.seed ?? 0;
    const state: TrainerState = o.resume
      ? { ...o.resume }
      : { step: 0, epoch: 0, batchInEpoch: 0, best: null, evalsWithoutImprovement: 0, elapsedMs: 0 };
    const history: TrainerEvent[] = [];
    const t0 = Date.now() - state.elapsedMs;
    const elapsed = () => Date.now() - t0;
    if (o.logFile) mkdirSync(dirname(o.logFile), { recursive: true });
    const log = (e: TrainerEvent) => {
      history.push(e);
      if (o.logFile) appendFileSync(o.logFile, JSON.stringify(e) + '\n');
      o.onEvent?.(e);
    };
    const onSigint = () => this.requestStop();
    if (o.handleSigint !== false) process.on('SIGINT', onSigint);
    let stoppedEarly = false;
    let diverged = false;
    let interrupted = false;
    const readsLosses = this.optimizer.readsLosses?.() === true;

    // what an out-of-memory error names: the step or the evaluation it stopped
    let phase = 'the first step';
    const evaluate = () => {
      phase = `the evaluation after step ${state.step}`;
      const r = this.task.evaluate();
      const value = monitor === 'loss' ? r.loss : r.metrics[monitor];
      if (value === undefined) invalidArgument('monitor', `'loss' or one of ${Object.keys(r.metrics).join(', ')}`, JSON.stringify(monitor));
      // a NaN metric (a model whose outputs overflowed) is never an improvement
      const better = !Number.isNaN(value) && (state.best === null || (mode === 'min' ? value < state.best.value : value > state.best.value));
      if (better) {
        state.best = { value, step: state.step };
        state.evalsWithoutImprovement = 0;
        if (o.bestDir && this.task.save) this.#publish(o.bestDir, { ...state, elapsedMs: elapsed() });
      } else state.evalsWithoutImprovement += 1;
      log({ kind: 'eval', step: state.step, loss: r.loss, metrics: r.metrics, best: better, elapsedMs: elapsed() });
      return o.patience !== undefined && state.evalsWithoutImprovement >= o.patience;
    };

    try {
      outer: for (; state.epoch < epochs; state.epoch++, state.batchInEpoch = 0) {
        const it = this.task.batches(state.epoch, seed + state.epoch)[Symbol.iterator]();
        for (let skip = 0; skip < state.batchInEpoch; skip++) if (it.next().done) break;
        for (;;) {
          if (o.maxSteps !== undefined && state.step >= o.maxSteps) break outer;
          phase = `step ${state.step + 1}`;
          const ts = process.hrtime.bigint();
          this.task.zeroGrad();
          let n = 0;
          let micro = 0;
          let batchSize = 0;
          const micros: B[] = [];
          // each micro-batch's loss: a number, or a value left on the device for the step to read
          const parts: (number | DeviceValue)[] = [];
          for (; micro < accum; micro++) {
            const next = it.next();
            if (next.done) break;
            state.batchInEpoch += 1;
            micros.push(next.value);
            const r = this.task.lossAndBackward(next.value);
            const onDevice = readsLosses ? (r.lossValue ?? null) : null;
            // a loss left on the device is checked by the step (its statistics' flag covers it), so capture now
            if (onDevice || Number.isFinite(r.loss)) this.optimizer.capture?.({ batchSize: r.batchSize });
            parts.push(onDevice ?? r.loss);
            batchSize = r.batchSize;
            n += 1;
          }
          if (n === 0) break;
          const deferred = parts.filter((p): p is DeviceValue => typeof p !== 'number');
          if (parts.some((p) => typeof p === 'number' && !Number.isFinite(p))) {
            diverged = true;
            log({ kind: 'step', step: state.step, epoch: state.epoch, loss: meanLoss(parts), ms: 0, elapsedMs: elapsed(), optimizer: { diverged: true } });
            break outer;
          }
          if (n > 1) for (const g of this.task.grads()) ops.scale(g, 1 / n, g);
          let telemetry: unknown;
          let lossSum = NaN;
          try {
            telemetry = this.optimizer.step(deferred.length > 0 ? { batchSize, losses: deferred } : { batchSize });
            lossSum = sumLosses(parts);
            // a step that reads the losses refuses a non-finite one itself; this only stops a run
            // whose optimizer did not keep that promise
            if (!Number.isFinite(lossSum)) throw new NotFiniteError(`the loss of step ${state.step + 1} is ${lossSum}`, { argument: 'loss' });
            if (this.optimizer.wantsLoss?.()) {
              // the loss at the new weights on the same batch (a forward only when the task offers
              // it), left on the device for an optimizer that reads it with its own record
              const afterParts: (number | DeviceValue)[] = [];
              for (const mb of micros)
                afterParts.push(readsLosses && this.task.lossValue ? this.task.lossValue(mb) : this.task.loss ? this.task.loss(mb) : this.task.lossAndBackward(mb).loss);
              if (!this.task.loss && !(readsLosses && this.task.lossValue)) this.task.zeroGrad();
              const onDevice = afterParts.filter((p): p is DeviceValue => typeof p !== 'number');
              const after = onDevice.length === afterParts.length ? onDevice : sumLosses(afterParts) / micros.length;
              telemetry = this.optimizer.observeLoss?.({ before: lossSum / n, after }) ?? telemetry;
            }
          } catch (e) {
            // the step met a non-finite loss, activations or gradients (the weights blew up): a divergence, not a crash
            if (!(e instanceof NotFiniteError)) throw e;
            diverged = true;
            log({ kind: 'step', step: state.step, epoch: state.epoch, loss: meanLoss(parts), ms: 0, elapsedMs: elapsed(), optimizer: { diverged: true, error: e.message } });
            break outer;
          }
          state.step += 1;
          log({ kind: 'step', step: state.step, epoch: state.epoch, loss: lossSum / n, ms: Number(process.hrtime.bigint() - ts) / 1e6, elapsedMs: elapsed(), optimizer: telemetry });
          if (o.evalEvery && state.step % o.evalEvery === 0 && evaluate()) {
            stoppedEarly = true;
            break outer;
          }
          if (o.saveEvery && this.task.save && state.step % o.saveEvery === 0) {
            const snap = { ...state, elapsedMs: elapsed() };
            saveStepCheckpoint(o.checkpointDir!, state.step, (dir) => this.task.save!(dir, snap), o.keepLast);
          }
          await new Promise((r) => setImmediate(r));
          if (this.#stop === 'interrupt') {
            interrupted = true;
            break outer;
          }
          if (n < accum) break; // the epoch ran out mid-accumulation
        }
      }
      if (!interrupted && !stoppedEarly && !diverged && !(o.evalEvery && state.step % o.evalEvery === 0 && history.at(-1)?.kind === 'eval')) evaluate();
    } catch (e) {
      throw withOomContext(phase, e);
    } finally {
      if (o.handleSigint !== false) process.off('SIGINT', onSigint);
      state.elapsedMs = elapsed();
      if (interrupted && this.task.save) {
        const dir = o.interruptDir ?? (o.bestDir ? `${o.bestDir}-interrupted` : undefined);
        if (dir) this.#publish(dir, state);
      }
      this.#stop = null;
    }
    return { state, interrupted, stoppedEarly, diverged, history };
  }
}

/** Σ of the micro-batches' losses in their order (a value the step did not read is read here). */
function sumLosses(parts: readonly (number | DeviceValue)[]): number {
  let s = 0;
  for (const p of parts) s += typeof p === 'number' ? p : p.value();
  return s;
}

/** Their mean for the log of a step that diverged (a value that cannot be read counts as NaN). */
function meanLoss(parts: readonly (number | DeviceValue)[]): number {
  try {
    return sumLosses(parts) / parts.length;
  } catch {
    return NaN;
  }
}

/** Writes a JSON file atomically: a temporary file in the same folder, flushed, then a rename. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFilesAtomic(dirname(path), [{ name: basename(path), bytes: () => new TextEncoder().encode(JSON.stringify(value, null, 2) + '\n') }]);
}
