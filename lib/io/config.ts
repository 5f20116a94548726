/**
 * Hugging Face `config.json` → one typed ModelConfig.
 *
 * Reads the spellings of transformers v4 and v5 for BERT, RoBERTa, DistilBERT, LLaMA, Mistral,
 * Qwen2 and GPT-2: `rope_theta`/`rope_scaling` or `rope_parameters`, `torch_dtype` or `dtype`,
 * GPT-2's and DistilBERT's own names (n_embd, n_layer, n_head, n_inner, dim, hidden_dim …) or
 * their generic aliases. A key that is absent takes the default of that model's transformers
 * configuration class; where two spellings are present they must agree. Unknown model types and
 * values that contradict each other (heads that do not divide the width, kv heads that do not
 * divide the heads, non-positive sizes …) are a ConfigError.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { ConfigError, describe, FileError, invalidArgument } from '../errors.js';
import { readJsonFile } from './safetensors.js';

export const MODEL_FAMILIES = ['bert', 'roberta', 'distilbert', 'llama', 'mistral', 'qwen2', 'gpt2'] as const;
export type ModelFamily = (typeof MODEL_FAMILIES)[number];

export interface RopeConfig {
  /** Base of the rotary frequencies. */
  readonly theta: number;
  /**
   * Which dimensions rotate together: 'half' pairs i with i + headDim/2 (Hugging Face
   * rotate_half), 'interleaved' pairs 2i with 2i + 1 (llama2.c, Meta's original code).
   */
  readonly style: 'half' | 'interleaved';
  /** 'default', or the scaling type ('linear', 'dynamic', 'yarn', 'llama3' …). */
  readonly type: string;
  /** Every other rope parameter as given (factor, original_max_position_embeddings …). */
  readonly parameters: Readonly<Record<string, unknown>>;
}

export interface ModelConfig {
  readonly family: ModelFamily;
  readonly architectures: readonly string[];
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Key/value heads (grouped-query attention); equals numHeads without GQA. */
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Width of the MLP's hidden layer. */
  readonly intermediateSize: number;
  readonly maxPositionEmbeddings: number;
  /** The activation's transformers name: 'gelu', 'gelu_new', 'silu', 'relu' … */
  readonly hiddenAct: string;
  readonly norm: 'layernorm' | 'rmsnorm';
  readonly normEps: number;
  /** Learned absolute position embeddings, sinusoidal ones (DistilBERT option), or rotary. */
  readonly positions: 'absolute' | 'sinusoidal' | 'rope';
  /** First position id (RoBERTa numbers positions from pad_token_id + 1). */
  readonly positionOffset: number;
  readonly rope: RopeConfig | undefined;
  /** Token type (segment) embeddings; 0 where the model has none. */
  readonly typeVocabSize: number;
  /** The output projection shares the token embedding matrix. */
  readonly tieWordEmbeddings: boolean;
  /** Biases on the query/key/value projections. */
  readonly qkvBias: boolean;
  /** Bias on the attention output projection. */
  readonly attentionOutputBias: boolean;
  readonly mlpBias: boolean;
  /** Sliding-window attention span, when the model uses one. */
  readonly slidingWindow: number | undefined;
  /** The dtype the checkpoint was saved in, when the config says. */
  readonly dtype: 'float32' | 'float16' | 'bfloat16' | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenIds: readonly number[];
  /** Class labels of a classification head (id2label), in id order. */
  readonly labels: readonly string[] | undefined;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

interface Defaults {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kv?: number;
  inter?: number;
  maxPos: number;
  act: string;
  eps: number;
  tie: boolean;
  typeVocab?: number;
  theta?: number;
}

/** The defaults of each transformers configuration class. */
const DEFAULTS: Record<ModelFamily, Defaults> = {
  bert: { vocab: 30522, hidden: 768, layers: 12, heads: 12, inter: 3072, maxPos: 512, act: 'gelu', eps: 1e-12, tie: true, typeVocab: 2 },
  roberta: { vocab: 30522, hidden: 768, layers: 12, heads: 12, inter: 3072, maxPos: 512, act: 'gelu', eps: 1e-12, tie: true, typeVocab: 2 },
  distilbert: { vocab: 30522, hidden: 768, layers: 6, heads: 12, inter: 3072, maxPos: 512, act: 'gelu', eps: 1e-12, tie: true },
  llama: { vocab: 32000, hidden: 4096, layers: 32, heads: 32, inter: 11008, maxPos: 2048, act: 'silu', eps: 1e-6, tie: false, theta: 10000 },
  mistral: { vocab: 32000, hidden: 4096, layers: 32, heads: 32, kv: 8, inter: 14336, maxPos: 4096 * 32, act: 'silu', eps: 1e-6, tie: false, theta: 10000 },
  qwen2: { vocab: 151936, hidden: 4096, layers: 32, heads: 32, inter: 22016, maxPos: 32768, act: 'silu', eps: 1e-6, tie: false, theta: 10000 },
  gpt2: { vocab: 50257, hidden: 768, layers: 12, heads: 12, maxPos: 1024, act: 'gelu_new', eps: 1e-5, tie: true },
};

/** Reads config values with their alternative spellings, naming the file in errors. */
class Reader {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly file: string | undefined,
  ) {}

  fail(message: string): never {
    throw new ConfigError(message, this.file === undefined ? {} : { file: this.file });
  }

  /** The value under the first present key; every present spelling must agree. */
  get(keys: readonly string[]): unknown {
    let found: [string, unknown] | undefined;
    for (const k of keys) {
      const v = this.raw[k];
      if (v === undefined || v === null) continue;
      if (found === undefined) found = [k, v];
      else if (JSON.stringify(found[1]) !== JSON.stringify(v)) this.fail(`"${found[0]}" (${JSON.stringify(found[1])}) and "${k}" (${JSON.stringify(v)}) disagree`);
    }
    return found?.[1];
  }

  int(keys: readonly string[], fallback: number | undefined, min = 1): number {
    const v = this.get(keys);
    if (v === undefined) {
      if (fallback === undefined) this.fail(`"${keys[0]}" is missing`);
      return fallback;
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(`"${keys[0]}" must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v;
  }

  optionalInt(keys: readonly string[], min = 0): number | undefined {
    return this.get(keys) === undefined ? undefined : this.int(keys, undefined, min);
  }

  positive(keys: readonly string[], fallback: number): number {
    const v = this.get(keys);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(`"${keys[0]}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(keys: readonly string[], fallback: boolean): boolean {
    const v = this.get(keys);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') this.fail(`"${keys[0]}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(keys: readonly string[], fallback: string): string {
    const v = this.get(keys);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') this.fail(`"${keys[0]}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
}

function familyOf(r: Reader): ModelFamily {
  const mt = r.raw['model_type'];
  if (typeof mt !== 'string') r.fail(`"model_type" is missing; expected one of ${MODEL_FAMILIES.join(', ')}`);
  const key = mt.toLowerCase().replace(/-/g, '_');
  const fam = (MODEL_FAMILIES as readonly string[]).includes(key) ? (key as ModelFamily) : undefined;
  if (fam === undefined) r.fail(`model_type ${JSON.stringify(mt)} is not supported; expected one of ${MODEL_FAMILIES.join(', ')}`);
  return fam;
}

function readRope(r: Reader, fam: ModelFamily): RopeConfig {
  const d = DEFAULTS[fam].theta ?? 10000;
  const params = r.raw['rope_parameters'];
  const scaling = r.raw['rope_scaling'];
  if (params !== undefined && params !== null && !isObject(params)) r.fail('"rope_parameters" must be an object');
  if (scaling !== undefined && scaling !== null && !isObject(scaling)) r.fail('"rope_scaling" must be an object or null');
  const merged: Record<string, unknown> = { ...(isObject(scaling) ? scaling : {}), ...(isObject(params) ? params : {}) };
  // v4 spells the scaling kind "type", v5 "rope_type"
  const type = merged['rope_type'] ?? merged['type'] ?? 'default';
  if (typeof type !== 'string') r.fail('the rope type must be a string');
  if (isObject(scaling) && isObject(params)) {
    for (const [k, v] of Object.entries(scaling))
      if (k !== 'type' && params[k] !== undefined && JSON.stringify(params[k]) !== JSON.stringify(v)) r.fail(`rope_scaling.${k} and rope_parameters.${k} disagree`);
  }
  const v4 = r.raw['rope_theta'];
  const v5 = isObject(params) ? params['rope_theta'] : undefined;
  if (v4 !== undefined && v5 !== undefined && v4 !== v5) r.fail(`"rope_theta" (${JSON.stringify(v4)}) and rope_parameters.rope_theta (${JSON.stringify(v5)}) disagree`);
  const theta = v5 ?? v4 ?? d;
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) r.fail(`the rope theta must be a positive number, got ${JSON.stringify(theta)}`);
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(merged)) if (k !== 'rope_theta' && k !== 'rope_type' && k !== 'type') rest[k] = v;
  return Object.freeze({ theta, style: 'half', type: type === 'default' ? 'default' : type, parameters: Object.freeze(rest) });
}

function readDtype(r: Reader): ModelConfig['dtype'] {
  const v = r.get(['dtype', 'torch_dtype']);
  if (v === undefined || v === 'auto') return undefined;
  const s = typeof v === 'string' ? v.replace(/^torch\./, '') : v;
  if (s === 'float32' || s === 'float16' || s === 'bfloat16') return s;
  if (s === 'float' || s === 'half') return s === 'float' ? 'float32' : 'float16';
  return r.fail(`dtype ${JSON.stringify(v)} is not one of float32, float16, bfloat16`);
}

function readLabels(r: Reader): string[] | undefined {
  const m = r.raw['id2label'];
  if (m === undefined || m === null) return undefined;
  if (!isObject(m)) r.fail('"id2label" must be an object');
  const n = Object.keys(m).length;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = m[String(i)];
    if (typeof v !== 'string') r.fail(`"id2label" must map 0..${n - 1} to strings`);
    out.push(v);
  }
  return out;
}

function tokenIds(r: Reader, key: string): number[] {
  const v = r.raw[key];
  if (v === undefined || v === null) return [];
  const arr = Array.isArray(v) ? v : [v];
  if (!arr.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) r.fail(`"${key}" must be a token id or a list of them`);
  return arr as number[];
}

/**
 * Normalises the parsed contents of a config.json. `file` only names the source in errors.
 */
export function parseModelConfig(raw: unknown, file?: string): ModelConfig {
  if (!isObject(raw)) throw new ConfigError(`expected a config object, got ${describe(raw)}`, file === undefined ? {} : { file });
  const r = new Reader(raw, file);
  const fam = familyOf(r);
  const d = DEFAULTS[fam];
  const isGpt2 = fam === 'gpt2';
  const isDistil = fam === 'distilbert';
  const decoder = fam === 'llama' || fam === 'mistral' || fam === 'qwen2';

  const vocabSize = r.int(['vocab_size'], d.vocab);
  const hiddenSize = r.int(isGpt2 ? ['n_embd', 'hidden_size'] : isDistil ? ['dim', 'hidden_size'] : ['hidden_size'], d.hidden);
  const numLayers = r.int(isGpt2 ? ['n_layer', 'num_hidden_layers'] : isDistil ? ['n_layers', 'num_hidden_layers'] : ['num_hidden_layers'], d.layers);
  const numHeads = r.int(isGpt2 ? ['n_head', 'num_attention_heads'] : isDistil ? ['n_heads', 'num_attention_heads'] : ['num_attention_heads'], d.heads);
  const numKvHeads = decoder ? r.int(['num_key_value_heads'], d.kv ?? numHeads) : numHeads;
  const explicitHeadDim = decoder ? r.optionalInt(['head_dim'], 1) : undefined;
  if (explicitHeadDim === undefined && hiddenSize % numHeads !== 0) r.fail(`hidden size ${hiddenSize} is not a multiple of the ${numHeads} attention heads`);
  const headDim = explicitHeadDim ?? hiddenSize / numHeads;
  if (numHeads % numKvHeads !== 0) r.fail(`${numHeads} attention heads are not a multiple of the ${numKvHeads} key/value heads`);
  const intermediateSize = isGpt2 ? r.int(['n_inner'], 4 * hiddenSize) : r.int(isDistil ? ['hidden_dim', 'intermediate_size'] : ['intermediate_size'], d.inter);
  const maxPositionEmbeddings = r.int(isGpt2 ? ['n_positions', 'max_position_embeddings'] : ['max_position_embeddings'], d.maxPos);
  const hiddenAct = r.str(isGpt2 ? ['activation_function'] : isDistil ? ['activation'] : ['hidden_act'], d.act);
  const normEps = isDistil ? 1e-12 : r.positive(isGpt2 ? ['layer_norm_epsilon'] : decoder ? ['rms_norm_eps'] : ['layer_norm_eps'], d.eps);
  const tieWordEmbeddings = isDistil ? r.bool(['tie_word_embeddings', 'tie_weights_'], d.tie) : r.bool(['tie_word_embeddings'], d.tie);
  const typeVocabSize = fam === 'bert' || fam === 'roberta' ? r.int(['type_vocab_size'], d.typeVocab, 0) : 0;
  const padTokenId = r.optionalInt(['pad_token_id']) ?? (fam === 'roberta' ? 1 : fam === 'bert' || isDistil ? 0 : undefined);
  const bos = tokenIds(r, 'bos_token_id');
  if (bos.length > 1) r.fail('"bos_token_id" must be a single token id');

  let positions: ModelConfig['positions'] = decoder ? 'rope' : 'absolute';
  if (isDistil && r.bool(['sinusoidal_pos_embds'], false)) positions = 'sinusoidal';
  if (fam === 'bert' || fam === 'roberta') {
    const pet = r.str(['position_embedding_type'], 'absolute');
    if (pet !== 'absolute') r.fail(`position_embedding_type ${JSON.stringify(pet)} is not supported (only "absolute")`);
  }
  const attentionBias = fam === 'llama' ? r.bool(['attention_bias'], false) : false;
  let slidingWindow: number | undefined;
  if (fam === 'mistral') slidingWindow = r.optionalInt(['sliding_window'], 1);
  if (fam === 'qwen2' && r.bool(['use_sliding_window'], false)) slidingWindow = r.optionalInt(['sliding_window'], 1);

  const cfg: ModelConfig = {
    family: fam,
    architectures: Object.freeze(Array.isArray(raw['architectures']) ? raw['architectures'].filter((a): a is string => typeof a === 'string') : []),
    vocabSize,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize,
    maxPositionEmbeddings,
    hiddenAct,
    norm: decoder ? 'rmsnorm' : 'layernorm',
    normEps,
    positions,
    positionOffset: fam === 'roberta' ? (padTokenId ?? 1) + 1 : 0,
    rope: decoder ? readRope(r, fam) : undefined,
    typeVocabSize,
    tieWordEmbeddings,
    qkvBias: fam === 'qwen2' || attentionBias || !decoder,
    attentionOutputBias: attentionBias || !decoder,
    mlpBias: fam === 'llama' ? r.bool(['mlp_bias'], false) : !decoder,
    slidingWindow,
    dtype: readDtype(r),
    padTokenId,
    bosTokenId: bos[0],
    eosTokenIds: Object.freeze(tokenIds(r, 'eos_token_id')),
    labels: readLabels(r),
  };
  if (padTokenId !== undefined && padTokenId >= vocabSize) r.fail(`pad_token_id ${padTokenId} is outside the vocabulary of ${vocabSize}`);
  if (fam === 'roberta' && cfg.positionOffset >= maxPositionEmbeddings) r.fail(`RoBERTa positions start at ${cfg.positionOffset}, past max_position_embeddings ${maxPositionEmbeddings}`);
  return Object.freeze(cfg);
}

/** Reads `config.json` (a file, or a folder holding it) into a ModelConfig. */
export function loadModelConfig(path: string): ModelConfig {
  if (typeof path !== 'string') invalidArgument('path', 'a config.json file or a model folder', describe(path));
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'config.json');
  } catch (e) {
    throw new FileError(path, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return parseModelConfig(readJsonFile(file), file);
}
