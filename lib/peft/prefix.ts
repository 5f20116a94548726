/**
 * Prefix tuning (Li & Liang 2021) as Hugging Face PEFT's PREFIX_TUNING does it: every attention
 * layer attends n learned key/value positions before the sequence's own. The learned values
 * are one table E [n, L·2·Hkv·D] (PEFT's layout: column ((l·2 + kv)·Hkv + h)·D + d holds layer
 * l's key (kv = 0) or value (kv = 1) of head h; Hkv the key/value heads, so grouped-query models
 * learn Hkv heads as PEFT does), or, with `prefixProjection`, the output of PEFT's
 * reparameterisation MLP `transform.2(tanh(transform.0(embedding)))` over an [n, Hkv·D] embedding.
 * The prefix keys are not rotated (they stand for cached keys); the sequence's positions start at
 * n (model.positionShift), its mask gets n ones in front, and causal queries see the whole prefix.
 * Decoders (LLaMA family, GPT-2) and encoders (BERT family) alike: any model whose attention goes
 * through SdpaCore. Only the prefix (and the modules to save) train.
 *
 * Encoder-decoder models (T5, PEFT's SEQ_2_SEQ_LM with num_transformer_submodules 2): PEFT hands
 * the prefix to transformers as the decoder's cache, so only the decoder's self-attention sees
 * it; the encoder and the cross-attention do not (PEFT empties the cross-attention cache). The
 * table is sized as PEFT sizes it, L = num_layers (the encoder's; the decoder must have as many)
 * and token_dim = d_model (so heads·d_kv must equal d_model), and read as PEFT's cache layout
 * reads it: the [n, 2L] key/value blocks are repeated to 4L and cut into L groups of (self key,
 * self value, cross key, cross value), so decoder layer l's self-attention key is block 4l mod 2L
 * and its value block 4l + 1 mod 2L. The decoder's queries then sit at positions n … n + T − 1
 * for the relative position bias and the causal mask, as after a cache of n positions.
 *
 * Mechanics: the encoder is registered under the first attention core (so that backward runs down
 * to it, and it moves with the model); the model's forward computes the prefix rows for the batch
 * (B·n rows, a gather of the table: the MLP sees each sequence's copy, so K-FAC gets per-sequence
 * statistics), each attention reads its key and value blocks (time_slice, blocks from
 * targets.blockOf) and joins them in front of its own (kv_cache_write), and its backward adds
 * their gradients into the blocks' gradient columns (read, add, write back: T5's layout gives two
 * decoder layers the same block when L is even, and their gradients sum); the model's backward
 * then ends with the MLP's backward and the table's scatter-add. All of it is native ops on the
 * encoder's device, so prefix tuning trains on a GPU as on the CPU.
 * Generation: a decoder's cache (createCache) starts with the n prefix positions filled; T5's
 * decoding state (startDecoding) likewise.
 */
import { ConfigError, describe, invalidArgument } from '../errors.js';
import { type Batch, Container, type ForwardOutput, type KVCache, SdpaCore, SmallActivation } from '../models/common.js';
import { type AttentionPrefix, fillPrefixCache } from '../models/prefix-kv.js';
import { T5Model } from '../models/t5.js';
import { embeddingBackward, embeddingForward, kvCacheWrite, linearForward, timeSlice } from '../nn/functional.js';
import { axpy, copy, fill } from '../ops/index.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { type Device, Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkInteger, checkOptions } from '../util/validate.js';
import { bitfitState } from './bitfit.js';
import { bottleneckState } from './bottleneck.js';
import { ia3State } from './ia3.js';
import { installMethod, loraState, type ParameterCounts } from './lora.js';
import { PromptEmbedding, promptState } from './prompt.js';

export interface PrefixTuningConfig {
  /** Virtual positions n (default 8). */
  numVirtualTokens?: number;
  /** PEFT's reparameterisation MLP (default false: the table is learned directly). */
  prefixProjection?: boolean;
  /** Width of the MLP's hidden layer (default Hkv·D, PEFT's token_dim). */
  encoderHiddenSize?: number;
  modulesToSave?: readonly string[] | null;
  /** Seed of the initialisation (default 0). */
  seed?: number;
  baseModelNameOrPath?: string | null;
}

/** PEFT's PrefixEncoder: `embedding` [n, width], and with the projection `transform.0` → tanh → `transform.2`. */
export class PrefixEncoder extends Container {
  readonly embedding: PromptEmbedding;
  readonly transform: { l0: Linear; act: SmallActivation; l2: Linear } | null;
  constructor(n: number, tokenDim: number, width: number, projection: boolean, hidden: number, seed: number) {
    super();
    this.embedding = this.put('embedding', new PromptEmbedding(Tensor.randn([n, projection ? tokenDim : width], { seed, std: 1 })));
    this.transform = projection
      ? { l0: this.put('transform.0', new Linear(tokenDim, hidden, { seed: seed + 1 })), act: this.put('transform.1', new SmallActivation('tanh')), l2: this.put('transform.2', new Linear(hidden, width, { seed: seed + 3 })) }
      : null;
  }
}

/** An attention that can take a prefix (SdpaCore; T5Attention for T5's decoder self-attention). */
export interface PrefixHost {
  readonly device: Device;
  readonly prefix: AttentionPrefix | null;
  attachPrefix(p: AttentionPrefix, modules?: Readonly<Record<string, Module>>): void;
  detachPrefix(): void;
}

/** Where a model's prefix goes: the attentions, and how PEFT's table maps onto them. */
export interface PrefixTargets {
  readonly hosts: PrefixHost[];
  readonly kvHeads: number;
  readonly headDim: number;
  /** PEFT's num_layers: the table has 2 · tableLayers key/value blocks. */
  readonly tableLayers: number;
  /** PEFT's num_transformer_submodules. */
  readonly submodules: 1 | 2;
  /** The table block (0 … 2·tableLayers − 1) of host l's keys (kv 0) or values (kv 1). */
  readonly blockOf: (l: number, kv: 0 | 1) => number;
}

/** The per-model prefix: the encoder, this forward's rows and their gradients (tensors on the encoder's device). */
export class PrefixState {
  /** This forward's prefix rows [B·n, width] (a buffer of the state, or the MLP's output workspace). */
  #rows: Tensor | null = null;
  /** Their gradients [B·n, width]: each layer writes its key and value columns. */
  #grad: Tensor | null = null;
  #gather: Tensor | null = null;
  /** One block's gradient columns [B·n, 1, Hkv, D] while a host adds into them. */
  #col: Tensor | null = null;
  #B = 0;
  #fresh = false;
  #rowGrads: Tensor | null = null;
  #onehot: Tensor | null = null;
  /** adapter_config.json as loaded (written back verbatim), or null for a fresh prefix. */
  rawConfig: Record<string, unknown> | null = null;

  /** @internal Built by applyPrefixTuning. */
  constructor(
    readonly n: number,
    /** @internal The attentions and the table's layout. */
    readonly targets: PrefixTargets,
    readonly encoder: PrefixEncoder,
    readonly modulesToSave: string[],
    readonly modulesToSaveNames: readonly string[],
    readonly encoderHiddenSize: number,
    readonly baseModelNameOrPath: string | null,
    public counts: ParameterCounts,
    public summary: string,
  ) {}

  /** @internal The attentions with the prefix, in layer order. */
  get layers(): readonly PrefixHost[] {
    return this.targets.hosts;
  }
  get kvHeads(): number {
    return this.targets.kvHeads;
  }
  get headDim(): number {
    return this.targets.headDim;
  }
  /** Hkv·D: one layer's key (or value) width, PEFT's token_dim. */
  get tokenDim(): number {
    return this.kvHeads * this.headDim;
  }
  /** L·2·Hkv·D: the width of a prefix row (L = PEFT's num_layers). */
  get width(): number {
    return this.targets.tableLayers * 2 * this.tokenDim;
  }

  /** Row ids 0 … n−1 repeated for each of B sequences (row r reads the table's row r mod n). */
  #ids(B: number): Int32Array {
    return Int32Array.from({ length: B * this.n }, (_, r) => r % this.n);
  }

  /** A buffer of exactly `shape` on `device`, reused while both repeat. */
  static #buffer(t: Tensor | null, shape: readonly number[], device: Tensor['device']): Tensor {
    if (t && !t.disposed && t.device === device && t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
    t?.dispose();
    return Tensor.empty(shape, { device });
  }

  /** The prefix rows [B·n, width] of a batch of B (the MLP runs over B copies of the embedding). */
  prepare(B: number): void {
    const { n, width } = this;
    const E = this.encoder.embedding.weight.tensor;
    const dev = E.device;
    this.#gather = PrefixState.#buffer(this.#gather, [B * n, E.shape[1]!], dev);
    embeddingForward(this.#ids(B), E, this.#gather); // B copies of the table, one gather
    const t = this.encoder.transform;
    this.#rows = t ? t.l2.forward(t.act.forward(t.l0.forward(this.#gather))) : this.#gather;
    this.#grad = PrefixState.#buffer(this.#grad, [B * n, width], dev);
    fill(this.#grad, 0);
    this.#B = B;
    this.#fresh = true;
  }

  /** The prefix's current values [n, width] (computed afresh on the host; the captured rows are left alone). */
  values(): Float32Array {
    const host = (x: Tensor): Float32Array => (x.device === 'cpu' ? x.toArray() : x.to('cpu').toArray());
    const E = this.encoder.embedding.weight.tensor;
    const t = this.encoder.transform;
    if (!t) return host(E);
    const cpu = (x: Tensor | undefined | null): Tensor | null => (x ? Tensor.from(host(x), x.shape) : null);
    using e = cpu(E)!, w0 = cpu(t.l0.weight.tensor)!, w2 = cpu(t.l2.weight.tensor)!;
    using b0 = cpu(t.l0.bias?.tensor), b2 = cpu(t.l2.bias?.tensor);
    using h = linearForward(e, w0, b0, Tensor.empty([this.n, t.l0.outFeatures]));
    using a = Tensor.from(h.toArray().map(Math.tanh), h.shape);
    using y = linearForward(a, w2, b2, Tensor.empty([this.n, this.width]));
    return y.toArray();
  }

  /** @internal The AttentionPrefix of host l: its key and value blocks of the rows (targets.blockOf), viewed as time steps of [B·n, 2L, Hkv, D]. */
  attention(l: number): AttentionPrefix {
    const { kvHeads, headDim } = this;
    const steps = (x: Tensor): Tensor => x.reshape([x.shape[0]!, 2 * this.targets.tableLayers, kvHeads, headDim]);
    const one = (x: Tensor): Tensor => x.reshape([this.#B * this.n, 1, kvHeads, headDim]);
    const kb = this.targets.blockOf(l, 0);
    const vb = this.targets.blockOf(l, 1);
    // grad[:, block] += d: another host may already have added into the same block
    const addInto = (grad: Tensor, d: Tensor, block: number): void => {
      const col = (this.#col = PrefixState.#buffer(this.#col, d.shape, d.device));
      timeSlice(grad, col, block);
      axpy(1, d, col);
      kvCacheWrite(col, grad, block);
    };
    return {
      length: this.n,
      kvInto: (B, k, v) => {
        if (B !== this.#B || !this.#rows) invalidArgument('prefix', `rows prepared for a batch of ${B} (call the model's forward)`, `rows for ${this.#B}`);
        using rows = steps(this.#rows), k1 = one(k), v1 = one(v);
        timeSlice(rows, k1, kb);
        timeSlice(rows, v1, vb);
      },
      backwardFrom: (dk, dv) => {
        if (!this.#grad) invalidArgument('prefix', 'a forward before the backward', 'none');
        using grad = steps(this.#grad), k1 = one(dk), v1 = one(dv);
        addInto(grad, k1, kb);
        addInto(grad, v1, vb);
      },
    };
  }

  /** After the model's backward: the gradients of the rows flow into the encoder's parameters. */
  finish(): void {
    if (!this.#fresh || !this.#grad) return;
    this.#fresh = false;
    const { n } = this;
    const B = this.#B;
    const t = this.encoder.transform;
    let dE: Tensor;
    if (!t) dE = this.#grad;
    else {
      t.l0.computeInputGrad = true;
      dE = t.l0.backward(t.act.backward(t.l2.backward(this.#grad) as Tensor)) as Tensor;
    }
    const slot = this.encoder.embedding.weight;
    const acc = slot.gradTarget();
    if (acc) embeddingBackward(this.#ids(B), dE, acc); // dE[v] += Σ_b rows[b, v], sequences in order
    this.#rowGrads = PrefixState.#buffer(this.#rowGrads, dE.shape, dE.device);
    copy(dE, this.#rowGrads);
    if (!this.#onehot || this.#onehot.disposed || this.#onehot.shape[0] !== B * n || this.#onehot.device !== dE.device) {
      this.#onehot?.dispose();
      const e = new Float32Array(B * n * n);
      for (let r = 0; r < B * n; r++) e[r * n + (r % n)] = 1;
      this.#onehot = Tensor.from(e, [B * n, n]).to(dE.device);
    }
  }

  /** Per-(sequence, position) gradients of the embedding's rows from the last backward [B·n, C]. */
  get rowGrads(): Tensor | null {
    return this.#rowGrads;
  }
  get onehots(): Tensor | null {
    return this.#onehot;
  }

  dispose(): void {
    this.#rowGrads?.dispose();
    this.#onehot?.dispose();
    this.#grad?.dispose();
    this.#gather?.dispose();
    this.#col?.dispose();
    this.#rowGrads = this.#onehot = this.#grad = this.#gather = this.#col = this.#rows = null;
    this.encoder.dispose();
  }
}

interface PrefixModel extends Module {
  readonly task: string;
  positionShift?: number;
  forward(batch: Batch): ForwardOutput;
  backward(d?: Tensor): void;
}

const states = new WeakMap<Module, PrefixState>();
export const prefixState = (model: Module): PrefixState | undefined => states.get(model);

/** @internal */
export function requirePrefix(model: Module): PrefixState {
  const s = states.get(model);
  if (!s) invalidArgument('model', 'a model with prefix tuning applied (applyPrefixTuning or loadPrefixTuning)', 'a model without');
  return s;
}

const CLASSIFIER_HEADS = ['classifier', 'score'];
const KNOWN = ['numVirtualTokens', 'prefixProjection', 'encoderHiddenSize', 'modulesToSave', 'seed', 'baseModelNameOrPath'];

/**
 * @internal Where a model's prefix goes: every SdpaCore (block l·2 + kv of the table), or T5's
 * decoder self-attentions in PEFT's encoder-decoder layout (see the file comment). A ConfigError
 * when the model has no such attention or a shape PEFT's format cannot hold.
 */
export function prefixTargets(model: Module): PrefixTargets {
  if (model instanceof T5Model) {
    const c = model.config;
    if (c.numDecoderLayers !== c.numLayers)
      throw new ConfigError(`prefix tuning on T5 needs as many decoder as encoder layers (PEFT sizes the prefix by num_layers = ${c.numLayers}); this model has ${c.numDecoderLayers} decoder layers`);
    if (c.numHeads * c.headDim !== c.hiddenSize)
      throw new ConfigError(`prefix tuning on T5 needs num_heads · d_kv = d_model (PEFT's token_dim is d_model); this model has ${c.numHeads} · ${c.headDim} ≠ ${c.hiddenSize}`);
    const L = c.numLayers;
    return { hosts: model.decoderBlocks.map((b) => b.self.SelfAttention), kvHeads: c.numHeads, headDim: c.headDim, tableLayers: L, submodules: 2, blockOf: (l, kv) => (4 * l + kv) % (2 * L) };
  }
  const cores = attentionCores(model);
  const { kvHeads, headDim } = cores[0]!.o;
  return { hosts: cores, kvHeads, headDim, tableLayers: cores.length, submodules: 1, blockOf: (l, kv) => l * 2 + kv };
}

/** @internal The attention cores of a model, in layer order; a ConfigError when it exposes none. */
export function attentionCores(model: Module): SdpaCore[] {
  const cores = model.namedModules().filter(([, m]) => m instanceof SdpaCore).map(([, m]) => m as SdpaCore);
  if (cores.length === 0)
    throw new ConfigError(`prefix tuning needs attention keys and values; this ${model.constructor.name} exposes no attention core (SdpaCore)`, { hint: 'use prompt tuning, LoRA or adapters for this model' });
  const { kvHeads, headDim } = cores[0]!.o;
  const odd = cores.find((c) => c.o.kvHeads !== kvHeads || c.o.headDim !== headDim);
  if (odd) throw new ConfigError('prefix tuning needs the same key/value heads and head size in every attention layer');
  return cores;
}

/** Adds n learned key/value positions to every attention layer; only they (and the modules to save) train. */
export function applyPrefixTuning(model: Module, config: PrefixTuningConfig = {}): PrefixState {
  if (!model || typeof (model as Module).namedModules !== 'function') invalidArgument('model', 'a Module', describe(model));
  const pm = model as PrefixModel;
  const t5 = model instanceof T5Model;
  if ((typeof pm.positionShift !== 'number' && !t5) || typeof pm.forward !== 'function') invalidArgument('model', 'a transformer model (LLaMA, GPT-2, BERT, T5 families)', model.constructor.name);
  const targets = prefixTargets(model);
  if (states.has(model) || loraState(model) || ia3State(model) || bitfitState(model) || bottleneckState(model) || promptState(model))
    invalidArgument('model', 'a model without a PEFT method', 'a model with one already applied');
  const o = checkOptions(config, 'config');
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) invalidArgument(`config.${k}`, `one of ${KNOWN.join(', ')}`, JSON.stringify(k));
  const n = o['numVirtualTokens'] === undefined ? 8 : checkInteger(o['numVirtualTokens'], 'numVirtualTokens', 1, 1 << 16);
  const proj = o['prefixProjection'] === undefined ? false : checkBoolean(o['prefixProjection'], 'prefixProjection');
  const seed = o['seed'] === undefined ? 0 : checkInteger(o['seed'], 'seed', 0, 2 ** 40);
  const cores = targets.hosts;
  if (cores.some((c) => c.prefix)) invalidArgument('model', 'attention without a prefix', 'a prefix already attached');
  const tokenDim = targets.kvHeads * targets.headDim;
  const hidden = o['encoderHiddenSize'] === undefined ? tokenDim : checkInteger(o['encoderHiddenSize'], 'encoderHiddenSize', 1, 1 << 20);
  const mts = o['modulesToSave'];
  if (mts !== undefined && mts !== null && (!Array.isArray(mts) || !mts.every((x) => typeof x === 'string' && x !== ''))) invalidArgument('modulesToSave', 'a list of module names', describe(mts));
  const names = [...((mts as string[] | null | undefined) ?? [])];
  if (pm.task === 'sequence-classification' || pm.task === 'regression') for (const h of CLASSIFIER_HEADS) if (!names.includes(h)) names.push(h);
  const heads: string[] = [];
  for (const [path, m] of model.namedModules())
    if (path !== '' && m.parameters().length > 0 && names.some((nm) => path.endsWith(nm)) && !heads.some((q) => path.startsWith(`${q}.`))) heads.push(path);
  const base = o['baseModelNameOrPath'];
  if (base !== undefined && base !== null && typeof base !== 'string') invalidArgument('baseModelNameOrPath', 'a string or null', describe(base));
  const { built: state, counts, summary } = installMethod(model, heads, () => {
    const enc = new PrefixEncoder(n, tokenDim, targets.tableLayers * 2 * tokenDim, proj, hidden, seed);
    if (cores[0]!.device !== 'cpu') enc.to(cores[0]!.device); // next to the attention it feeds
    const s = new PrefixState(n, targets, enc, heads, [...(config.modulesToSave ?? [])], hidden, (base as string | null | undefined) ?? null, { trainable: 0, total: 0, percent: 0 }, '');
    cores.forEach((c, l) => c.attachPrefix(s.attention(l), l === 0 ? { prompt_encoder: enc } : {}));
    return s;
  });
  state.counts = counts;
  state.summary = summary;
  if (!t5) pm.positionShift = n;
  const forward = Object.getPrototypeOf(model).forward as (b: Batch) => ForwardOutput;
  const backward = Object.getPrototypeOf(model).backward as (d?: Tensor) => void;
  const define = (k: string, value: unknown) => Object.defineProperty(model, k, { configurable: true, writable: true, value });
  define('forward', (b: Batch) => {
    const B = Array.isArray(b?.shape) ? b.shape[0] : undefined;
    if (typeof B === 'number' && Number.isInteger(B) && B >= 1) state.prepare(B);
    return forward.call(model, b);
  });
  define('backward', (d?: Tensor) => {
    backward.call(model, d);
    state.finish();
  });
  if (t5) {
    // T5 generation: the prefix rows for the batch, then the decoder's caches start with them.
    const start = T5Model.prototype.startDecoding;
    define('startDecoding', (ids: Int32Array, B: number, Ts: number, mask: ArrayLike<number> | null, maxT: number) => {
      if (Number.isInteger(B) && B >= 1) state.prepare(B);
      return start.call(model as T5Model, ids, B, Ts, mask, maxT);
    });
  } else {
    // Incremental decoding (lib/models/generate.ts): the cache gets n more positions and starts
    // filled with the prefix keys/values (PEFT's past_key_values), so the tokens sit at n, n + 1, ….
    const proto = Object.getPrototypeOf(model) as { createCache: (B: number, maxT: number) => KVCache };
    define('createCache', (B: number, maxT: number): KVCache => {
      state.prepare(B);
      const cache = proto.createCache.call(model, B, maxT + n);
      fillPrefixCache(cache, cores.map((c) => c.prefix));
      return cache;
    });
  }
  states.set(model, state);
  return state;
}

/** Takes the prefix off (the model's own forward and positions are restored; the base stays frozen). */
export function removePrefixTuning(model: Module): void {
  const s = requirePrefix(model);
  for (const c of s.layers) c.detachPrefix();
  s.dispose();
  for (const k of ['forward', 'backward', 'createCache', 'startDecoding']) delete (model as unknown as Record<string, unknown>)[k];
  if (!(model instanceof T5Model)) (model as PrefixModel).positionShift = 0;
  states.delete(model);
}
