/**
 * Model configurations of the supported families, and their reading from a Hugging Face
 * config.json object.
 *
 * Three families cover the supported architectures:
 * - 'llama': LLaMA, Mistral, Qwen2 (and llama2.c checkpoints): RMSNorm, RoPE, grouped-query
 *   attention, SwiGLU MLP, pre-norm.
 * - 'bert': BERT, RoBERTa, DistilBERT: absolute positions, post-LayerNorm, GELU, bidirectional.
 * - 'gpt2': GPT-2: learned positions, pre-LayerNorm, Conv1D weight layout, GELU (tanh), tied head.
 *
 * Anything a family does not implement (rope scaling, a different activation, …) is a
 * ConfigError naming the field, never a silent approximation.
 */
import { ConfigError, describe } from '../errors.js';
import { type ModelConfig as IoModelConfig, parseModelConfig } from '../io/config.js';
import type { GeluApproximate, RopeConvention } from '../nn/functional.js';
import type { T5Config } from './t5-config.js';

export type LlamaModelType = 'llama' | 'mistral' | 'qwen2';
export type BertModelType = 'bert' | 'roberta' | 'distilbert';

export interface LlamaConfig {
  readonly family: 'llama';
  readonly modelType: LlamaModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** Key/value heads (grouped-query attention when below numHeads). */
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  /** 'half' (Hugging Face rotate_half) or 'interleaved' (llama2.c / Meta checkpoints). */
  readonly ropeConvention: RopeConvention;
  readonly maxPositions: number;
  /** Biases on q/k/v (Qwen2; LLaMA's attention_bias also puts one on o_proj, see outputBias). */
  readonly qkvBias: boolean;
  readonly outputBias: boolean;
  readonly mlpBias: boolean;
  readonly tieWordEmbeddings: boolean;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Mistral's sliding window: sequences longer than it are refused (not implemented). */
  readonly slidingWindow: number | null;
  /** Dropout on the attention probabilities (attention_dropout; 0 in released checkpoints). */
  readonly attentionDropout: number;
}

export interface BertConfig {
  readonly family: 'bert';
  readonly modelType: BertModelType;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly maxPositions: number;
  /** Token type (segment) vocabulary; 0 for DistilBERT (no token type embedding). */
  readonly typeVocabSize: number;
  readonly layerNormEps: number;
  readonly activation: GeluApproximate;
  readonly hiddenDropout: number;
  /** Dropout on the attention probabilities (attention_probs_dropout_prob; DistilBERT's attention_dropout). */
  readonly attentionDropout: number;
  /** Dropout before the classifier (classifier_dropout, else hidden_dropout_prob; seq_classif_dropout for DistilBERT). */
  readonly classifierDropout: number;
  readonly padTokenId: number;
  /** Added to every position id: RoBERTa numbers positions from padding_idx + 1. */
  readonly positionOffset: number;
}

export interface Gpt2Config {
  readonly family: 'gpt2';
  readonly modelType: 'gpt2';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly maxPositions: number;
  readonly layerNormEps: number;
  readonly activation: GeluApproximate;
  readonly residDropout: number;
  readonly embdDropout: number;
  /** Dropout on the attention probabilities (attn_pdrop). */
  readonly attnDropout: number;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
}

/** The architecture of a model (what lib/models builds); lib/io's ModelConfig is the parsed config.json it comes from. */
export type ArchitectureConfig = LlamaConfig | BertConfig | Gpt2Config | T5Config;

/** What the model is trained for: next-token prediction, classes, or real-valued targets. */
export type Task = 'causal-lm' | 'sequence-classification' | 'regression' | 'seq2seq-lm';

/** Fields that a config may override; `family` and `modelType` select the defaults. */
export type LlamaConfigInit = Partial<Omit<LlamaConfig, 'family'>> & Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads'>;
export type BertConfigInit = Partial<Omit<BertConfig, 'family'>> & Pick<BertConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads'>;
export type Gpt2ConfigInit = Partial<Omit<Gpt2Config, 'family' | 'modelType'>> & Pick<Gpt2Config, 'vocabSize' | 'hiddenSize' | 'numLayers' | 'numHeads'>;

function positiveInt(v: unknown, field: string, file?: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) bad(field, 'a positive integer', v, file);
  return v;
}
function nonNegInt(v: unknown, field: string, file?: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 31 - 1) bad(field, 'a non-negative integer', v, file);
  return v;
}
function positive(v: unknown, field: string, file?: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(field, 'a positive number', v, file);
  return v;
}
function probability(v: unknown, field: string, file?: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) bad(field, 'a probability in [0, 1)', v, file);
  return v;
}
function bad(field: string, expected: string, got: unknown, file?: string): never {
  throw new ConfigError(`${field}: expected ${expected}, got ${describe(got)}`, { argument: field, expected, got: describe(got), ...(file === undefined ? {} : { file }) });
}

function checkHeads(hidden: number, heads: number, kv: number, headDim: number): void {
  if (heads % kv !== 0) bad('numKvHeads', `a divisor of numHeads (${heads})`, kv);
  if (headDim < 1) bad('headDim', 'a positive integer', headDim);
  if (hidden < 1) bad('hiddenSize', 'a positive integer', hidden);
}

/** A LLaMA-family config with defaults for the fields not given (LLaMA's own defaults). */
export function llamaConfig(init: LlamaConfigInit): LlamaConfig {
  const numHeads = positiveInt(init.numHeads, 'numHeads');
  const hiddenSize = positiveInt(init.hiddenSize, 'hiddenSize');
  const numKvHeads = init.numKvHeads === undefined ? numHeads : positiveInt(init.numKvHeads, 'numKvHeads');
  if (init.headDim === undefined && hiddenSize % numHeads !== 0) bad('numHeads', `a divisor of hiddenSize (${hiddenSize}) or an explicit headDim`, numHeads);
  const headDim = init.headDim === undefined ? hiddenSize / numHeads : positiveInt(init.headDim, 'headDim');
  if (headDim % 2 !== 0) bad('headDim', 'an even head dimension (RoPE rotates pairs)', headDim);
  checkHeads(hiddenSize, numHeads, numKvHeads, headDim);
  const modelType = init.modelType ?? 'llama';
  return {
    family: 'llama',
    modelType,
    vocabSize: positiveInt(init.vocabSize, 'vocabSize'),
    hiddenSize,
    intermediateSize: positiveInt(init.intermediateSize, 'intermediateSize'),
    numLayers: positiveInt(init.numLayers, 'numLayers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: init.rmsNormEps === undefined ? 1e-6 : positive(init.rmsNormEps, 'rmsNormEps'),
    ropeTheta: init.ropeTheta === undefined ? 10000 : positive(init.ropeTheta, 'ropeTheta'),
    ropeConvention: init.ropeConvention ?? 'half',
    maxPositions: init.maxPositions === undefined ? 2048 : positiveInt(init.maxPositions, 'maxPositions'),
    qkvBias: init.qkvBias ?? modelType === 'qwen2',
    outputBias: init.outputBias ?? false,
    mlpBias: init.mlpBias ?? false,
    tieWordEmbeddings: init.tieWordEmbeddings ?? false,
    padTokenId: init.padTokenId ?? null,
    bosTokenId: init.bosTokenId ?? null,
    eosTokenId: init.eosTokenId ?? null,
    slidingWindow: init.slidingWindow ?? null,
    attentionDropout: init.attentionDropout === undefined ? 0 : probability(init.attentionDropout, 'attentionDropout'),
  };
}

/** A BERT-family config; RoBERTa defaults its position offset to padTokenId + 1. */
export function bertConfig(init: BertConfigInit): BertConfig {
  const modelType = init.modelType ?? 'bert';
  const hiddenSize = positiveInt(init.hiddenSize, 'hiddenSize');
  const numHeads = positiveInt(init.numHeads, 'numHeads');
  if (hiddenSize % numHeads !== 0) bad('numHeads', `a divisor of hiddenSize (${hiddenSize})`, numHeads);
  const padTokenId = init.padTokenId === undefined ? (modelType === 'roberta' ? 1 : 0) : nonNegInt(init.padTokenId, 'padTokenId');
  const hiddenDropout = init.hiddenDropout === undefined ? 0.1 : probability(init.hiddenDropout, 'hiddenDropout');
  return {
    family: 'bert',
    modelType,
    vocabSize: positiveInt(init.vocabSize, 'vocabSize'),
    hiddenSize,
    intermediateSize: positiveInt(init.intermediateSize, 'intermediateSize'),
    numLayers: positiveInt(init.numLayers, 'numLayers'),
    numHeads,
    maxPositions: init.maxPositions === undefined ? 512 : positiveInt(init.maxPositions, 'maxPositions'),
    typeVocabSize: init.typeVocabSize === undefined ? (modelType === 'distilbert' ? 0 : modelType === 'roberta' ? 1 : 2) : nonNegInt(init.typeVocabSize, 'typeVocabSize'),
    layerNormEps: init.layerNormEps === undefined ? 1e-12 : positive(init.layerNormEps, 'layerNormEps'),
    activation: init.activation ?? 'erf',
    hiddenDropout,
    attentionDropout: init.attentionDropout === undefined ? 0.1 : probability(init.attentionDropout, 'attentionDropout'),
    classifierDropout: init.classifierDropout === undefined ? hiddenDropout : probability(init.classifierDropout, 'classifierDropout'),
    padTokenId,
    positionOffset: init.positionOffset === undefined ? (modelType === 'roberta' ? padTokenId + 1 : 0) : nonNegInt(init.positionOffset, 'positionOffset'),
  };
}

export function gpt2Config(init: Gpt2ConfigInit): Gpt2Config {
  const hiddenSize = positiveInt(init.hiddenSize, 'hiddenSize');
  const numHeads = positiveInt(init.numHeads, 'numHeads');
  if (hiddenSize % numHeads !== 0) bad('numHeads', `a divisor of hiddenSize (${hiddenSize})`, numHeads);
  return {
    family: 'gpt2',
    modelType: 'gpt2',
    vocabSize: positiveInt(init.vocabSize, 'vocabSize'),
    hiddenSize,
    intermediateSize: init.intermediateSize === undefined ? 4 * hiddenSize : positiveInt(init.intermediateSize, 'intermediateSize'),
    numLayers: positiveInt(init.numLayers, 'numLayers'),
    numHeads,
    maxPositions: init.maxPositions === undefined ? 1024 : positiveInt(init.maxPositions, 'maxPositions'),
    layerNormEps: init.layerNormEps === undefined ? 1e-5 : positive(init.layerNormEps, 'layerNormEps'),
    activation: init.activation ?? 'tanh',
    residDropout: init.residDropout === undefined ? 0.1 : probability(init.residDropout, 'residDropout'),
    embdDropout: init.embdDropout === undefined ? 0.1 : probability(init.embdDropout, 'embdDropout'),
    attnDropout: init.attnDropout === undefined ? 0.1 : probability(init.attnDropout, 'attnDropout'),
    padTokenId: init.padTokenId ?? null,
    bosTokenId: init.bosTokenId ?? null,
    eosTokenId: init.eosTokenId ?? null,
  };
}

// ---------------------------------------------------------------- Hugging Face config.json

const GELU_BY_NAME: Record<string, GeluApproximate> = {
  gelu: 'erf',
  gelu_new: 'tanh',
  gelu_pytorch_tanh: 'tanh',
  gelu_fast: 'tanh',
};

function activationOf(v: string, field: string, file?: string): GeluApproximate {
  const a = GELU_BY_NAME[v];
  if (a === undefined) bad(field, `one of ${Object.keys(GELU_BY_NAME).join(', ')}`, v, file);
  return a;
}

/** Labels of a classification head from config.json (num_labels, else id2label), or undefined. */
export function numLabelsOf(json: Record<string, unknown>): number | undefined {
  const n = json['num_labels'];
  if (typeof n === 'number' && Number.isInteger(n) && n > 0) return n;
  const id2label = json['id2label'];
  if (id2label !== null && typeof id2label === 'object') {
    const k = Object.keys(id2label).length;
    if (k > 0) return k;
  }
  return undefined;
}

/**
 * The architecture config of a parsed Hugging Face / llama2.c ModelConfig (lib/io). `raw`, the
 * config.json object, supplies what only training needs (dropout rates) and options this
 * library refuses rather than approximates; without it the dropouts take transformers' defaults.
 */
export function fromModelConfig(m: IoModelConfig, raw: Record<string, unknown> = {}, file?: string): ArchitectureConfig {
  const f = file;
  const rate = (keys: readonly string[], fallback: number): number => {
    for (const k of keys) {
      const v = raw[k];
      if (v !== undefined && v !== null) return probability(v, k, f);
    }
    return fallback;
  };
  switch (m.family) {
    case 'llama':
    case 'mistral':
    case 'qwen2': {
      if (m.hiddenAct !== 'silu') bad('hidden_act', "'silu'", m.hiddenAct, f);
      const rope = m.rope;
      if (rope === undefined) bad('rope', 'a rotary position configuration', rope, f);
      if (rope.type !== 'default') bad('rope_scaling', "the 'default' rope (scaling is not implemented)", rope.type, f);
      return llamaConfig({
        modelType: m.family,
        vocabSize: m.vocabSize,
        hiddenSize: m.hiddenSize,
        intermediateSize: m.intermediateSize,
        numLayers: m.numLayers,
        numHeads: m.numHeads,
        numKvHeads: m.numKvHeads,
        headDim: m.headDim,
        rmsNormEps: m.normEps,
        ropeTheta: rope.theta,
        ropeConvention: rope.style,
        maxPositions: m.maxPositionEmbeddings,
        qkvBias: m.qkvBias,
        outputBias: m.attentionOutputBias,
        mlpBias: m.mlpBias,
        tieWordEmbeddings: m.tieWordEmbeddings,
        padTokenId: m.padTokenId ?? null,
        bosTokenId: m.bosTokenId ?? null,
        eosTokenId: m.eosTokenIds[0] ?? null,
        slidingWindow: m.slidingWindow ?? null,
        attentionDropout: rate(['attention_dropout'], 0),
      });
    }
    case 'bert':
    case 'roberta':
    case 'distilbert': {
      const distil = m.family === 'distilbert';
      const hidden = rate(distil ? ['dropout'] : ['hidden_dropout_prob'], 0.1);
      return bertConfig({
        modelType: m.family,
        vocabSize: m.vocabSize,
        hiddenSize: m.hiddenSize,
        intermediateSize: m.intermediateSize,
        numLayers: m.numLayers,
        numHeads: m.numHeads,
        maxPositions: m.maxPositionEmbeddings,
        typeVocabSize: m.typeVocabSize,
        layerNormEps: m.normEps,
        activation: activationOf(m.hiddenAct, distil ? 'activation' : 'hidden_act', f),
        hiddenDropout: hidden,
        attentionDropout: rate(distil ? ['attention_dropout'] : ['attention_probs_dropout_prob'], 0.1),
        classifierDropout: rate(distil ? ['seq_classif_dropout'] : ['classifier_dropout'], distil ? 0.2 : hidden),
        padTokenId: m.padTokenId ?? (m.family === 'roberta' ? 1 : 0),
        positionOffset: m.positionOffset,
      });
    }
    case 'gpt2': {
      if (raw['scale_attn_by_inverse_layer_idx'] === true) bad('scale_attn_by_inverse_layer_idx', 'false (not implemented)', true, f);
      if (raw['scale_attn_weights'] === false) bad('scale_attn_weights', 'true (not implemented otherwise)', false, f);
      return gpt2Config({
        vocabSize: m.vocabSize,
        hiddenSize: m.hiddenSize,
        intermediateSize: m.intermediateSize,
        numLayers: m.numLayers,
        numHeads: m.numHeads,
        maxPositions: m.maxPositionEmbeddings,
        layerNormEps: m.normEps,
        activation: activationOf(m.hiddenAct, 'activation_function', f),
        residDropout: rate(['resid_pdrop'], 0.1),
        embdDropout: rate(['embd_pdrop'], 0.1),
        attnDropout: rate(['attn_pdrop'], 0.1),
        padTokenId: m.padTokenId ?? null,
        bosTokenId: m.bosTokenId ?? null,
        eosTokenId: m.eosTokenIds[0] ?? null,
      });
    }
    default:
      return bad('family', 'a supported model family', (m as { family: unknown }).family, f);
  }
}

/** Reads a parsed Hugging Face config.json object (lib/io's parser) into an architecture config. */
export function configFromHf(json: unknown, file?: string): ArchitectureConfig {
  const m = parseModelConfig(json, file);
  return fromModelConfig(m, json as Record<string, unknown>, file);
}
