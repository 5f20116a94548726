/**
 * The model of a run: loaded with its placement (device, storage dtype, checkpointing) and with
 * the run's PEFT method applied to the family's default targets or the configured ones.
 */
import { ConfigError } from '../errors.js';
import { type DeviceRequest, loadModel, type TransformerModel } from '../models/index.js';
import { applyBitfit, applyBottleneck, applyIa3, applyLora, applyPrefixTuning, applyPromptTuning } from '../peft/index.js';
import type { PreparedRun, RunConfig } from './run-config.js';

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

/** loadModel's placement options of a run: device, storage dtypes (weights, activations), gradient checkpointing. */
export function placementOf(c: Pick<RunConfig, 'device' | 'dtype' | 'activations' | 'gradientCheckpointing'>): { device?: DeviceRequest; dtype?: 'float32' | 'bfloat16'; activations?: 'float32' | 'bfloat16'; checkpointing?: boolean } {
  return { ...(c.device ? { device: c.device } : {}), ...(c.dtype ? { dtype: c.dtype } : {}), ...(c.activations ? { activations: c.activations } : {}), ...(c.gradientCheckpointing ? { checkpointing: true } : {}) };
}

/** The run's model, placed and checked against its data, without a PEFT method: `buildModel` applies it; `eval` loads an adapter instead. */
export function loadRunModel(p: PreparedRun): TransformerModel {
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
  if (model.config.vocabSize < p.codec.vocabSize) {
    model.dispose();
    throw new ConfigError(`the tokenizer (${p.codec.source}) has ${p.codec.vocabSize} tokens but the model only ${model.config.vocabSize} embeddings`);
  }
  return model;
}

/** The run's model with its PEFT method applied. */
export function buildModel(p: PreparedRun): TransformerModel {
  const model = loadRunModel(p);
  applyRunPeft(model, p.config);
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
