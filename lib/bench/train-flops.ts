/**
 * The FLOPs of one LoRA fine-tuning step of a shape, and of K-FAC's work on it
 * (docs/KFAC.md#cost): counted from the shape alone, on a one-layer copy of the model (every
 * block of these shapes has the same layers), so that a 3B shape is counted in a second on any
 * machine. `kfac-peft bench train-step --flops` prints it; the timed report carries it.
 */
import { configFromHf, createModel, type TransformerModel } from '../models/index.js';
import { applyLora } from '../peft/index.js';
import { kfacFlops, type KfacFlops } from '../kfac/cost.js';
import { resolveKfacOptions } from '../kfac/options.js';
import { kfacBlocksOfRun, kfacCurvatureOptions } from '../train/run-optimizer.js';
import type { RunConfig } from '../train/run-config.js';

/** LoRA rank and alpha of every train-step row. */
export const STEP_LORA = { r: 16, alpha: 32 } as const;

/**
 * FLOPs of one LoRA step, from the shape: `linear` — the forward and input-gradient GEMMs of the
 * blocks' linear layers and the LM head (2·tokens·weights each way; frozen weights get no weight
 * gradient) and the adapters' (≈ r·(din + dout) per adapted layer, three GEMMs each way);
 * `attention` — QKᵀ and PV forward (full square, no causal halving) and twice that backward.
 * A linear layer outside the blocks (BERT's pooler) reads one row per example. `scale` counts a model of `layers` blocks and a `vocab`-word head from a smaller copy of it.
 */
export function stepFlops(m: TransformerModel, B: number, T: number, r: number, scale?: { layers: number; vocab: number }): { linear: number; attention: number } {
  const c = m.config as unknown as { hiddenSize: number; numLayers: number; vocabSize: number; family: string };
  const perLayer = (scale?.layers ?? c.numLayers) / c.numLayers;
  const tok = B * T;
  // the blocks' layers read every token; a linear layer outside them (BERT's pooler) one row per example
  let weights = 0;
  let adapted = 0;
  for (const p of m.parameters()) {
    if (p.tensor.rank !== 2 || !/\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|query|key|value|dense|lin1|lin2|q_lin|k_lin|v_lin|out_lin)\.weight$/.test(p.name)) continue;
    const rows = inBlock(p.name) ? tok * perLayer : B;
    weights += rows * p.tensor.size;
    adapted += rows * r * (p.tensor.shape[0]! + p.tensor.shape[1]!);
  }
  const head = c.family === 'bert' ? 0 : tok * (scale?.vocab ?? c.vocabSize) * c.hiddenSize;
  return { linear: 4 * (weights + head) + 6 * adapted, attention: 3 * 4 * B * T * T * c.hiddenSize * c.numLayers * perLayer };
}

/** Whether a parameter or layer name is inside a transformer block (`…layers.3.…`, `…layer.0.…`). */
export function inBlock(name: string): boolean {
  return /(^|\.)(layers|layer|h|block)\.\d+\./.test(name);
}

export interface TrainFlops {
  /** The shape's blocks, counted from one. */
  layers: number;
  batch: number;
  seq: number;
  /** The model's step (stepFlops). */
  model: { linear: number; attention: number };
  /** K-FAC's work at the run's defaults (or the given intervals), with every block counted. */
  kfac: KfacFlops;
  /** K-FAC's average GEMM FLOPs per step over the model's. */
  kfacOverModel: number;
  /**
   * The smallest intervals at which K-FAC's GEMM FLOPs stay within `budget` of the model's (half
   * for the factor updates and moments with the preconditioning, half for the refresh); the
   * decompositions (Σ n³) are not in it. null where no interval reaches it (the preconditioning
   * alone is over half the budget).
   */
  within: { budget: number; factorEvery: number; inverseEvery: number } | null;
}

/**
 * Counts a step of `cfg` (a Hugging Face config dict) at batch B × seq T with LoRA r = 16 on every
 * linear layer, and K-FAC's work under `run` (its method, intervals, small-factor threshold).
 * Which rows each K-FAC layer reads (tokens, or one per example for a pooled head) is measured by
 * one forward and backward of two sequences of eight tokens.
 */
export function countTrainStep(cfg: Record<string, unknown>, B: number, T: number, run: RunConfig, budget = 0.15): TrainFlops {
  const layers = cfg['num_hidden_layers'] as number;
  const vocab = cfg['vocab_size'] as number;
  const causal = cfg['model_type'] !== 'bert';
  // one block and a small vocabulary: the head's FLOPs are counted from the real one
  const small = { ...cfg, num_hidden_layers: 1, vocab_size: Math.min(vocab, 64) };
  const model = createModel(configFromHf(small), { task: causal ? 'causal-lm' : 'sequence-classification', seed: 0 });
  try {
    model.train();
    applyLora(model, { targetModules: 'all-linear', r: STEP_LORA.r, alpha: STEP_LORA.alpha, dropout: 0 });
    const { layers: kl } = kfacBlocksOfRun(model, run.peft);
    const pb = 2;
    const pt = 8;
    const ids = Int32Array.from({ length: pb * pt }, (_, i) => (i * 7 + 3) % Math.min(vocab, 64));
    model.forward({ inputIds: ids, shape: [pb, pt], labels: causal ? ids : Int32Array.from({ length: pb }, (_, i) => i % 2) });
    model.backward();
    const rows = new Map<string, number>();
    for (const l of kl) {
      const x = l.input();
      const R = x.size / x.shape[x.rank - 1]!;
      if (R !== pb * pt && R !== pb) throw new Error(`K-FAC layer ${l.name} read ${R} rows of a ${pb} × ${pt} batch`);
      rows.set(l.name, R === pb * pt ? B * T : B);
    }
    const o = resolveKfacOptions(kfacCurvatureOptions(run));
    const one = kfacFlops(kl, o, (n) => rows.get(n)!);
    const heads = kl.filter((l) => !inBlock(l.name));
    const headsOnly = heads.length ? kfacFlops(heads, o, (n) => rows.get(n)!) : null;
    // every block's part L times, a head's once
    const scale = (all: number, head: number) => (all - head) * layers + head;
    const times = (k: keyof Omit<KfacFlops, 'factors' | 'factorEvery' | 'inverseEvery'>) => scale(one[k], headsOnly?.[k] ?? 0);
    const kfac: KfacFlops = {
      factors: {
        large: scale(one.factors.large, headsOnly?.factors.large ?? 0),
        small: scale(one.factors.small, headsOnly?.factors.small ?? 0),
        largestDim: one.factors.largestDim,
      },
      factorUpdates: times('factorUpdates'),
      moments: times('moments'),
      precondition: times('precondition'),
      refreshGemm: times('refreshGemm'),
      refreshN3: times('refreshN3'),
      smallN3: times('smallN3'),
      perStep: times('perStep'),
      factorEvery: one.factorEvery,
      inverseEvery: one.inverseEvery,
    };
    const m = stepFlops(model, B, T, STEP_LORA.r, { layers, vocab });
    const total = m.linear + m.attention;
    return { layers, batch: B, seq: T, model: m, kfac, kfacOverModel: kfac.perStep / total, within: intervalsWithin(kfac, total, budget) };
  } finally {
    model.dispose();
  }
}

/** The smallest factor and refresh intervals that keep K-FAC's GEMM FLOPs within `budget` of `modelFlops` (TrainFlops.within). */
export function intervalsWithin(k: KfacFlops, modelFlops: number, budget: number): TrainFlops['within'] {
  const half = (budget * modelFlops) / 2;
  if (k.precondition >= half) return null;
  const factorEvery = Math.max(1, Math.ceil((k.factorUpdates + k.moments) / (half - k.precondition)));
  const inverseEvery = Math.max(1, Math.ceil(k.refreshGemm / half));
  return { budget, factorEvery, inverseEvery };
}
