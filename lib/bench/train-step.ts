/**
 * `kfac-peft bench train-step`: one LoRA fine-tuning step (r = 16 on every linear layer of the
 * blocks) of a random-init model of a named real-size shape, on the CPU or the GPU, in float32 or
 * with bfloat16 base weights, with or without gradient checkpointing. Reports tokens/s, the step
 * time, peak memory, the share of the step in GEMMs (from the op profile, in a separate profiled
 * round), the achieved TFLOP/s of the step and of its GEMMs against a bf16 GEMM peak measured in
 * the same run, and with K-FAC (+ Newton-step clipping at its default) the K-FAC/AdamW step ratio
 * on the same model. `--peer torch` times PyTorch + PEFT (and kfac-pytorch where it imports) on
 * the same shape in a worker (bench/peer_train_step.py). Anything not measured is reported as
 * null with the reason, never estimated.
 */
import { loadavg } from 'node:os';

import { invalidArgument } from '../errors.js';
import * as cudaNs from '../cuda/index.js';
import * as linalg from '../linalg/index.js';
import { captureBlockwise, configFromHf, createModel, type TransformerModel } from '../models/index.js';
import type { Batch } from '../models/common.js';
import * as F from '../nn/functional.js';
import { native } from '../native/loader.js';
import { applyLora } from '../peft/index.js';
import { Tensor } from '../tensor/tensor.js';
import { buildOptimizer, withDefaults } from '../train/run.js';
import type { RunConfig } from '../train/run-config.js';
import { lossValueOf } from '../train/tasks.js';
import { Peer } from './peer.js';
import { countTrainStep, STEP_LORA, stepFlops, type TrainFlops } from './train-flops.js';
import { OpProfile } from './profile.js';
import { median } from './timing.js';

/** Hugging Face config.json of each shape (random weights; LLaMA shapes of TinyLlama-1.1B and a 32-layer 2.8B). */
export const TRAIN_SHAPES: Record<string, Record<string, unknown>> = {
  'llama-125m': { model_type: 'llama', vocab_size: 32000, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 12, intermediate_size: 3072, max_position_embeddings: 4096, rms_norm_eps: 1e-5, tie_word_embeddings: false },
  'llama-1b': { model_type: 'llama', vocab_size: 32000, hidden_size: 2048, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, intermediate_size: 5632, max_position_embeddings: 4096, rms_norm_eps: 1e-5, tie_word_embeddings: false },
  'llama-3b': { model_type: 'llama', vocab_size: 50304, hidden_size: 2560, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, intermediate_size: 6912, max_position_embeddings: 4096, rms_norm_eps: 1e-5, tie_word_embeddings: false },
  'bert-base': { model_type: 'bert', vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512, type_vocab_size: 2 },
};

export interface TrainStepOptions {
  /** A name of TRAIN_SHAPES, or the label of `config`. */
  shape: string;
  /** A Hugging Face config.json dict (llama or bert) in place of the named shape. */
  config?: Record<string, unknown>;
  device: 'cpu' | 'cuda';
  optimizer: 'adamw' | 'kfac';
  dtype: 'float32' | 'bfloat16';
  /** Storage of the activations (ModelOptions.activations; on cuda). Default float32. */
  activations?: 'float32' | 'bfloat16';
  checkpointing: boolean;
  batch: number;
  seq: number;
  /** Overrides for small runs: layers, hidden size (heads = hidden / 64), vocabulary. */
  layers?: number;
  hidden?: number;
  vocab?: number;
  warmup: number;
  steps: number;
  /** Side of the square GEMM timed for the bf16 peak. */
  peakSize: number;
  peer: 'torch' | undefined;
  /** K-FAC's factor and refresh intervals (default: train's, 1 and 10). */
  factorEvery?: number;
  inverseEvery?: number;
  progress(message: string): void;
}

export interface TrainStepReport {
  shape: string;
  config: Record<string, unknown>;
  device: string;
  deviceName: string;
  optimizer: string;
  dtype: string;
  activations: string;
  checkpointing: boolean;
  batch: number;
  seq: number;
  params: number;
  trainable: number;
  stepMs: { median: number; mean: number; min: number };
  /** The first warm-up step (K-FAC: every factor decomposed cold, as a run's first step); null without warm-up. */
  firstStepMs: number | null;
  /** Mean of the timed steps that refreshed the large factors' eigenbases (K-FAC, every `inverseEvery` steps); null when none did. */
  refreshStepMs: number | null;
  /** Timed steps that refreshed the large factors, and that ran the adaptive damping's probe forward (K-FAC: every 5 steps). */
  refreshesTimed: number;
  probesTimed: number;
  /** K-FAC: timed steps that updated the factors and EKFAC's moments (every `factorEvery` steps: all of them at the default 1). */
  capturesTimed: number;
  /** Tokens over the mean step time: with K-FAC over a multiple of `inverseEvery` timed steps (the default 10), its refreshes and damping probes at a run's rate. */
  tokensPerSecond: number;
  /** Bytes: the device allocator's peak (cuda) or the host allocator's (cpu), since the process started. */
  peakMemoryBytes: number | null;
  /**
   * cuda: the caching device allocator over the timed steps of the main run — tensor allocations
   * and raw device allocations (cudaMalloc) per step, and the bytes reserved at the end (null on the CPU).
   */
  deviceCache: null | { caching: boolean; allocationsPerStep: number; rawAllocationsPerStep: number; reservedBytes: number; peakReservedBytes: number };
  /**
   * cuda: host waits on the stream per timed step (cuda.synchronizations()), the bench's own wait
   * at the end of each step included — of the run, and of the AdamW run timed for the ratio (K-FAC
   * runs); null without the CUDA binary.
   */
  hostSyncsPerStep: null | { run: number; adamw: number | null };
  /** FLOPs of one step (stepFlops): the linear layers' GEMMs and attention's products. */
  flopsPerStep: { linear: number; attention: number };
  /** K-FAC runs: its work per step and per refresh, counted from the shape (countTrainStep, docs/KFAC.md#cost); null for AdamW. */
  kfacFlops: TrainFlops | null;
  /** Share of the step in GEMM calls (linear, matmul), from a profiled round. */
  gemmShare: number | null;
  /** (linear + attention FLOPs) / mean step time. */
  stepTflops: number;
  /** Linear FLOPs / time in the GEMM calls of the profiled round. */
  gemmTflops: number | null;
  peakBf16Tflops: number | null;
  peakNote: string;
  /** K-FAC step mean / AdamW step mean on the same model (K-FAC runs only). */
  kfacOverAdamw: number | null;
  adamwStepMs: number | null;
  /**
   * PyTorch + PEFT on the same shape and device: its AdamW step (the baseline of the tokens/s
   * target) and, for K-FAC runs, kfac-pytorch's step when it imports (else `kfacMissing` says why).
   */
  peer: null | {
    name: string;
    optimizer: 'adamw';
    stepMs: number;
    tokensPerSecond: number;
    peakMemoryBytes: number | null;
    kfac: null | { version: string; stepMs: number; tokensPerSecond: number; peakMemoryBytes: number | null };
    kfacMissing: string | null;
  };
  peerMissing: string | null;
  lastLoss: number;
  loadBefore: number[];
  loadAfter: number[];
  notMeasured: string[];
}

function seededIds(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % vocab));
}

/** The shape's config with the small-run overrides applied. */
export function shapeConfig(o: Pick<TrainStepOptions, 'shape' | 'config' | 'layers' | 'hidden' | 'vocab'>): Record<string, unknown> {
  const base = o.config ?? TRAIN_SHAPES[o.shape];
  if (!base) throw new Error(`unknown shape ${o.shape}`);
  const c: Record<string, unknown> = { ...base };
  if (o.layers !== undefined) c['num_hidden_layers'] = o.layers;
  if (o.hidden !== undefined) {
    const ratio = (base['intermediate_size'] as number) / (base['hidden_size'] as number);
    const heads = Math.max(1, Math.round(o.hidden / 64));
    c['hidden_size'] = o.hidden;
    c['intermediate_size'] = Math.round(o.hidden * ratio);
    c['num_attention_heads'] = heads;
    if (c['num_key_value_heads'] !== undefined) {
      const g = (base['num_attention_heads'] as number) / (base['num_key_value_heads'] as number);
      c['num_key_value_heads'] = heads % g === 0 ? heads / g : heads;
    }
  }
  if (o.vocab !== undefined) c['vocab_size'] = o.vocab;
  return c;
}

/** Times a square bf16 GEMM on the device: cuda matmul with bf16 operands (cuBLAS, f32 accumulate), cpu the bf16 linear kernel. */
export function measurePeak(device: 'cpu' | 'cuda', n: number): { tflops: number | null; note: string } {
  try {
    const x = Tensor.randn([n, n], { seed: 1 });
    const w = Tensor.randn([n, n], { seed: 2 });
    const xb = x.to(device, { dtype: device === 'cuda' ? 'bfloat16' : 'float32' });
    const wb = w.to(device, { dtype: 'bfloat16' });
    x.dispose();
    w.dispose();
    const y = Tensor.empty([n, n], { device });
    const run = () => (device === 'cuda' ? linalg.matmul(xb, wb, { transB: true, out: y }) : F.linearForward(xb, wb, null, y));
    run();
    const ts: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = process.hrtime.bigint();
      run();
      if (device === 'cuda') cudaNs.synchronize();
      ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    for (const t of [xb, wb, y]) t.dispose();
    const ms = median(ts);
    return { tflops: (2 * n ** 3) / (ms * 1e-3) / 1e12, note: `${device === 'cuda' ? 'cuBLAS matmul, bf16 operands, f32 accumulate' : `the bf16 linear kernel (${native().info().cpu.bf16Kernel})`}, ${n}×${n}×${n}, median of 5` };
  } catch (e) {
    return { tflops: null, note: `not measured: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
}

function peakMemory(device: 'cpu' | 'cuda'): number | null {
  if (device === 'cuda') return cudaNs.memory()?.peak ?? null;
  return native().info().memory.peakAllocatedBytes;
}

/**
 * One optimizer's step as a run takes it: the run's optimizer at its defaults (buildOptimizer:
 * K-FAC with its schedule, Newton clip, adaptive damping and its probe; AdamW), capture as the
 * Trainer drives it, the loss read as the Trainer reads it (riding in K-FAC's step record).
 */
interface Stepper {
  /** Points the model's per-block capture hook at this optimizer (or clears it). */
  attach(): void;
  /** One step; whether it refreshed the large factors' eigenbases (K-FAC) and ran the damping probe's extra forward. */
  one(): { loss: number; refresh: boolean; probe: boolean; captured: boolean };
  dispose(): void;
}

/** Steps the schedule is laid over: long enough that no timed step runs at the cosine's end. */
const SCHEDULE_STEPS = 1000;

/** The run a train-step row stands for: the optimizer at train's defaults, LoRA r = 16 on every linear layer (K-FAC's intervals as given). */
export function stepRunConfig(optimizer: 'adamw' | 'kfac', intervals: Pick<TrainStepOptions, 'factorEvery' | 'inverseEvery'> = {}): RunConfig {
  return withDefaults({
    model: '(random init)',
    data: '(random ids)',
    optimizer,
    targets: 'all-linear',
    loraR: STEP_LORA.r,
    loraAlpha: STEP_LORA.alpha,
    ...(intervals.factorEvery !== undefined ? { factorEvery: intervals.factorEvery } : {}),
    ...(intervals.inverseEvery !== undefined ? { inverseEvery: intervals.inverseEvery } : {}),
  });
}

function makeStepper(model: TransformerModel, c: RunConfig, batch: Batch): Stepper {
  const opt = buildOptimizer(c, model, SCHEDULE_STEPS);
  const B = batch.shape[0];
  return {
    attach: () => {
      model.onBlockBackward = null;
      // a checkpointed model frees each block's activations after its backward: K-FAC reads them first (as executeRun)
      if (model.checkpointing) captureBlockwise(model, opt);
    },
    one: () => {
      model.zeroGrad();
      const out = model.forward(batch);
      model.backward();
      opt.capture?.({ batchSize: B });
      const deferred = opt.readsLosses?.() && out.lossValue ? [out.lossValue] : null;
      const tel = opt.step(deferred ? { batchSize: B, losses: deferred } : { batchSize: B });
      const loss = out.loss!;
      const probe = opt.wantsLoss?.() ?? false;
      if (probe) {
        // the loss at the new weights, read with the probe's record (as the Trainer passes it)
        const after = lossValueOf(model, batch);
        opt.observeLoss?.({ before: loss, after: typeof after === 'number' ? after : [after] });
      }
      const t = tel as { decomposed?: boolean; factorsUpdated?: boolean } | undefined;
      return { loss, refresh: t?.decomposed === true, probe, captured: t?.factorsUpdated === true };
    },
    dispose: () => {
      model.onBlockBackward = null;
      if ('dispose' in opt.inner) opt.inner.dispose();
    },
  };
}

interface Timed {
  ms: number[];
  /** Which timed steps refreshed the large factors (K-FAC every `inverseEvery` steps). */
  refresh: boolean[];
  probes: number;
  captures: number;
  loss: number;
  cache: TrainStepReport['deviceCache'];
  syncsPerStep: number | null;
}

function timeSteps(s: Stepper, warmup: number, steps: number, device: 'cpu' | 'cuda', profile?: OpProfile, onWarmup?: (ms: number) => void, onStep?: (i: number, ms: number, refresh: boolean) => void): Timed {
  s.attach();
  let loss = NaN;
  const one = () => {
    const t0 = process.hrtime.bigint();
    const r = s.one();
    loss = r.loss;
    if (device === 'cuda') cudaNs.synchronize();
    return { ...r, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  };
  for (let i = 0; i < warmup; i++) onWarmup?.(one().ms);
  const ms: number[] = [];
  const refresh: boolean[] = [];
  let probes = 0;
  let captures = 0;
  const m0 = device === 'cuda' ? cudaNs.memory() : null;
  const s0 = device === 'cuda' ? cudaNs.synchronizations() : null;
  profile?.start();
  try {
    for (let i = 0; i < steps; i++) {
      const r = one();
      ms.push(r.ms);
      refresh.push(r.refresh);
      if (r.probe) probes += 1;
      if (r.captured) captures += 1;
      onStep?.(i, r.ms, r.refresh);
    }
  } finally {
    profile?.stop();
  }
  const s1 = device === 'cuda' ? cudaNs.synchronizations() : null;
  const m1 = device === 'cuda' ? cudaNs.memory() : null;
  const cache =
    m0 && m1 && steps > 0
      ? { caching: m1.caching, allocationsPerStep: (m1.allocations - m0.allocations) / steps, rawAllocationsPerStep: (m1.rawAllocations - m0.rawAllocations) / steps, reservedBytes: m1.reserved, peakReservedBytes: m1.peakReserved }
      : null;
  return { ms, refresh, probes, captures, loss, cache, syncsPerStep: s0 !== null && s1 !== null && steps > 0 ? (s1 - s0) / steps : null };
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

export async function runTrainStep(o: TrainStepOptions): Promise<TrainStepReport> {
  const loadBefore = loadavg();
  const cfg = shapeConfig(o);
  const notMeasured: string[] = [];
  const B = o.batch;
  const T = o.seq;
  const causal = cfg['model_type'] !== 'bert';
  const activations = o.activations ?? 'float32';
  if (activations !== 'float32' && o.device !== 'cuda')
    invalidArgument('activations', "'float32' on the CPU (bf16 activations are a cuda storage)", `'${activations}' for ${o.shape} on ${o.device}`);
  o.progress(`building ${o.shape} on ${o.device}`);
  const model = createModel(configFromHf(cfg), { task: causal ? 'causal-lm' : 'sequence-classification', seed: 0, device: o.device, dtype: o.dtype, checkpointing: o.checkpointing, ...(activations === 'float32' ? {} : { activations }) });
  let peer: Peer | undefined;
  const steppers: Stepper[] = [];
  try {
    model.train();
    applyLora(model, { targetModules: 'all-linear', r: STEP_LORA.r, alpha: STEP_LORA.alpha, dropout: 0 });
    const ids = seededIds(B * T, model.config.vocabSize, 7);
    const batch: Batch = { inputIds: ids, shape: [B, T], labels: causal ? ids : Int32Array.from({ length: B }, (_, i) => i % 2) };
    o.progress(`timing ${o.optimizer}`);
    const run = stepRunConfig(o.optimizer, o);
    const stepper = makeStepper(model, run, batch);
    steppers.push(stepper);
    const warmupMs: number[] = [];
    const main = timeSteps(
      stepper,
      o.warmup,
      o.steps,
      o.device,
      undefined,
      (ms) => {
        warmupMs.push(ms);
        o.progress(`warm-up step ${warmupMs.length}: ${ms.toFixed(0)} ms${o.optimizer === 'kfac' && warmupMs.length === 1 ? ' (every factor decomposed cold)' : ''}`);
      },
      (i, ms, refresh) => o.progress(`${o.optimizer} step ${i + 1}/${o.steps}: ${ms.toFixed(1)} ms${refresh ? ' (refreshed the large factors)' : ''}`),
    );
    const refreshes = main.refresh.filter(Boolean).length;
    let adamwMs: number[] | null = null;
    let adamwSyncs: number | null = null;
    if (o.optimizer === 'kfac') {
      o.progress(`${o.steps} K-FAC steps: mean ${mean(main.ms).toFixed(1)} ms (${refreshes} refresh, ${main.probes} damping probes); timing adamw for the ratio`);
      const adamw = makeStepper(model, stepRunConfig('adamw'), batch);
      steppers.push(adamw);
      const a = timeSteps(adamw, o.warmup, o.steps, o.device);
      adamwMs = a.ms;
      adamwSyncs = a.syncsPerStep;
      // a run's K-FAC pays one refresh of the large factors every inverseEvery steps and one
      // capture every factorEvery: the mean over the timed steps is that cost only over whole windows
      const every = run.inverseEvery;
      const fe = run.factorEvery ?? 1;
      if (o.steps % every !== 0)
        notMeasured.push(`kfacOverAdamw over whole refresh windows: ${o.steps} timed steps are not a multiple of inverseEvery (${every}), so the mean holds ${refreshes} refresh(es) where a run pays one per ${every} steps`);
      if (o.steps % fe !== 0)
        notMeasured.push(`kfacOverAdamw over whole capture windows: ${o.steps} timed steps are not a multiple of factorEvery (${fe}), so the mean holds ${main.captures} factor update(s) where a run pays one per ${fe} steps`);
    } else notMeasured.push('kfacOverAdamw: run with --optimizer kfac');
    o.progress('profiling one round (a wait after every native call on cuda)');
    const prof = new OpProfile(o.device === 'cuda' ? () => cudaNs.synchronize() : undefined);
    // the same optimizer, so K-FAC's factors are not decomposed cold again (after the default
    // warm-up and 10 timed steps its next three refresh nothing; a profiled refresh is reported)
    const pr = timeSteps(stepper, 0, Math.min(3, o.steps), o.device, prof);
    const rows = prof.rows(pr.ms.length, mean(pr.ms));
    const gemmRow = rows.find((r) => r.family.startsWith('gemm'));
    const gemmShare = gemmRow ? gemmRow.share : null;
    if (gemmShare === null) notMeasured.push('gemmShare: no GEMM call was profiled');
    if (pr.refresh.some(Boolean)) notMeasured.push('gemmShare of a plain step: the profiled round held a refresh of the large factors');
    const peakMem = peakMemory(o.device);
    o.progress('timing the bf16 GEMM peak');
    const peak = measurePeak(o.device, o.peakSize);
    if (peak.tflops === null) notMeasured.push(`peakBf16Tflops: ${peak.note}`);
    const flops = stepFlops(model, B, T, STEP_LORA.r);
    const kfacFlops = o.optimizer === 'kfac' ? countTrainStep(cfg, B, T, run) : null;
    const stepMean = mean(main.ms);
    // the GEMM family of the profile is the linear layers' calls (attention is its own family)
    const gemmTflops = gemmShare ? flops.linear / (gemmShare * mean(pr.ms) * 1e-3) / 1e12 : null;
    const info = cudaNs.deviceInfo();
    const report: TrainStepReport = {
      shape: o.shape,
      config: cfg,
      device: o.device,
      deviceName: o.device === 'cuda' ? (info?.devices[0]?.name ?? 'cuda (CPU loopback)') : native().info().cpu.brand.trim(),
      optimizer: o.optimizer,
      dtype: o.dtype,
      activations,
      checkpointing: o.checkpointing,
      batch: B,
      seq: T,
      params: model.parameters().reduce((n, p) => n + p.tensor.size, 0),
      trainable: model.trainableParameters().reduce((n, p) => n + p.tensor.size, 0),
      stepMs: { median: median(main.ms), mean: stepMean, min: Math.min(...main.ms) },
      firstStepMs: warmupMs[0] ?? null,
      refreshStepMs: refreshes > 0 ? mean(main.ms.filter((_, i) => main.refresh[i])) : null,
      refreshesTimed: refreshes,
      probesTimed: main.probes,
      capturesTimed: main.captures,
      tokensPerSecond: (B * T * 1000) / stepMean,
      peakMemoryBytes: peakMem,
      deviceCache: main.cache,
      hostSyncsPerStep: main.syncsPerStep === null ? null : { run: main.syncsPerStep, adamw: adamwSyncs },
      flopsPerStep: flops,
      kfacFlops,
      gemmShare,
      stepTflops: (flops.linear + flops.attention) / (stepMean * 1e-3) / 1e12,
      gemmTflops,
      peakBf16Tflops: peak.tflops,
      peakNote: peak.note,
      kfacOverAdamw: adamwMs ? stepMean / mean(adamwMs) : null,
      adamwStepMs: adamwMs ? mean(adamwMs) : null,
      peer: null,
      peerMissing: null,
      lastLoss: main.loss,
      loadBefore,
      loadAfter: loadavg(),
      notMeasured,
    };
    if (o.peer === 'torch') {
      o.progress('starting the PyTorch peer');
      peer = await Peer.start(native().info().cpu.threads, false, 'peer_train_step.py');
      if (!peer) report.peerMissing = 'no python with the peer worker answered (set KFAC_PEER_PYTHON to a python with torch, transformers and peft)';
      else {
        const init = await peer.call({ op: 'init', create: cfg, task: causal ? 'causal-lm' : 'sequence-classification', r: 16, alpha: 32, dtype: o.dtype, device: o.device, checkpointing: o.checkpointing, shape: [B, T], ids: [...ids], threads: native().info().cpu.threads });
        if (init?.['ok'] !== true) report.peerMissing = `the peer failed: ${String(init?.['error'] ?? 'no reply')}`;
        else {
          // as ours: warm-up steps, then the mean of the timed steps
          const timed = async (): Promise<{ stepMs: number; tokensPerSecond: number; peakMemoryBytes: number | null } | string> => {
            await peer!.call({ op: 'steps', n: o.warmup });
            const rep = await peer!.call({ op: 'steps', n: o.steps });
            if (rep?.['ok'] !== true) return `the peer failed: ${String(rep?.['error'] ?? 'no reply')}`;
            const ms = mean(rep['ms'] as number[]);
            return { stepMs: ms, tokensPerSecond: (B * T * 1000) / ms, peakMemoryBytes: typeof rep['peak'] === 'number' ? rep['peak'] : null };
          };
          o.progress('timing the peer: AdamW');
          const adamw = await timed();
          if (typeof adamw === 'string') report.peerMissing = adamw;
          else {
            report.peer = { name: `PyTorch ${String(init['torch'])} + transformers ${String(init['transformers'])} + PEFT ${String(init['peft'])}`, optimizer: 'adamw', ...adamw, kfac: null, kfacMissing: null };
            if (o.optimizer === 'kfac') {
              const k = await peer.call({ op: 'kfac' });
              if (k?.['ok'] !== true) report.peer.kfacMissing = `the peer failed: ${String(k?.['error'] ?? 'no reply')}`;
              else if (typeof k['kfacMissing'] === 'string') report.peer.kfacMissing = k['kfacMissing'];
              else {
                o.progress('timing the peer: kfac-pytorch');
                const kr = await timed();
                if (typeof kr === 'string') report.peer.kfacMissing = kr;
                else report.peer.kfac = { version: String(k['kfac']), ...kr };
              }
            }
          }
        }
      }
    } else notMeasured.push('peer: run with --peer torch');
    report.loadAfter = loadavg();
    return report;
  } finally {
    peer?.close();
    for (const st of steppers) st.dispose();
    model.dispose();
  }
}
