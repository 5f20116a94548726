/**
 * The T5 family's configuration (T5 v1.0, T5 v1.1, Flan-T5, mT5) and its relative position
 * buckets.
 *
 * - v1.0: ReLU feed-forward (`feed_forward_proj: "relu"`), LM head tied to the shared
 *   embedding, decoder output scaled by d_model^-0.5 before the head.
 * - v1.1 / Flan-T5 / mT5: gated-GELU (tanh) feed-forward (`"gated-gelu"`), untied `lm_head`,
 *   no scaling (`tie_word_embeddings: false`; transformers v5 writes `scale_decoder_outputs`).
 */
import { ConfigError, describe } from '../errors.js';
import type { GateActivation } from '../nn/functional.js';

export interface T5Config {
  readonly family: 't5';
  readonly modelType: 't5' | 'mt5';
  readonly vocabSize: number;
  /** d_model. */
  readonly hiddenSize: number;
  /** d_kv: the width of one attention head (need not be d_model / heads). */
  readonly headDim: number;
  /** d_ff. */
  readonly intermediateSize: number;
  /** Encoder layers. */
  readonly numLayers: number;
  readonly numDecoderLayers: number;
  readonly numHeads: number;
  readonly numBuckets: number;
  readonly maxDistance: number;
  /** Longest sequence the tools offer (relative positions have no hard limit; n_positions, default 512). */
  readonly maxPositions: number;
  readonly dropout: number;
  readonly layerNormEps: number;
  /** Feed-forward: act(wi·x) or act(wi_0·x)·(wi_1·x) when gated. */
  readonly gated: boolean;
  readonly activation: GateActivation;
  /** The LM head is the shared embedding (no lm_head weight). */
  readonly tieWordEmbeddings: boolean;
  /** Multiply the decoder output by d_model^-0.5 before the head (T5 v1.0's tied head). */
  readonly scaleDecoderOutputs: boolean;
  readonly padTokenId: number;
  readonly eosTokenId: number | null;
  /** First decoder input (T5: the pad id). */
  readonly decoderStartTokenId: number;
}

export type T5ConfigInit = Partial<Omit<T5Config, 'family'>> & Pick<T5Config, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads'>;

function bad(field: string, expected: string, got: unknown, file?: string): never {
  throw new ConfigError(`${field}: expected ${expected}, got ${describe(got)}`, { argument: field, expected, got: describe(got), ...(file === undefined ? {} : { file }) });
}
function int(v: unknown, field: string, lo: number, file?: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > 2 ** 31 - 1) bad(field, lo === 0 ? 'a non-negative integer' : 'a positive integer', v, file);
  return v;
}
function prob(v: unknown, field: string, file?: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v >= 1) bad(field, 'a probability in [0, 1)', v, file);
  return v;
}

const ACTIVATIONS: Record<string, GateActivation> = { relu: 'relu', gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_fast: 'gelu_tanh', silu: 'silu', swish: 'silu' };

/** `feed_forward_proj` ("relu", "gated-gelu", "gated-silu" …) → gating and activation, as transformers reads it. */
export function parseFeedForwardProj(v: unknown, file?: string): { gated: boolean; activation: GateActivation } {
  const expected = `"{act}" or "gated-{act}" with act one of ${Object.keys(ACTIVATIONS).join(', ')}`;
  if (typeof v !== 'string') bad('feed_forward_proj', expected, v, file);
  const parts = v.split('-');
  if (parts.length > 2 || (parts.length === 2 && parts[0] !== 'gated')) bad('feed_forward_proj', expected, v, file);
  const gated = parts.length === 2;
  // transformers maps "gated-gelu" to gelu_new (tanh), the activation of T5 v1.1.
  const act = v === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1]!;
  const activation = ACTIVATIONS[act];
  if (activation === undefined) bad('feed_forward_proj', expected, v, file);
  return { gated, activation };
}

/** A T5 config with transformers' T5Config defaults for the fields not given. */
export function t5Config(init: T5ConfigInit): T5Config {
  const hiddenSize = int(init.hiddenSize, 'hiddenSize', 1);
  const numHeads = int(init.numHeads, 'numHeads', 1);
  const numLayers = int(init.numLayers, 'numLayers', 1);
  const gated = init.gated ?? false;
  const tie = init.tieWordEmbeddings ?? !gated;
  const activation = init.activation ?? (gated ? 'gelu_tanh' : 'relu');
  if (!Object.values(ACTIVATIONS).includes(activation)) bad('activation', "'relu', 'gelu', 'gelu_tanh' or 'silu'", activation);
  const padTokenId = init.padTokenId === undefined ? 0 : int(init.padTokenId, 'padTokenId', 0);
  const numBuckets = init.numBuckets === undefined ? 32 : int(init.numBuckets, 'numBuckets', 2);
  return {
    family: 't5',
    modelType: init.modelType ?? 't5',
    vocabSize: int(init.vocabSize, 'vocabSize', 1),
    hiddenSize,
    headDim: init.headDim === undefined ? Math.max(1, Math.floor(hiddenSize / numHeads)) : int(init.headDim, 'headDim', 1),
    intermediateSize: int(init.intermediateSize, 'intermediateSize', 1),
    numLayers,
    numDecoderLayers: init.numDecoderLayers === undefined ? numLayers : int(init.numDecoderLayers, 'numDecoderLayers', 1),
    numHeads,
    numBuckets,
    maxDistance: init.maxDistance === undefined ? 128 : int(init.maxDistance, 'maxDistance', 1),
    maxPositions: init.maxPositions === undefined ? 512 : int(init.maxPositions, 'maxPositions', 1),
    dropout: init.dropout === undefined ? 0.1 : prob(init.dropout, 'dropout'),
    layerNormEps: init.layerNormEps === undefined ? 1e-6 : (typeof init.layerNormEps === 'number' && init.layerNormEps > 0 ? init.layerNormEps : bad('layerNormEps', 'a positive number', init.layerNormEps)),
    gated,
    activation,
    tieWordEmbeddings: tie,
    scaleDecoderOutputs: init.scaleDecoderOutputs ?? tie,
    padTokenId,
    eosTokenId: init.eosTokenId === undefined ? 1 : init.eosTokenId,
    decoderStartTokenId: init.decoderStartTokenId === undefined ? padTokenId : int(init.decoderStartTokenId, 'decoderStartTokenId', 0),
  };
}

/** True for a config.json of the T5 family. */
export function isT5Json(json: unknown): boolean {
  const t = (json as { model_type?: unknown } | null)?.model_type;
  return t === 't5' || t === 'mt5';
}

/**
 * A Hugging Face T5 config.json object → T5Config. `hasLmHead`: whether the checkpoint holds an
 * `lm_head.weight` (transformers v5 writes `tie_word_embeddings: true` even for untied models,
 * with `scale_decoder_outputs: false`; the weight file then decides).
 */
export function t5ConfigFromHf(json: Record<string, unknown>, file?: string, hasLmHead?: boolean): T5Config {
  const get = (k: string, fallback: unknown): unknown => (json[k] === undefined || json[k] === null ? fallback : json[k]);
  const { gated, activation } = parseFeedForwardProj(get('feed_forward_proj', 'relu'), file);
  const tieFlag = get('tie_word_embeddings', true);
  if (typeof tieFlag !== 'boolean') bad('tie_word_embeddings', 'true or false', tieFlag, file);
  const scale = get('scale_decoder_outputs', tieFlag);
  if (typeof scale !== 'boolean') bad('scale_decoder_outputs', 'true or false', scale, file);
  const eos = get('eos_token_id', 1);
  const eosId = Array.isArray(eos) ? eos[0] : eos;
  const numLayers = int(get('num_layers', 6), 'num_layers', 1, file);
  const pad = int(get('pad_token_id', 0), 'pad_token_id', 0, file);
  return t5Config({
    modelType: json['model_type'] === 'mt5' ? 'mt5' : 't5',
    vocabSize: int(get('vocab_size', 32128), 'vocab_size', 1, file),
    hiddenSize: int(get('d_model', 512), 'd_model', 1, file),
    headDim: int(get('d_kv', 64), 'd_kv', 1, file),
    intermediateSize: int(get('d_ff', 2048), 'd_ff', 1, file),
    numLayers,
    numDecoderLayers: int(get('num_decoder_layers', numLayers), 'num_decoder_layers', 1, file),
    numHeads: int(get('num_heads', 8), 'num_heads', 1, file),
    numBuckets: int(get('relative_attention_num_buckets', 32), 'relative_attention_num_buckets', 2, file),
    maxDistance: int(get('relative_attention_max_distance', 128), 'relative_attention_max_distance', 1, file),
    maxPositions: int(get('n_positions', 512), 'n_positions', 1, file),
    dropout: prob(get('dropout_rate', 0.1), 'dropout_rate', file),
    layerNormEps: typeof get('layer_norm_epsilon', 1e-6) === 'number' && (get('layer_norm_epsilon', 1e-6) as number) > 0 ? (get('layer_norm_epsilon', 1e-6) as number) : bad('layer_norm_epsilon', 'a positive number', json['layer_norm_epsilon'], file),
    gated,
    activation,
    tieWordEmbeddings: hasLmHead === undefined ? tieFlag : !hasLmHead,
    scaleDecoderOutputs: scale,
    padTokenId: pad,
    eosTokenId: typeof eosId === 'number' && Number.isInteger(eosId) && eosId >= 0 ? eosId : null,
    decoderStartTokenId: int(get('decoder_start_token_id', pad), 'decoder_start_token_id', 0, file),
  });
}

/**
 * T5's relative position bucket of key position − query position, as transformers computes it
 * (float32 log, truncation toward zero): bidirectional for the encoder (half the buckets for
 * keys after the query), causal for the decoder (keys after the query share bucket 0).
 */
export function relativePositionBucket(relative: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  let nb = numBuckets;
  let bucket = 0;
  let n: number;
  if (bidirectional) {
    nb = Math.floor(nb / 2);
    if (relative > 0) bucket += nb;
    n = Math.abs(relative);
  } else n = Math.max(-relative, 0);
  const maxExact = Math.floor(nb / 2);
  if (n < maxExact) return bucket + n;
  const f = Math.fround;
  const ratio = f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f(ratio * (nb - maxExact)));
  return bucket + Math.min(large, nb - 1);
}
