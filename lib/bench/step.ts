/**
 * `kfac-peft bench step`: one LoRA training step (zero grad, forward with the loss, backward,
 * optimizer step) on a named shape or a model folder, timed in rounds; with the torch peer,
 * PyTorch + transformers + PEFT (bench/peer_step.py) runs the same step on the same weights
 * (the peer writes them, we load them), rounds alternating between the two sides so both see
 * about the same machine load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { KFAC } from '../kfac/kfac-optimizer.js';
import { configFromHf, createModel, loadModel, type TransformerModel } from '../models/index.js';
import { freezeLinearsBf16 } from '../models/load.js';
import type { Batch } from '../models/common.js';
import { AdamW } from '../optim/adamw.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../peft/index.js';
import { setNumThreads } from '../runtime.js';
import { median } from './timing.js';
import { Peer } from './peer.js';
import { OpProfile } from './profile.js';

/** Hugging Face config.json of each named shape (random weights). */
export const STEP_SHAPES: Record<string, Record<string, unknown>> = {
  'bert-small': { model_type: 'bert', vocab_size: 30522, hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048, max_position_embeddings: 512, type_vocab_size: 2 },
  'bert-base': { model_type: 'bert', vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512, type_vocab_size: 2 },
  'llama-125m': { model_type: 'llama', vocab_size: 32000, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 12, intermediate_size: 3072, max_position_embeddings: 2048, rms_norm_eps: 1e-5, tie_word_embeddings: false },
  stories260k: { model_type: 'llama', vocab_size: 512, hidden_size: 64, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 172, max_position_embeddings: 512, rms_norm_eps: 1e-5, tie_word_embeddings: true },
};

export interface StepOptions {
  shape?: string;
  model?: string;
  optimizer: 'adamw' | 'kfac';
  dtype: 'float32' | 'bfloat16';
  threads: number;
  batch: number;
  seq: number;
  rounds: number;
  stepsPerRound: number;
  peer: 'torch' | undefined;
  profile: boolean;
  progress(message: string): void;
}

export interface StepSide {
  name: string;
  medianMs: number;
  minMs: number;
  tokensPerSecond: number;
  loss: number;
}

export interface StepReport {
  what: string;
  optimizer: string;
  dtype: string;
  threads: number;
  batch: number;
  seq: number;
  params: number;
  trainable: number;
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

const TARGETS: Record<string, string[]> = { bert: ['query', 'value'], llama: ['q_proj', 'v_proj'], gpt2: ['c_attn'] };

function seededIds(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % vocab));
}

export async function runStep(o: StepOptions): Promise<StepReport> {
  const hf = o.model ? undefined : STEP_SHAPES[o.shape ?? 'bert-small'];
  const tmp = mkdtempSync(join(tmpdir(), 'kfac-bench-step-'));
  let peer: Peer | undefined;
  let model: TransformerModel | undefined;
  const loadBefore = loadavg();
  try {
    setNumThreads(o.threads);
    const causal = o.model ? undefined : (hf!['model_type'] as string) === 'llama';
    let peerMissing: string | undefined;
    let peerName = '';
    const B = o.batch;
    const T = o.seq;
    // The batch is the same on both sides; the vocabulary is known once the config is.
    const makeBatch = (m: TransformerModel): { batch: Batch; ids: Int32Array; labels: Int32Array } => {
      const ids = seededIds(B * T, m.config.vocabSize, 7);
      const isLm = m.task === 'causal-lm';
      const labels = isLm ? ids : Int32Array.from({ length: B }, (_, i) => i % 2);
      return { batch: { inputIds: ids, shape: [B, T], labels }, ids, labels };
    };
    const dir = o.model ?? tmp;
    if (o.peer === 'torch') {
      o.progress('starting the PyTorch peer');
      peer = await Peer.start(o.threads, false, 'peer_step.py');
      if (!peer) peerMissing = 'no python with the peer worker answered (set KFAC_PEER_PYTHON to a python with torch, transformers and peft)';
    }
    // Weights: the peer writes them (torch's seeded init) so both sides start equal; alone, ours are random.
    const task = o.model ? undefined : causal ? 'causal-lm' : 'sequence-classification';
    let wroteWeights = false;
    if (peer && !o.model) {
      // A first init writes the weights; the batch needs the vocabulary, which the shape gives.
      const vocab = hf!['vocab_size'] as number;
      const ids = seededIds(B * T, vocab, 7);
      const labels = causal ? ids : Int32Array.from({ length: B }, (_, i) => i % 2);
      const r = await peer.call(peerInit(o, dir, hf, task!, hf!['model_type'] as string, ids, labels));
      if (r?.['ok'] === true) {
        wroteWeights = true;
        peerName = describePeer(r);
      } else {
        peerMissing = `the peer failed: ${String(r?.['error'] ?? 'no reply')}`;
        peer.close();
        peer = undefined;
      }
    }
    o.progress('building our model');
    const loadOpts = { ...(task ? { task: task as 'causal-lm' | 'sequence-classification' } : {}) };
    model = o.model || wroteWeights ? loadModel(dir, { ...loadOpts, dtype: o.dtype }) : createModel(configFromHf(hf), { ...loadOpts, seed: 0 });
    if (o.dtype === 'bfloat16' && !(o.model || wroteWeights)) freezeLinearsBf16(model);
    model.train();
    const family = model.config.family;
    const targets = TARGETS[family] ?? ['query', 'value'];
    applyLora(model, { targetModules: targets, r: 8, alpha: 16, dropout: 0 });
    const { batch, ids, labels } = makeBatch(model);
    if (peer && o.model) {
      const r = await peer.call(peerInit(o, dir, undefined, model.task, family, ids, labels));
      if (r?.['ok'] === true) peerName = describePeer(r);
      else {
        peerMissing = `the peer failed: ${String(r?.['error'] ?? 'no reply')}`;
        peer.close();
        peer = undefined;
      }
    }
    const step = makeStep(model, o.optimizer);
    let loss = NaN;
    const oneStep = () => {
      model!.zeroGrad();
      loss = model!.forward(batch).loss!;
      model!.backward();
      step();
    };
    o.progress('warming up');
    for (let i = 0; i < 2; i++) oneStep();
    if (peer) await peer.call({ op: 'steps', n: 2 });
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
        }
      }
    }
    const params = model.parameters().reduce((n, p) => n + p.tensor.size, 0);
    const trainable = model.trainableParameters().reduce((n, p) => n + p.tensor.size, 0);
    const side = (name: string, ts: number[], l: number): StepSide => ({ name, medianMs: median(ts), minMs: Math.min(...ts), tokensPerSecond: (B * T * 1000) / median(ts), loss: l });
    const report: StepReport = {
      what: o.model ?? o.shape ?? 'bert-small',
      optimizer: o.optimizer,
      dtype: o.dtype,
      threads: o.threads,
      batch: B,
      seq: T,
      params,
      trainable,
      ours: side('kfac-peft', ours, loss),
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

function peerInit(o: StepOptions, dir: string, create: Record<string, unknown> | undefined, task: string, family: string, ids: Int32Array, labels: Int32Array): Record<string, unknown> {
  return {
    op: 'init',
    dir,
    create: create ?? null,
    task,
    targets: TARGETS[family] ?? ['query', 'value'],
    r: 8,
    alpha: 16,
    optimizer: o.optimizer,
    dtype: o.dtype,
    ids: [...ids],
    labels: [...labels],
    shape: [o.batch, o.seq],
    threads: o.threads,
  };
}

function describePeer(r: Record<string, unknown>): string {
  const k = r['kfac'] ? ` + kfac-pytorch ${String(r['kfac'])}` : '';
  return `PyTorch ${String(r['torch'])} + transformers ${String(r['transformers'])} + PEFT ${String(r['peft'])}${k}`;
}

function makeStep(model: TransformerModel, optimizer: 'adamw' | 'kfac'): () => void {
  if (optimizer === 'kfac') {
    const layers = kfacLayersForLora(model, { heads: true });
    const opt = new KFAC(layers, untrackedParameters(model, layers), { lr: 1e-4, damping: 1e-3, newtonClip: { mode: 'global', maxNorm: 1 } } as ConstructorParameters<typeof KFAC>[2]);
    return () => void opt.step({ batchSize: 1 });
  }
  const opt = new AdamW(model.trainableParameters(), { lr: 1e-4 });
  return () => opt.step();
}
