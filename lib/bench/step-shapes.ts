/**
 * What `kfac-peft bench step` runs on: the named shapes (Hugging Face config.json dicts, random
 * weights, nothing downloaded), the PEFT methods it can apply, the fixed batch of each task, and
 * the PEFT config a peer (bench/peer_step.py) rebuilds the same method from.
 */
import type { Batch } from '../models/common.js';
import type { TransformerModel } from '../models/index.js';
import type { Seq2SeqBatch } from '../models/t5.js';
import { ia3ConfigJson, ia3State, loraState, peftConfigJson, prefixConfigJson, promptConfigJson } from '../peft/index.js';

/** T5's config.json fields shared by t5-small and flan-t5-small (transformers' T5Config defaults). */
const T5_COMMON = { model_type: 't5', vocab_size: 32128, d_model: 512, d_kv: 64, relative_attention_num_buckets: 32, relative_attention_max_distance: 128, dropout_rate: 0.1, layer_norm_epsilon: 1e-6, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, n_positions: 512 };

/** Hugging Face config.json of each named shape (random weights). */
export const STEP_SHAPES: Record<string, Record<string, unknown>> = {
  'bert-small': { model_type: 'bert', vocab_size: 30522, hidden_size: 512, num_hidden_layers: 4, num_attention_heads: 8, intermediate_size: 2048, max_position_embeddings: 512, type_vocab_size: 2 },
  'bert-base': { model_type: 'bert', vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, max_position_embeddings: 512, type_vocab_size: 2 },
  'llama-125m': { model_type: 'llama', vocab_size: 32000, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 12, intermediate_size: 3072, max_position_embeddings: 2048, rms_norm_eps: 1e-5, tie_word_embeddings: false },
  stories260k: { model_type: 'llama', vocab_size: 512, hidden_size: 64, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 172, max_position_embeddings: 512, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // T5 v1.0 (ReLU feed-forward, LM head tied to the shared embedding)
  't5-small': { ...T5_COMMON, d_ff: 2048, num_layers: 6, num_decoder_layers: 6, num_heads: 8, feed_forward_proj: 'relu', tie_word_embeddings: true },
  // T5 v1.1 / Flan-T5 (gated-GELU feed-forward, untied LM head)
  'flan-t5-small': { ...T5_COMMON, d_ff: 1024, num_layers: 8, num_decoder_layers: 8, num_heads: 6, feed_forward_proj: 'gated-gelu', tie_word_embeddings: false },
};

/** The PEFT methods of `bench step`, as `train --peft` names them. */
export const STEP_METHODS = ['lora', 'adapter', 'prefix', 'prompt', 'ia3', 'bitfit'] as const;
export type StepMethod = (typeof STEP_METHODS)[number];

/** The task a config.json dict is benchmarked on: T5 seq2seq, LLaMA causal LM, BERT classification. */
export function shapeTask(hf: Record<string, unknown>): 'seq2seq-lm' | 'causal-lm' | 'sequence-classification' {
  const t = hf['model_type'];
  return t === 't5' || t === 'mt5' ? 'seq2seq-lm' : t === 'llama' ? 'causal-lm' : 'sequence-classification';
}

/** Deterministic ids in [0, vocab). */
export function seededIds(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % vocab));
}

export interface StepBatch {
  batch: Batch | Seq2SeqBatch;
  /** The inputs and labels as the peer receives them. */
  ids: Int32Array;
  labels: Int32Array;
}

/**
 * The fixed batch of a step: B × T source ids; labels are the ids (causal LM), B × Tt random
 * target ids (seq2seq: the decoder reads them shifted right behind the start token), or 0/1 classes.
 */
export function stepBatch(task: string, vocab: number, B: number, T: number, Tt: number): StepBatch {
  const ids = seededIds(B * T, vocab, 7);
  if (task === 'seq2seq-lm') {
    const labels = seededIds(B * Tt, vocab, 11);
    return { batch: { inputIds: ids, shape: [B, T], labels }, ids, labels };
  }
  const labels = task === 'causal-lm' ? ids : Int32Array.from({ length: B }, (_, i) => i % 2);
  return { batch: { inputIds: ids, shape: [B, T], labels }, ids, labels };
}

/** Why a method has no PyTorch + PEFT peer (PEFT has no equivalent). */
export const NO_PEER: Partial<Record<StepMethod, string>> = {
  adapter: 'PEFT has no bottleneck adapters (they are an AdapterHub method)',
  bitfit: 'PEFT has no BitFit',
};

/**
 * PEFT's adapter_config.json of the method applied to `model` (training mode), for the peer to
 * build the same method with peft.get_peft_config; or the reason PEFT has no equivalent.
 */
export function peerMethodConfig(model: TransformerModel, peft: StepMethod): { config: Record<string, unknown> } | { missing: string } {
  let c: Record<string, unknown>;
  if (peft === 'lora') {
    const s = loraState(model)!;
    c = peftConfigJson(s.config, model, s.modulesToSave);
  } else if (peft === 'ia3') c = ia3ConfigJson(ia3State(model)!, model);
  else if (peft === 'prompt') c = promptConfigJson(model);
  else if (peft === 'prefix') c = prefixConfigJson(model);
  else return { missing: NO_PEER[peft] ?? `no PEFT equivalent of ${peft}` };
  return { config: { ...c, inference_mode: false } };
}
