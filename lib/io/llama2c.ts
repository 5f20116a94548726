/**
 * llama2.c checkpoints (v0 `.bin`) and tokenizers (`tokenizer.bin`).
 *
 * Checkpoint: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means a separate classifier follows), then float32 arrays in this
 * order, each stacked over layers: token embedding [vocab, dim], rms_att [L, dim],
 * wq [L, dim, dim], wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim],
 * w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], freq_cis
 * (seq_len · head_size floats, skipped: the model recomputes RoPE), wcls [vocab, dim] if unshared.
 * The file length must be exactly what the header implies.
 *
 * Weights come out under Hugging Face LLaMA names (w1 → gate_proj, w3 → up_proj, w2 → down_proj)
 * through the same TensorSource interface as safetensors, read lazily per tensor. They keep
 * llama2.c's layout: RoPE rotates interleaved pairs (2i, 2i+1), which the ModelConfig states as
 * `rope.style = 'interleaved'` (Hugging Face checkpoints permute q/k rows for 'half' instead).
 */
import { describe, FormatError, invalidArgument } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkInteger, checkOptions } from '../util/validate.js';
import { assertLittleEndianHost, BufferSource, type ByteSource, FileSource } from './bytes.js';
import type { ModelConfig } from './config.js';
import type { TensorInfo, TensorSource } from './safetensors.js';

export interface Llama2cHeader {
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  /** Always positive here; `sharedClassifier` says what the sign was. */
  readonly vocabSize: number;
  readonly seqLen: number;
  /** The classifier is the token embedding (vocab_size > 0 in the file). */
  readonly sharedClassifier: boolean;
}

const HEADER_BYTES = 28;
/** tokenizer.bin files are read whole; real ones are well under 10 MB. */
const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;
/** Limits that no real llama2.c model reaches; they keep the size arithmetic exact. */
const MAX_DIM = 1 << 20;

function parseHeader(source: ByteSource): Llama2cHeader {
  const file = source.name;
  if (source.length < HEADER_BYTES) throw new FormatError(file, `a llama2.c checkpoint starts with a 28-byte header, but the file has ${source.length} bytes`, { offset: 0 });
  const b = new Uint8Array(HEADER_BYTES);
  source.read(0, b);
  const dv = new DataView(b.buffer);
  const v = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = v as [number, number, number, number, number, number, number];
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  v.forEach((x, i) => {
    const value = i === 5 ? Math.abs(x) : x;
    if (value <= 0 || value > MAX_DIM) throw new FormatError(file, `header ${names[i]} = ${x} is out of range (1 … ${MAX_DIM})`, { offset: 4 * i });
  });
  if (dim % nHeads !== 0) throw new FormatError(file, `dim ${dim} is not a multiple of n_heads ${nHeads}`, { offset: 0 });
  if (nHeads % nKvHeads !== 0) throw new FormatError(file, `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`, { offset: 12 });
  if ((dim / nHeads) % 2 !== 0) throw new FormatError(file, `head size ${dim / nHeads} is odd; rotary embeddings need pairs`, { offset: 0 });
  return Object.freeze({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(vocab), seqLen, sharedClassifier: vocab > 0 });
}

interface Block {
  name: string;
  /** Shape of one layer's slice (or of the whole tensor when not per layer). */
  shape: number[];
  perLayer: boolean;
  hf: string | null;
}

function layout(h: Llama2cHeader): Block[] {
  const head = h.dim / h.nHeads;
  const kvDim = h.nKvHeads * head;
  const blocks: Block[] = [
    { name: 'token_embedding', shape: [h.vocabSize, h.dim], perLayer: false, hf: 'model.embed_tokens.weight' },
    { name: 'rms_att', shape: [h.dim], perLayer: true, hf: 'input_layernorm.weight' },
    { name: 'wq', shape: [h.nHeads * head, h.dim], perLayer: true, hf: 'self_attn.q_proj.weight' },
    { name: 'wk', shape: [kvDim, h.dim], perLayer: true, hf: 'self_attn.k_proj.weight' },
    { name: 'wv', shape: [kvDim, h.dim], perLayer: true, hf: 'self_attn.v_proj.weight' },
    { name: 'wo', shape: [h.dim, h.nHeads * head], perLayer: true, hf: 'self_attn.o_proj.weight' },
    { name: 'rms_ffn', shape: [h.dim], perLayer: true, hf: 'post_attention_layernorm.weight' },
    { name: 'w1', shape: [h.hiddenDim, h.dim], perLayer: true, hf: 'mlp.gate_proj.weight' },
    { name: 'w2', shape: [h.dim, h.hiddenDim], perLayer: true, hf: 'mlp.down_proj.weight' },
    { name: 'w3', shape: [h.hiddenDim, h.dim], perLayer: true, hf: 'mlp.up_proj.weight' },
    { name: 'rms_final', shape: [h.dim], perLayer: false, hf: 'model.norm.weight' },
    // freq_cis_real and freq_cis_imag, [seq_len, head/2] each
    { name: 'freq_cis', shape: [h.seqLen, head], perLayer: false, hf: null },
  ];
  if (!h.sharedClassifier) blocks.push({ name: 'wcls', shape: [h.vocabSize, h.dim], perLayer: false, hf: 'lm_head.weight' });
  return blocks;
}

/** The ModelConfig of a llama2.c model: LLaMA with RMSNorm eps 1e-5, interleaved RoPE, theta 10000. */
export function llama2cModelConfig(h: Llama2cHeader): ModelConfig {
  return Object.freeze({
    family: 'llama',
    architectures: Object.freeze(['LlamaForCausalLM']),
    vocabSize: h.vocabSize,
    hiddenSize: h.dim,
    numLayers: h.nLayers,
    numHeads: h.nHeads,
    numKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    intermediateSize: h.hiddenDim,
    maxPositionEmbeddings: h.seqLen,
    hiddenAct: 'silu',
    norm: 'rmsnorm',
    normEps: 1e-5,
    positions: 'rope',
    positionOffset: 0,
    rope: Object.freeze({ theta: 10000, style: 'interleaved', type: 'default', parameters: Object.freeze({}) }),
    typeVocabSize: 0,
    tieWordEmbeddings: h.sharedClassifier,
    qkvBias: false,
    attentionOutputBias: false,
    mlpBias: false,
    slidingWindow: undefined,
    dtype: 'float32',
    padTokenId: undefined,
    bosTokenId: 1,
    eosTokenIds: Object.freeze([2]),
    labels: undefined,
  } satisfies ModelConfig);
}

/** A llama2.c checkpoint: header, ModelConfig, and its weights under Hugging Face LLaMA names. */
export class Llama2cCheckpoint implements TensorSource {
  readonly path: string;
  readonly header: Llama2cHeader;
  readonly config: ModelConfig;
  /** Trainable parameters (the embedding once when shared; freq_cis excluded). */
  readonly parameterCount: number;
  readonly #source: ByteSource;
  readonly #infos: Map<string, TensorInfo>;

  private constructor(source: ByteSource) {
    this.#source = source;
    this.path = source.name;
    const h = parseHeader(source);
    this.header = h;
    this.config = llama2cModelConfig(h);
    // the size the header implies, checked before anything is built from the header
    const blocks = layout(h);
    const numel = (b: Block): number => b.shape.reduce((x, y) => x * y, 1) * (b.perLayer ? h.nLayers : 1);
    const expected = blocks.reduce((n, b) => n + 4 * numel(b), HEADER_BYTES);
    if (expected !== source.length)
      throw new FormatError(
        source.name,
        `the header (dim ${h.dim}, hidden_dim ${h.hiddenDim}, n_layers ${h.nLayers}, n_heads ${h.nHeads}, n_kv_heads ${h.nKvHeads}, vocab_size ${h.sharedClassifier ? '' : '-'}${h.vocabSize}, seq_len ${h.seqLen}) implies ${expected} bytes, but the file has ${source.length}${expected > source.length ? ' (truncated)' : ' (trailing bytes, or not a v0 checkpoint)'}`,
        { offset: Math.min(expected, source.length) },
      );
    const infos = new Map<string, TensorInfo>();
    let at = HEADER_BYTES;
    let params = 0;
    for (const b of blocks) {
      const n = b.shape.reduce((x, y) => x * y, 1);
      const count = b.perLayer ? h.nLayers : 1;
      if (b.hf !== null) {
        params += n * count;
        for (let i = 0; i < count; i++) {
          const name = b.perLayer ? `model.layers.${i}.${b.hf}` : b.hf;
          const off = at + 4 * n * i;
          infos.set(name, Object.freeze({ name, dtype: 'F32', shape: Object.freeze([...b.shape]), dataOffsets: Object.freeze([off - HEADER_BYTES, off - HEADER_BYTES + 4 * n] as [number, number]), fileOffset: off, byteLength: 4 * n }));
        }
      }
      at += 4 * n * count;
    }
    this.#infos = infos;
    this.parameterCount = params;
  }

  static open(path: string): Llama2cCheckpoint {
    if (typeof path !== 'string') invalidArgument('path', 'a llama2.c .bin file', describe(path));
    return new Llama2cCheckpoint(new FileSource(path));
  }

  static fromBytes(bytes: Uint8Array, name = '<buffer>'): Llama2cCheckpoint {
    if (!(bytes instanceof Uint8Array)) invalidArgument('bytes', 'a Uint8Array', describe(bytes));
    return new Llama2cCheckpoint(new BufferSource(bytes, name));
  }

  get names(): readonly string[] {
    return [...this.#infos.keys()];
  }
  has(name: string): boolean {
    return this.#infos.has(name);
  }
  info(name: string): TensorInfo {
    const i = this.#infos.get(name);
    if (i === undefined) invalidArgument('name', `one of the ${this.#infos.size} weights of ${this.path}`, describe(name));
    return i;
  }
  readFloat32(name: string): Float32Array {
    const i = this.info(name);
    assertLittleEndianHost();
    const out = new Float32Array(i.byteLength / 4);
    this.#source.read(i.fileOffset, new Uint8Array(out.buffer));
    return out;
  }
  tensor(name: string): Tensor {
    return Tensor.from(this.readFloat32(name), this.info(name).shape);
  }
}

/** A llama2.c checkpoint (`.bin`, v0 format) opened lazily; see Llama2cCheckpoint. */
export function openLlama2c(path: string): Llama2cCheckpoint {
  return Llama2cCheckpoint.open(path);
}

export interface Llama2cEncodeOptions {
  /** Prepend BOS (id 1), default true. */
  bos?: boolean;
  /** Append EOS (id 2), default false. */
  eos?: boolean;
}

const latin1 = (b: Uint8Array): string => {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return s;
};

/**
 * llama2.c's tokenizer: a vocabulary of byte strings with merge scores. encode() is run.c's
 * algorithm: BOS, the " " prefix token, one token per UTF-8 character (bytes + 3 as fallback),
 * then repeated merges of the adjacent pair whose merged piece has the highest score.
 * A piece that appears twice maps to its first id.
 */
export class Llama2cTokenizer {
  readonly path: string;
  readonly maxTokenLength: number;
  readonly vocab: readonly Uint8Array[];
  readonly scores: Float32Array;
  readonly #lookup: Map<string, number>;
  readonly #keys: string[];

  private constructor(source: ByteSource, vocabSize: number | undefined) {
    const file = source.name;
    this.path = file;
    if (source.length < 4) throw new FormatError(file, 'a llama2.c tokenizer starts with a uint32 max_token_length', { offset: 0 });
    if (source.length > MAX_TOKENIZER_BYTES) throw new FormatError(file, `${source.length} bytes is too large for a tokenizer.bin (limit ${MAX_TOKENIZER_BYTES}); is this a model file?`);
    const all = new Uint8Array(source.length);
    source.read(0, all);
    const dv = new DataView(all.buffer);
    const maxLen = dv.getUint32(0, true);
    if (maxLen === 0 || maxLen > 1 << 16) throw new FormatError(file, `max_token_length ${maxLen} is out of range (1 … 65536)`, { offset: 0 });
    this.maxTokenLength = maxLen;
    const vocab: Uint8Array[] = [];
    const scores: number[] = [];
    let at = 4;
    while (at < all.length && (vocabSize === undefined || vocab.length < vocabSize)) {
      if (at + 8 > all.length) throw new FormatError(file, `token ${vocab.length}: truncated record`, { offset: at });
      const score = dv.getFloat32(at, true);
      const n = dv.getUint32(at + 4, true);
      if (Number.isNaN(score)) throw new FormatError(file, `token ${vocab.length}: the score is NaN`, { offset: at });
      if (n > maxLen) throw new FormatError(file, `token ${vocab.length}: length ${n} is over max_token_length ${maxLen}`, { offset: at + 4 });
      if (at + 8 + n > all.length) throw new FormatError(file, `token ${vocab.length}: truncated record`, { offset: at });
      vocab.push(all.slice(at + 8, at + 8 + n));
      scores.push(score);
      at += 8 + n;
    }
    if (vocabSize !== undefined && vocab.length < vocabSize) throw new FormatError(file, `expected ${vocabSize} tokens, found ${vocab.length}`, { offset: at });
    if (at !== all.length) throw new FormatError(file, `${all.length - at} bytes after the last of ${vocab.length} tokens`, { offset: at });
    if (vocab.length < 3 + 256) throw new FormatError(file, `expected at least 259 tokens (<unk>, <s>, </s> and 256 byte tokens), found ${vocab.length}`);
    this.vocab = Object.freeze(vocab);
    this.scores = Float32Array.from(scores);
    this.#keys = vocab.map(latin1);
    this.#lookup = new Map();
    this.#keys.forEach((k, i) => {
      if (!this.#lookup.has(k)) this.#lookup.set(k, i);
    });
    if (!this.#lookup.has(' ')) throw new FormatError(file, 'the vocabulary has no " " token (the prefix every encoding starts with)');
  }

  /** Reads tokenizer.bin; with `vocabSize` (the model's), exactly that many tokens must be there. */
  static open(path: string, vocabSize?: number): Llama2cTokenizer {
    if (typeof path !== 'string') invalidArgument('path', 'a tokenizer.bin file', describe(path));
    return new Llama2cTokenizer(new FileSource(path), vocabSize === undefined ? undefined : checkInteger(vocabSize, 'vocabSize', 259, 1 << 24));
  }

  static fromBytes(bytes: Uint8Array, vocabSize?: number, name = '<buffer>'): Llama2cTokenizer {
    if (!(bytes instanceof Uint8Array)) invalidArgument('bytes', 'a Uint8Array', describe(bytes));
    return new Llama2cTokenizer(new BufferSource(bytes, name), vocabSize === undefined ? undefined : checkInteger(vocabSize, 'vocabSize', 259, 1 << 24));
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  encode(text: string, options: Llama2cEncodeOptions = {}): number[] {
    if (typeof text !== 'string') invalidArgument('text', 'a string', describe(text));
    const o = checkOptions(options);
    const bos = o['bos'] === undefined ? true : checkBoolean(o['bos'], 'bos');
    const eos = o['eos'] === undefined ? false : checkBoolean(o['eos'], 'eos');
    const bytes = new TextEncoder().encode(text);
    const tokens: number[] = [];
    if (bos) tokens.push(1);
    if (bytes.length > 0) tokens.push(this.#lookup.get(' ')!);
    // one UTF-8 character at a time (a lead byte and up to 3 continuation bytes)
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if ((bytes[i]! & 0xc0) !== 0x80) start = i;
      const next = i + 1 < bytes.length ? bytes[i + 1]! : 0;
      if ((next & 0xc0) === 0x80 && i + 1 - start < 4) continue;
      const ch = bytes.subarray(start, i + 1);
      const id = this.#lookup.get(latin1(ch));
      if (id !== undefined) tokens.push(id);
      else for (const b of ch) tokens.push(b + 3);
      start = i + 1;
    }
    // greedy merges: the best-scoring adjacent pair first, the leftmost on ties
    for (;;) {
      let best = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i + 1 < tokens.length; i++) {
        const id = this.#lookup.get(this.#keys[tokens[i]!]! + this.#keys[tokens[i + 1]!]!);
        if (id !== undefined && this.scores[id]! > best) {
          best = this.scores[id]!;
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    if (eos) tokens.push(2);
    return tokens;
  }

  /** The bytes a token prints as after `prev` (run.c's decode: no leading space after BOS; <0xXX> is a raw byte). */
  piece(prev: number, token: number): Uint8Array {
    checkInteger(token, 'token', 0, this.vocab.length - 1);
    let p = this.vocab[token]!;
    if (prev === 1 && p[0] === 0x20) p = p.subarray(1);
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(latin1(p));
    if (m) return Uint8Array.of(parseInt(m[1]!, 16));
    return p;
  }

  /** Text of token ids; <unk>, <s> and </s> (ids 0–2) are not text and are left out. */
  decode(ids: readonly number[]): string {
    if (!Array.isArray(ids)) invalidArgument('ids', 'an array of token ids', describe(ids));
    const parts: Uint8Array[] = [];
    let prev = -1;
    for (const [i, t] of ids.entries()) {
      checkInteger(t, `ids[${i}]`, 0, this.vocab.length - 1);
      if (t > 2) parts.push(this.piece(prev, t));
      prev = t;
    }
    const total = parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return new TextDecoder().decode(out);
  }
}
