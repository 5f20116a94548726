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
import type { GeluApproximate, RopeConvention } from '../nn/functional.js';

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
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
}

export type ModelConfig = LlamaConfig | BertConfig | Gpt2Config;

/** What the model is trained for: next-token prediction, classes, or real-valued targets. */
export type Task = 'causal-lm' | 'sequence-classification' | 'regression';

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
function tokenId(v: unknown, field: string, file?: string): number | null {
  if (v === null || v === undefined) return null;
  if (Array.isArray(v)) return v.length === 0 ? null : tokenId(v[0], field, file);
  return nonNegInt(v, field, file);
}
function bad(field: string, expected: string, got: unknown, file?: string): never {
  throw new ConfigError(`${field}: expected ${expected}, got ${describe(got)}`, { argument: field, expected, got: describe(got), ...(file === undefined ? {} : { file }) });
}

function checkHeads(hidden: number, heads: number, kv: number, headDim: number, file?: string): void {
  if (heads % kv !== 0) bad('num_key_value_heads', `a divisor of num_attention_heads (${heads})`, kv, file);
  if (headDim < 1) bad('head_dim', 'a positive integer', headDim, file);
  if (hidden < 1) bad('hidden_size', 'a positive integer', hidden, file);
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

function activationOf(v: unknown, field: string, file?: string): GeluApproximate {
  const a = typeof v === 'string' ? GELU_BY_NAME[v] : undefined;
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
 * Reads a Hugging Face config.json object (already parsed) into a ModelConfig.
 * `file` only names the source in errors.
 */
export function configFromHf(json: unknown, file?: string): ModelConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ConfigError(`expected a JSON object, got ${describe(json)}`, file === undefined ? {} : { file });
  const j = json as Record<string, unknown>;
  const type = j['model_type'];
  const f = file;
  const get = (k: string): unknown => j[k];
  switch (type) {
    case 'llama':
    case 'mistral':
    case 'qwen2': {
      const act = get('hidden_act') ?? 'silu';
      if (act !== 'silu') bad('hidden_act', "'silu'", act, f);
      const scaling = get('rope_scaling');
      if (scaling !== null && scaling !== undefined) bad('rope_scaling', 'null (rope scaling is not implemented)', scaling, f);
      // Newer configs keep θ in rope_parameters ({ rope_type: 'default', rope_theta }).
      let theta = get('rope_theta');
      const rp = get('rope_parameters');
      if (rp !== null && rp !== undefined) {
        if (typeof rp !== 'object' || Array.isArray(rp)) bad('rope_parameters', 'an object', rp, f);
        const r = rp as Record<string, unknown>;
        if (r['rope_type'] !== undefined && r['rope_type'] !== 'default') bad('rope_parameters.rope_type', "'default' (rope scaling is not implemented)", r['rope_type'], f);
        if (r['rope_theta'] !== undefined) theta = r['rope_theta'];
      }
      const hidden = positiveInt(get('hidden_size'), 'hidden_size', f);
      const heads = positiveInt(get('num_attention_heads'), 'num_attention_heads', f);
      const kv = get('num_key_value_heads') === undefined || get('num_key_value_heads') === null ? heads : positiveInt(get('num_key_value_heads'), 'num_key_value_heads', f);
      const headDim = get('head_dim') === undefined || get('head_dim') === null ? hidden / heads : positiveInt(get('head_dim'), 'head_dim', f);
      if (!Number.isInteger(headDim)) bad('num_attention_heads', `a divisor of hidden_size (${hidden})`, heads, f);
      checkHeads(hidden, heads, kv, headDim, f);
      const attnBias = get('attention_bias') === true;
      const useSliding = type === 'mistral' || get('use_sliding_window') === true;
      const sw = get('sliding_window');
      return llamaConfig({
        modelType: type,
        vocabSize: positiveInt(get('vocab_size'), 'vocab_size', f),
        hiddenSize: hidden,
        intermediateSize: positiveInt(get('intermediate_size'), 'intermediate_size', f),
        numLayers: positiveInt(get('num_hidden_layers'), 'num_hidden_layers', f),
        numHeads: heads,
        numKvHeads: kv,
        headDim,
        rmsNormEps: get('rms_norm_eps') === undefined ? 1e-6 : positive(get('rms_norm_eps'), 'rms_norm_eps', f),
        ropeTheta: theta === undefined ? 10000 : positive(theta, 'rope_theta', f),
        ropeConvention: 'half',
        maxPositions: get('max_position_embeddings') === undefined ? 2048 : positiveInt(get('max_position_embeddings'), 'max_position_embeddings', f),
        qkvBias: type === 'qwen2' ? true : attnBias,
        outputBias: type === 'qwen2' ? false : attnBias,
        mlpBias: get('mlp_bias') === true,
        tieWordEmbeddings: get('tie_word_embeddings') === true,
        padTokenId: tokenId(get('pad_token_id'), 'pad_token_id', f),
        bosTokenId: tokenId(get('bos_token_id'), 'bos_token_id', f),
        eosTokenId: tokenId(get('eos_token_id'), 'eos_token_id', f),
        slidingWindow: useSliding && typeof sw === 'number' ? positiveInt(sw, 'sliding_window', f) : null,
      });
    }
    case 'bert':
    case 'roberta': {
      const pet = get('position_embedding_type') ?? 'absolute';
      if (pet !== 'absolute') bad('position_embedding_type', "'absolute'", pet, f);
      const hd = get('hidden_dropout_prob') === undefined ? 0.1 : probability(get('hidden_dropout_prob'), 'hidden_dropout_prob', f);
      const cd = get('classifier_dropout');
      return bertConfig({
        modelType: type,
        vocabSize: positiveInt(get('vocab_size'), 'vocab_size', f),
        hiddenSize: positiveInt(get('hidden_size'), 'hidden_size', f),
        intermediateSize: positiveInt(get('intermediate_size'), 'intermediate_size', f),
        numLayers: positiveInt(get('num_hidden_layers'), 'num_hidden_layers', f),
        numHeads: positiveInt(get('num_attention_heads'), 'num_attention_heads', f),
        maxPositions: positiveInt(get('max_position_embeddings') ?? 512, 'max_position_embeddings', f),
        typeVocabSize: nonNegInt(get('type_vocab_size') ?? 2, 'type_vocab_size', f),
        layerNormEps: positive(get('layer_norm_eps') ?? 1e-12, 'layer_norm_eps', f),
        activation: activationOf(get('hidden_act') ?? 'gelu', 'hidden_act', f),
        hiddenDropout: hd,
        classifierDropout: cd === null || cd === undefined ? hd : probability(cd, 'classifier_dropout', f),
        padTokenId: nonNegInt(get('pad_token_id') ?? (type === 'roberta' ? 1 : 0), 'pad_token_id', f),
      });
    }
    case 'distilbert': {
      const dim = positiveInt(get('dim'), 'dim', f);
      return bertConfig({
        modelType: 'distilbert',
        vocabSize: positiveInt(get('vocab_size'), 'vocab_size', f),
        hiddenSize: dim,
        intermediateSize: positiveInt(get('hidden_dim'), 'hidden_dim', f),
        numLayers: positiveInt(get('n_layers'), 'n_layers', f),
        numHeads: positiveInt(get('n_heads'), 'n_heads', f),
        maxPositions: positiveInt(get('max_position_embeddings') ?? 512, 'max_position_embeddings', f),
        typeVocabSize: 0,
        layerNormEps: 1e-12,
        activation: activationOf(get('activation') ?? 'gelu', 'activation', f),
        hiddenDropout: probability(get('dropout') ?? 0.1, 'dropout', f),
        classifierDropout: probability(get('seq_classif_dropout') ?? 0.2, 'seq_classif_dropout', f),
        padTokenId: nonNegInt(get('pad_token_id') ?? 0, 'pad_token_id', f),
      });
    }
    case 'gpt2': {
      if (get('scale_attn_by_inverse_layer_idx') === true) bad('scale_attn_by_inverse_layer_idx', 'false', true, f);
      if (get('reorder_and_upcast_attn') === true) bad('reorder_and_upcast_attn', 'false', true, f);
      if (get('scale_attn_weights') === false) bad('scale_attn_weights', 'true', false, f);
      const nInner = get('n_inner');
      return gpt2Config({
        vocabSize: positiveInt(get('vocab_size'), 'vocab_size', f),
        hiddenSize: positiveInt(get('n_embd'), 'n_embd', f),
        ...(nInner === null || nInner === undefined ? {} : { intermediateSize: positiveInt(nInner, 'n_inner', f) }),
        numLayers: positiveInt(get('n_layer'), 'n_layer', f),
        numHeads: positiveInt(get('n_head'), 'n_head', f),
        maxPositions: positiveInt(get('n_positions') ?? 1024, 'n_positions', f),
        layerNormEps: positive(get('layer_norm_epsilon') ?? 1e-5, 'layer_norm_epsilon', f),
        activation: activationOf(get('activation_function') ?? 'gelu_new', 'activation_function', f),
        residDropout: probability(get('resid_pdrop') ?? 0.1, 'resid_pdrop', f),
        embdDropout: probability(get('embd_pdrop') ?? 0.1, 'embd_pdrop', f),
        padTokenId: tokenId(get('pad_token_id'), 'pad_token_id', f),
        bosTokenId: tokenId(get('bos_token_id'), 'bos_token_id', f),
        eosTokenId: tokenId(get('eos_token_id'), 'eos_token_id', f),
      });
    }
    default:
      throw new ConfigError(`model_type: expected one of llama, mistral, qwen2, bert, roberta, distilbert, gpt2, got ${describe(type)}`, {
        argument: 'model_type',
        expected: 'a supported model_type',
        got: describe(type),
        ...(f === undefined ? {} : { file: f }),
      });
  }
}
