/**
 * `kfac-peft bench step`: one training step of a PEFT method (zero grad, forward with the loss,
 * backward, optimizer step) on a named shape or a model folder, timed in rounds. The method is
 * applied as `train --peft X` applies it (applyRunPeft, the CLI defaults) and the optimizer is
 * the one `train --optimizer O` builds (buildOptimizer: for K-FAC the method's blocks, Newton-step
 * clipping and adaptive damping at their defaults), driven as the Trainer drives it (capture after
 * the backward; the loss at the new weights when adaptive damping asks for it). The learning rate
 * is constant (the bench has no run length for a schedule). With the torch peer, PyTorch +
 * transformers + PEFT (bench/peer_step.py) runs the same step on the same weights (the peer
 * writes them, we load them), rounds alternating between the two sides so both see about the
 * same machine load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { completeRun } from '../cli/run-flags.js';
import { BitfitError } from '../peft/index.js';
import { invalidArgument } from '../errors.js';
import { configFromHf, createModel, loadModel, t5ConfigFromHf, type TransformerModel } from '../models/index.js';
import { freezeLinearsBf16 } from '../models/load.js';
import { setNumThreads } from '../runtime.js';
import { lossOf } from '../train/tasks.js';
import { applyRunPeft, buildOptimizer, type RunConfig } from '../train/run.js';
import { median } from './timing.js';
import { Peer } from './peer.js';
import { OpProfile } from './profile.js';
import { NO_PEER, peerMethodConfig, shapeTask, STEP_SHAPES, stepBatch, type StepMethod } from './step-shapes.js';

export { STEP_METHODS, STEP_SHAPES } from './step-shapes.js';
export type { StepMethod } from './step-shapes.js';

export interface StepOptions {
  shape?: string;
  /** A config.json dict in place of a named shape (random weights). */
  config?: Record<string, unknown>;
  model?: string;
  /** The PEFT method (default 'lora'). */
  peft?: StepMethod;
  optimizer: 'adamw' | 'kfac';
  dtype: 'float32' | 'bfloat16';
  threads: number;
  batch: number;
  seq: number;
  /** Target tokens per example of a seq2seq model (default max(1, round(seq / 4))). */
  targetSeq?: number;
  rounds: number;
  stepsPerRound: number;
  /** Untimed steps before the first round (default 2). */
  warmup?: number;
  peer: 'torch' | undefined;
  profile: boolean;
  progress(message: string): void;
}

export interface StepSide {
  name: string;
  medianMs: number;
  /** Mean over the timed steps: with K-FAC it carries the periodic refresh (every 10 steps) and damping probe (every 5). */
  meanMs: number;
  minMs: number;
  tokensPerSecond: number;
  loss: number;
}

export interface StepReport {
  what: string;
  /** The PEFT method, as `train --peft` names it. */
  peft: string;
  task: string;
  optimizer: string;
  dtype: string;
  threads: number;
  batch: number;
  seq: number;
  /** Target tokens per example (seq2seq), else null; tokens/s count source and target tokens. */
  targetSeq: number | null;
  params: number;
  trainable: number;
  /** Trainable parameters of the peer's model (PEFT's count of the same method). */
  peerTrainable?: number;
  /** Our loss at every step, warm-up included (one fixed batch). */
  losses: number[];
  ours: StepSide;
  peer?: StepSide;
  /** Why there is no peer row, when one was asked for. */
  peerMissing?: string;
  /** peer median / our median (> 1: we are faster). */
  ratio?: number;
  loadBefore: number[];
  loadAfter: number[];
  profile?: { family: string; msPerStep: number; share: number; callsPerStep: number }[];
}

/** The run configuration `train --peft <peft> --optimizer <optimizer>` would use, at a constant lr. */
export function stepRunConfig(what: string, peft: StepMethod, optimizer: 'adamw' | 'kfac'): RunConfig {
  return completeRun({ model: what, data: '-', peft, optimizer, schedule: 'constant', warmup: 0 });
}

export async function runStep(o: StepOptions): Promise<StepReport> {
  const hf = o.model ? undefined : (o.config ?? STEP_SHAPES[o.shape ?? 'bert-small']!);
  const what = o.model ?? (o.config ? 'config' : (o.shape ?? 'bert-small'));
  const peft = o.peft ?? 'lora';
  const tmp = mkdtempSync(join(tmpdir(), 'kfac-bench-step-'));
  let peer: Peer | undefined;
  let model: TransformerModel | undefined;
  const loadBefore = loadavg();
  try {
    setNumThreads(o.threads);
    let peerMissing: string | undefined;
    let peerName = '';
    let peerTrainable: number | undefined;
    const B = o.batch;
    const T = o.seq;
    const dir = o.model ?? tmp;
    const dropPeer = (why: string) => {
      peerMissing = why;
      peer?.close();
      peer = undefined;
    };
    // a method PEFT lacks has no peer: say so without starting one (nor writing its weights)
    if (o.peer === 'torch' && NO_PEER[peft]) peerMissing = NO_PEER[peft];
    else if (o.peer === 'torch') {
      o.progress('starting the PyTorch peer');
      peer = await Peer.start(o.threads, false, 'peer_step.py');
      if (!peer) peerMissing = 'no python with the peer worker answered (set KFAC_PEER_PYTHON to a python with torch, transformers and peft)';
    }
    // Weights: the peer writes them (torch's seeded init) so both sides start equal; alone, ours are random.
    const task = hf ? shapeTask(hf) : undefined;
    // T5 runs in float32 only (loadModel refuses other storage for it)
    if (task === 'seq2seq-lm' && o.dtype !== 'float32') invalidArgument('dtype', "'float32' for a T5 model", `'${o.dtype}'`);
    let wroteWeights = false;
    if (peer && hf) {
      o.progress('the peer writes the weights');
      const r = await peer.call({ op: 'create', dir, create: hf, task, threads: o.threads, seed: 0 });
      if (r?.['ok'] === true) wroteWeights = true;
      else dropPeer(`the peer failed: ${String(r?.['error'] ?? 'no reply')}`);
    }
    o.progress('building our model');
    const loadOpts = task === 'causal-lm' || task === 'sequence-classification' ? { task } : {};
    model = o.model || wroteWeights ? loadModel(dir, { ...loadOpts, dtype: o.dtype }) : createModel(task === 'seq2seq-lm' ? t5ConfigFromHf(hf!) : configFromHf(hf), { ...loadOpts, seed: 0 });
    if (o.dtype === 'bfloat16' && !(o.model || wroteWeights)) freezeLinearsBf16(model);
    model.train();
    const run = stepRunConfig(what, peft, o.optimizer);
    try {
      applyRunPeft(model, run);
    } catch (e) {
      // BitFit on a model without biases (LLaMA, T5): the method's own error, named after the flag
      if (e instanceof BitfitError) throw new BitfitError(`--peft bitfit on ${what}: ${e.message.split('\n')[0]}`, { argument: 'peft', ...(e.hint ? { hint: e.hint } : {}), cause: e });
      throw e;
    }
    const seq2seq = model.task === 'seq2seq-lm';
    const Tt = seq2seq ? (o.targetSeq ?? Math.max(1, Math.round(T / 4))) : 0;
    const { batch, ids, labels } = stepBatch(model.task, model.config.vocabSize, B, T, Tt);
    if (peer) {
      const method = peerMethodConfig(model, peft);
      if ('missing' in method) dropPeer(method.missing);
      else {
        const r = await peer.call({ op: 'init', dir, create: null, task: model.task, peft_config: method.config, optimizer: o.optimizer, dtype: o.dtype, ids: [...ids], labels: [...labels], shape: [B, T], target_shape: seq2seq ? [B, Tt] : null, threads: o.threads, lr: run.lr });
        if (r?.['ok'] === true) {
          peerName = describePeer(r);
          if (typeof r['trainable'] === 'number') peerTrainable = r['trainable'];
        } else dropPeer(`the peer failed: ${String(r?.['error'] ?? 'no reply')}`);
      }
    }
    const opt = buildOptimizer(run, model, 1_000_000);
    const losses: number[] = [];
    const oneStep = () => {
      model!.zeroGrad();
      const loss = model!.forward(batch).loss!;
      model!.backward();
      opt.capture?.({ batchSize: B });
      opt.step({ batchSize: B });
      if (opt.wantsLoss?.()) opt.observeLoss?.({ before: loss, after: lossOf(model!, batch) });
      losses.push(loss);
    };
    o.progress('warming up');
    const warmup = o.warmup ?? 2;
    for (let i = 0; i < warmup; i++) oneStep();
    if (peer && warmup > 0) await peer.call({ op: 'steps', n: warmup });
    const ours: number[] = [];
    const theirs: number[] = [];
    let peerLoss = NaN;
    const profile = o.profile ? new OpProfile() : undefined;
    for (let r = 0; r < o.rounds; r++) {
      o.progress(`round ${r + 1}/${o.rounds}`);
      profile?.start();
      for (let i = 0; i < o.stepsPerRound; i++) {
        const t0 = process.hrtime.bigint();
        oneStep();
        ours.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      profile?.stop();
      if (peer) {
        const rep = await peer.call({ op: 'steps', n: o.stepsPerRound });
        if (rep?.['ok'] === true) {
          theirs.push(...(rep['ms'] as number[]));
          peerLoss = rep['loss'] as number;
        } else peerMissing = `the peer failed: ${String(rep?.['error'] ?? 'no reply')}`;
      }
    }
    const params = model.parameters().reduce((n, p) => n + p.tensor.size, 0);
    const trainable = model.trainableParameters().reduce((n, p) => n + p.tensor.size, 0);
    const tokens = B * (T + Tt);
    const side = (name: string, ts: number[], l: number): StepSide => ({ name, medianMs: median(ts), meanMs: ts.reduce((a, b) => a + b, 0) / ts.length, minMs: Math.min(...ts), tokensPerSecond: (tokens * 1000) / median(ts), loss: l });
    const report: StepReport = {
      what,
      peft,
      task: model.task,
      optimizer: o.optimizer,
      dtype: o.dtype,
      threads: o.threads,
      batch: B,
      seq: T,
      targetSeq: seq2seq ? Tt : null,
      params,
      trainable,
      ...(peerTrainable !== undefined ? { peerTrainable } : {}),
      losses,
      ours: side('kfac-peft', ours, losses.at(-1) ?? NaN),
      loadBefore,
      loadAfter: loadavg(),
    };
    if (theirs.length) {
      report.peer = side(peerName, theirs, peerLoss);
      report.ratio = report.peer.medianMs / report.ours.medianMs;
    } else if (o.peer) report.peerMissing = peerMissing ?? 'the peer timed no step';
    if (profile) report.profile = profile.rows(ours.length, ours.reduce((a, b) => a + b, 0) / ours.length);
    return report;
  } finally {
    peer?.close();
    model?.dispose();
    setNumThreads(0);
    rmSync(tmp, { recursive: true, force: true });
  }
}

function describePeer(r: Record<string, unknown>): string {
  const k = r['kfac'] ? ` + kfac-pytorch ${String(r['kfac'])}` : '';
  return `PyTorch ${String(r['torch'])} + transformers ${String(r['transformers'])} + PEFT ${String(r['peft'])}${k}`;
}
