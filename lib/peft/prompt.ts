/**
 * Prompt tuning (Lester et al. 2021) as Hugging Face PEFT's PROMPT_TUNING does it: n learned
 * virtual-token embeddings P [n, C] are put in front of every sequence's word embeddings, and
 * only P trains (with the modules to save).
 *
 * What the model sees for a batch [B, T]: T' = n + T positions, the first n of each row being
 * the virtual tokens (their word embedding replaced by P's rows; position and token-type
 * embeddings are added as for any token: positions 0 … n−1, token type 0), the attention mask
 * extended with ones, causal-LM labels extended with −100 (ignored), so the loss is over the real
 * tokens only. Causal-LM logits are [B, n + T, V], as PEFT returns them. Classification heads
 * read the same positions as with PEFT (BERT's first position is then virtual token 0; LLaMA and
 * GPT-2 read the last real token — PEFT, passing embeddings, reads position T' − 1, which is the
 * same row unless the batch is right-padded).
 *
 * Encoder-decoder models (T5, PEFT's SEQ_2_SEQ_LM): the virtual tokens go in front of the
 * encoder's input only (its mask extended with ones; the position bias sees n + T positions);
 * the decoder, its labels and logits are unchanged. PEFT's table there has 2n rows (two
 * "transformer submodules") of which only the first n are read; the rest is kept and saved.
 *
 * Mechanics: the word Embedding gets a hook (EmbeddingHook) that overwrites the virtual rows
 * with P and, in backward, sums their gradients into ∂P (keeping the per-row gradients for K-FAC,
 * prompt-kfac.ts); the model's forward is wrapped to extend the batch (T5: and startDecoding, so
 * generation reads the virtual tokens too). Incremental generation of decoder-only models
 * (createCache, forwardCached) gets n more cache positions, and its first step the virtual tokens
 * in front of the prompt (positions 0 … n − 1, as PEFT's generate() puts them).
 */
import { ConfigError, describe, invalidArgument } from '../errors.js';
import { checkBatch, type Batch, type ForwardOutput, type KVCache } from '../models/common.js';
import { embeddingBackward, embeddingForward, kvCacheWrite } from '../nn/functional.js';
import { Embedding, type EmbeddingHook } from '../nn/layers.js';
import { copy } from '../ops/index.js';
import { Module, type ParamSlot } from '../nn/module.js';
import { Tensor } from '../tensor/tensor.js';
import { checkInteger, checkOptions } from '../util/validate.js';
import { bitfitState } from './bitfit.js';
import { bottleneckState } from './bottleneck.js';
import { ia3State } from './ia3.js';
import { installMethod, loraState, type ParameterCounts } from './lora.js';

export interface PromptTuningConfig {
  /** Virtual tokens n (default 8). */
  numVirtualTokens?: number;
  /**
   * 'random' (default: Normal(0, 1), torch.nn.Embedding's init as PEFT uses it), or the token ids
   * of an initialisation text (PEFT's TEXT init: the ids repeated or cut to n, then P = their
   * word embeddings). Tokenize the text with the model's tokenizer, as PEFT does.
   */
  init?: 'random' | { textTokenIds: Int32Array | readonly number[]; text?: string };
  modulesToSave?: readonly string[] | null;
  /** Seed of the random initialisation (default 0). */
  seed?: number;
  baseModelNameOrPath?: string | null;
  /** Recorded in adapter_config.json for a text initialisation. */
  tokenizerNameOrPath?: string | null;
  /**
   * Encoder-decoder models (T5) only: PEFT's num_transformer_submodules, 2 by default as PEFT
   * sets it for SEQ_2_SEQ_LM. The table then has 2n rows, of which only the first n are used
   * (PEFT puts them in front of the encoder's input; the decoder's input is left alone).
   */
  numTransformerSubmodules?: 1 | 2;
}

/** The virtual-token table: parameter `weight` [n, C]. */
export class PromptEmbedding extends Module {
  readonly weight: ParamSlot;
  constructor(init: Tensor) {
    super();
    this.weight = this.registerParameter('weight', init);
  }
}

/** What prompt tuning needs of a model: a task, the config's vocabulary and positions, and forward. */
export interface PromptModel extends Module {
  readonly task: string;
  readonly config: { vocabSize: number; maxPositions?: number | null; padTokenId?: number | null; modelType?: string };
  forward(batch: Batch): ForwardOutput;
}

/** The hook on the word embedding: rows 0 … n−1 of every sequence are P. */
export class PromptHook implements EmbeddingHook {
  readonly prompt: PromptEmbedding;
  #rows: Tensor | null = null;
  #onehot: Tensor | null = null;

  /** Rows of the table (n, or PEFT's 2n for an encoder-decoder model; only the first n are read). */
  readonly rows: number;
  /** False while incremental decoding runs steps after the first (their tokens are all real). */
  active = true;

  constructor(
    readonly n: number,
    readonly dim: number,
    init: Tensor,
  ) {
    this.prompt = new PromptEmbedding(init);
    this.rows = init.shape[0]!;
  }

  /** Row ids: v = 0 … n−1 repeated for each of B sequences (the prompt row of each virtual token). */
  #virtual(B: number): Int32Array {
    return Int32Array.from({ length: B * this.n }, (_, r) => r % this.n);
  }

  forward(out: Tensor): void {
    if (!this.active) return;
    const [B, T] = out.shape as [number, number, number];
    if (out.rank !== 3 || T < this.n) invalidArgument('prompt tuning', `an embedding output [B, T ≥ ${this.n}, C]`, `[${out.shape.join(', ')}]`);
    const { n, dim: C } = this;
    // rows 0 … n−1 of every sequence ← P: gather P per sequence, then write it at time 0 (native ops, on out's device)
    using rep = Tensor.empty([B, n, 1, C], { device: out.device });
    embeddingForward(this.#virtual(B), this.prompt.weight.tensor, rep);
    using view = out.reshape([B, T, 1, C]);
    kvCacheWrite(rep, view, 0);
  }

  backward(dOut: Tensor, tableTrainable: boolean): Tensor {
    const [B, T] = dOut.shape as [number, number, number];
    const { n, dim: C } = this;
    const dev = dOut.device;
    // the gradient rows of the virtual tokens, [B·n, C] (a gather of rows b·T + v)
    if (!this.#rows || this.#rows.disposed || this.#rows.shape[0] !== B * n || this.#rows.device !== dev) {
      this.#rows?.dispose();
      this.#rows = Tensor.empty([B * n, C], { device: dev });
    }
    const rows = this.#rows;
    using flat = dOut.reshape([B * T, C]);
    embeddingForward(Int32Array.from({ length: B * n }, (_, r) => Math.floor(r / n) * T + (r % n)), flat, rows);
    const dP = this.prompt.weight.gradTarget();
    if (dP) embeddingBackward(this.#virtual(B), rows, dP); // dP[v] += Σ_b rows[b, v], sequences in order
    if (!this.#onehot || this.#onehot.disposed || this.#onehot.shape[0] !== B * n || this.#onehot.device !== dev) {
      this.#onehot?.dispose();
      const R = this.rows;
      const e = new Float32Array(B * n * R);
      for (let r = 0; r < B * n; r++) e[r * R + (r % n)] = 1;
      this.#onehot = Tensor.from(e, [B * n, R]).to(dev);
    }
    if (!tableTrainable) return dOut;
    // virtual rows have no table row: a copy of dOut with rows 0 … n−1 of each sequence zeroed
    const d = Tensor.empty(dOut.shape, { device: dev });
    copy(dOut, d);
    using zeros = Tensor.zeros([B, n, 1, C], { device: dev });
    using dv = d.reshape([B, T, 1, C]);
    kvCacheWrite(zeros, dv, 0);
    return d;
  }

  /** Per-row gradients ∂L/∂P[v] of the last backward, one row per (sequence, virtual token): [B·n, C]. */
  get rowGrads(): Tensor | null {
    return this.#rows;
  }
  /** The one-hot rows e_v matching rowGrads: [B·n, rows]. */
  get onehots(): Tensor | null {
    return this.#onehot;
  }

  dispose(): void {
    this.#rows?.dispose();
    this.#onehot?.dispose();
    this.#rows = this.#onehot = null;
    this.prompt.dispose();
  }
}

export interface PromptTuningState {
  readonly numVirtualTokens: number;
  /** PEFT's num_transformer_submodules: 2 on encoder-decoder models by default, else 1. */
  readonly numTransformerSubmodules: 1 | 2;
  readonly hook: PromptHook;
  /** The word embedding the prompt is attached to, and its path. */
  readonly embedding: Embedding;
  readonly embeddingPath: string;
  init: 'RANDOM' | 'TEXT';
  initText: string | null;
  readonly tokenizerNameOrPath: string | null;
  readonly modulesToSave: string[];
  readonly modulesToSaveNames: readonly string[];
  readonly baseModelNameOrPath: string | null;
  readonly counts: ParameterCounts;
  readonly summary: string;
}

const states = new WeakMap<Module, PromptTuningState>();
export const promptState = (model: Module): PromptTuningState | undefined => states.get(model);

/** @internal */
export function requirePrompt(model: Module): PromptTuningState {
  const s = states.get(model);
  if (!s) invalidArgument('model', 'a model with prompt tuning applied (applyPromptTuning or loadPromptTuning)', 'a model without');
  return s;
}

/** Token-embedding module names of the supported families (LLaMA, GPT-2, BERT, T5). */
const WORD_EMBEDDINGS = /(?:^|\.)(?:embed_tokens|wte|word_embeddings|shared)$/;

/** The model's word embedding (the first Embedding whose path names one), or a ConfigError. */
export function wordEmbedding(model: Module): [string, Embedding] {
  const hit = model.namedModules().find(([p, m]) => m instanceof Embedding && WORD_EMBEDDINGS.test(p));
  if (!hit) throw new ConfigError(`prompt tuning needs the model's word embedding; this ${model.constructor.name} has no embed_tokens / wte / word_embeddings / shared Embedding`);
  return hit as [string, Embedding];
}

const CLASSIFIER_HEADS = ['classifier', 'score'];
const KNOWN = ['numVirtualTokens', 'init', 'modulesToSave', 'seed', 'baseModelNameOrPath', 'tokenizerNameOrPath', 'numTransformerSubmodules'];

/** The extended batch the wrapped forward passes on (see the file comment). */
export function extendBatch(model: PromptModel, n: number, batch: Batch): Batch {
  const c = model.config;
  const { B, T, ids, mask } = checkBatch(batch, c.vocabSize, c.maxPositions ?? null, n);
  const T2 = n + T;
  const fill = c.padTokenId === 0 ? 1 : 0; // any id but the pad id: its embedding is overwritten
  const ids2 = new Int32Array(B * T2).fill(fill);
  const mask2 = mask ? new Float32Array(B * T2).fill(1) : null;
  const tt = batch.tokenTypeIds ?? null;
  const tt2 = tt ? new Int32Array(B * T2) : null;
  const causal = model.task === 'causal-lm';
  const labels = batch.labels ?? null;
  const lab2 = causal && labels instanceof Int32Array && labels.length === B * T ? new Int32Array(B * T2).fill(-100) : null;
  for (let b = 0; b < B; b++) {
    ids2.set(ids.subarray(b * T, (b + 1) * T), b * T2 + n);
    if (mask2 && mask) mask2.set(mask.subarray(b * T, (b + 1) * T), b * T2 + n);
    if (tt2 && tt) tt2.set(tt.subarray(b * T, (b + 1) * T), b * T2 + n);
    if (lab2) lab2.set((labels as Int32Array).subarray(b * T, (b + 1) * T), b * T2 + n);
  }
  // Other fields (an encoder-decoder batch's decoder inputs, mask and labels) pass unchanged.
  return { ...batch, inputIds: ids2, shape: [B, T2], attentionMask: mask2, tokenTypeIds: tt2, labels: lab2 ?? labels };
}

function isPromptModel(m: Module): m is PromptModel {
  const c = (m as { config?: { vocabSize?: unknown } }).config;
  return typeof (m as { forward?: unknown }).forward === 'function' && typeof (m as { task?: unknown }).task === 'string' && !!c && typeof c.vocabSize === 'number';
}

/** Adds n virtual tokens in front of every sequence; only they (and the modules to save) train. */
export function applyPromptTuning(model: Module, config: PromptTuningConfig = {}): PromptTuningState {
  if (!model || typeof (model as Module).namedModules !== 'function') invalidArgument('model', 'a Module', describe(model));
  if (!isPromptModel(model)) invalidArgument('model', 'a transformer model (LLaMA, GPT-2, BERT, T5 families)', model.constructor.name);
  const seq2seq = model.task === 'seq2seq-lm';
  if (states.has(model) || loraState(model) || ia3State(model) || bitfitState(model) || bottleneckState(model))
    invalidArgument('model', 'a model without a PEFT method', 'a model with one already applied');
  const o = checkOptions(config, 'config');
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) invalidArgument(`config.${k}`, `one of ${KNOWN.join(', ')}`, JSON.stringify(k));
  const n = o['numVirtualTokens'] === undefined ? 8 : checkInteger(o['numVirtualTokens'], 'numVirtualTokens', 1, 1 << 16);
  const seed = o['seed'] === undefined ? 0 : checkInteger(o['seed'], 'seed', 0, 2 ** 40);
  const subsRaw = o['numTransformerSubmodules'];
  if (subsRaw !== undefined && !(subsRaw === 1 || (subsRaw === 2 && seq2seq)))
    invalidArgument('numTransformerSubmodules', seq2seq ? '1 or 2' : '1 (2 is for encoder-decoder models)', describe(subsRaw));
  const subs = (subsRaw as 1 | 2 | undefined) ?? (seq2seq ? 2 : 1);
  const rows = n * subs;
  const [embPath, emb] = wordEmbedding(model);
  const C = emb.dim;
  const maxPos = model.config.maxPositions ?? null;
  if (maxPos !== null && n >= maxPos) invalidArgument('numVirtualTokens', `fewer than the model's ${maxPos} positions`, `${n}`);
  const init = o['init'] ?? 'random';
  let table: Float32Array;
  let initText: string | null = null;
  if (init === 'random') table = Tensor.randn([rows, C], { seed, std: 1 }).toArray();
  else if (typeof init === 'object' && init !== null && 'textTokenIds' in init) {
    const ids = Array.from(init.textTokenIds as ArrayLike<number>);
    if (ids.length === 0 || !ids.every((v) => Number.isInteger(v) && v >= 0 && v < emb.numEmbeddings))
      invalidArgument('init.textTokenIds', `a non-empty list of token ids in [0, ${emb.numEmbeddings})`, describe(init.textTokenIds));
    // PEFT: repeat the ids ⌈rows / len⌉ times, keep the first rows; P = their word embeddings.
    const W = emb.weight.tensor.device === 'cpu' ? emb.weight.tensor.toArray() : emb.weight.tensor.to('cpu').toArray();
    table = new Float32Array(rows * C);
    for (let v = 0; v < rows; v++) table.set(W.subarray(ids[v % ids.length]! * C, (ids[v % ids.length]! + 1) * C), v * C);
    const text = (init as { text?: unknown }).text;
    initText = typeof text === 'string' ? text : null;
  } else return invalidArgument('init', "'random' or { textTokenIds }", describe(init));
  const mts = o['modulesToSave'];
  if (mts !== undefined && mts !== null && (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string' && x !== ''))) invalidArgument('modulesToSave', 'a list of module names', describe(mts));
  const names = [...((mts as string[] | null | undefined) ?? [])];
  if (model.task === 'sequence-classification' || model.task === 'regression') for (const h of CLASSIFIER_HEADS) if (!names.includes(h)) names.push(h);
  const heads: string[] = [];
  for (const [path, m] of model.namedModules())
    if (path !== '' && m.parameters().length > 0 && names.some((nm) => path.endsWith(nm)) && !heads.some((q) => path.startsWith(`${q}.`))) heads.push(path);
  const str = (k: string): string | null => {
    const v = o[k];
    if (v !== undefined && v !== null && typeof v !== 'string') invalidArgument(k, 'a string or null', describe(v));
    return (v as string | null | undefined) ?? null;
  };
  const base = str('baseModelNameOrPath');
  const tok = str('tokenizerNameOrPath');
  const { built: hook, counts, summary } = installMethod(model, heads, () => {
    const h = new PromptHook(n, C, Tensor.from(table, [rows, C]));
    if (emb.weight.tensor.device !== 'cpu') h.prompt.to(emb.weight.tensor.device);
    emb.attachHook(h, { prompt_encoder: h.prompt });
    return h;
  });
  const forward = Object.getPrototypeOf(model).forward as (b: Batch) => ForwardOutput;
  Object.defineProperty(model, 'forward', { configurable: true, writable: true, value: (b: Batch) => forward.call(model, extendBatch(model, n, b)) });
  const start = (Object.getPrototypeOf(model) as { startDecoding?: unknown }).startDecoding;
  if (seq2seq && typeof start === 'function') {
    // T5 generation: the source gets the virtual tokens before the encoder runs.
    const value = (ids: Int32Array, B: number, Ts: number, mask: ArrayLike<number> | null, maxT: number): unknown => {
      const e = extendBatch(model, n, { inputIds: ids, shape: [B, Ts], attentionMask: mask });
      return start.call(model, e.inputIds, B, n + Ts, e.attentionMask ?? null, maxT);
    };
    Object.defineProperty(model, 'startDecoding', { configurable: true, writable: true, value });
  } else {
    // Incremental decoding (lib/models/generate.ts): the cache holds n more positions; its first
    // step runs the virtual tokens in front of the prompt, the later steps only the new tokens.
    const proto = Object.getPrototypeOf(model) as { createCache: (B: number, maxT: number) => KVCache; forwardCached: (ids: Int32Array, B: number, T: number, cache: KVCache) => Tensor };
    const define = (k: string, value: unknown) => Object.defineProperty(model, k, { configurable: true, writable: true, value });
    define('createCache', (B: number, maxT: number) => proto.createCache.call(model, B, maxT + n));
    define('virtualTokens', n); // read by generate() (virtualTokens there) to budget the cache
    define('forwardCached', (ids: Int32Array, B: number, T: number, cache: KVCache): Tensor => {
      if (cache?.length === 0) {
        const e = extendBatch(model, n, { inputIds: ids, shape: [B, T] });
        return proto.forwardCached.call(model, e.inputIds, B, n + T, cache);
      }
      hook.active = false;
      try {
        return proto.forwardCached.call(model, ids, B, T, cache);
      } finally {
        hook.active = true;
      }
    });
  }
  const state: PromptTuningState = {
    numVirtualTokens: n,
    numTransformerSubmodules: subs,
    hook,
    embedding: emb,
    embeddingPath: embPath,
    init: initText !== null || init !== 'random' ? 'TEXT' : 'RANDOM',
    initText,
    tokenizerNameOrPath: tok,
    modulesToSave: heads,
    modulesToSaveNames: [...(config.modulesToSave ?? [])],
    baseModelNameOrPath: base,
    counts,
    summary,
  };
  states.set(model, state);
  return state;
}

/** Takes the virtual tokens off (the model's own forward is restored; the base stays frozen). */
export function removePromptTuning(model: Module): void {
  const s = requirePrompt(model);
  s.embedding.detachHook();
  s.hook.dispose();
  delete (model as { forward?: unknown }).forward;
  for (const k of ['startDecoding', 'forwardCached', 'createCache', 'virtualTokens']) delete (model as unknown as Record<string, unknown>)[k];
  states.delete(model);
}
