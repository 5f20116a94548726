/**
 * Pieces shared by the model families: a container that builds Hugging Face module paths,
 * the attention core (RoPE, masks, KV cache), batches and their validation, and the KV cache;
 * the heads' row gathers, activations and regression loss are in heads.ts (re-exported here).
 */
import { describe, invalidArgument, NotFiniteError, ShapeError } from '../errors.js';
import * as F from '../nn/functional.js';
import { Module, saved, storageOf } from '../nn/module.js';
import { fill, scale } from '../ops/index.js';
import { DeviceValue } from '../tensor/device-value.js';
import { type Device, Tensor } from '../tensor/tensor.js';
import { type AttentionPrefix, joinTime, PrefixSlot, prefixBackwardFrom, prefixKvInto, splitTime } from './prefix-kv.js';

// Prefix keys and values live in prefix-kv.ts, the heads' pieces in heads.ts; these were imported from here.
export { type AttentionPrefix, prefixBackwardFrom, prefixKvInto } from './prefix-kv.js';
export { mseLoss, RowGather, SmallActivation } from './heads.js';

// ---------------------------------------------------------------- containers

/**
 * A module that only holds children. `put('attention.self.query', m)` creates the intermediate
 * containers, so parameter and module names follow the checkpoint's dotted paths.
 */
export class Container extends Module {
  readonly #sub = new Map<string, Container>();

  /** Registers `m` under a dotted path below this module and returns it. */
  put<M extends Module>(path: string, m: M): M {
    const dot = path.indexOf('.');
    if (dot < 0) return this.registerModule(path, m);
    const head = path.slice(0, dot);
    let c = this.#sub.get(head);
    if (!c) {
      c = this.registerModule(head, new Container());
      this.#sub.set(head, c);
    }
    return c.put(path.slice(dot + 1), m);
  }
}

// ---------------------------------------------------------------- batches

/** One batch of B sequences of T tokens, row-major. */
export interface Batch {
  /** Token ids [B·T]. */
  readonly inputIds: Int32Array;
  /** [B, T]. */
  readonly shape: readonly [number, number];
  /** [B·T], 1 for real tokens and 0 for padding; absent means all real. */
  readonly attentionMask?: ArrayLike<number> | null;
  /** [B·T] segment ids (BERT); absent means all 0. */
  readonly tokenTypeIds?: Int32Array | null;
  /**
   * causal-lm: Int32Array [B·T] of token ids or −100 (ignored); the loss predicts labels[t + 1]
   * from position t, as Hugging Face shifts them. sequence-classification: Int32Array [B] of
   * classes (or −100). regression: Float32Array [B·numLabels].
   */
  readonly labels?: Int32Array | Float32Array | null;
}

/** What forward returns. Tensors are workspaces valid until the model's next forward. */
export interface ForwardOutput {
  /** causal-lm: [B, T, V]; classification and regression: [B, numLabels]. */
  readonly logits: Tensor;
  /**
   * Mean loss over the labelled rows when labels were given, else null. With a cross-entropy
   * head it is read from `lossValue` at the first access (on a GPU: one wait for the device);
   * NotFiniteError when it is NaN or Inf (the weights blew up).
   */
  readonly loss: number | null;
  /**
   * The cross-entropy loss where it was computed, not yet downloaded (null without labels and
   * for regression): an optimizer that reads it with its own step (K-FAC's step record) spares
   * the step a wait.
   */
  readonly lossValue?: DeviceValue | null;
  /** ∂loss/∂logits when labels were given (pass it to backward), else null. */
  readonly dLogits: Tensor | null;
  /** Rows that entered the loss (non-ignored targets; B·numLabels values for regression). */
  readonly count: number;
}

/**
 * The softmax cross-entropy of a head, its loss left where the logits are (`lossValue`) and read
 * when `loss` is first asked for. dLogits receives ∂loss/∂logits.
 */
export function crossEntropyOutput(logits: Tensor, targets: Int32Array, dLogits: Tensor): ForwardOutput {
  const lossValue = new DeviceValue(logits.device);
  const r = F.crossEntropy(logits, targets, dLogits, { lossTo: lossValue.tensor });
  return {
    logits,
    dLogits,
    count: r.count,
    lossValue,
    get loss(): number {
      const v = lossValue.value();
      if (!Number.isFinite(v)) throw new NotFiniteError(`logits: expected finite values, got a row whose loss is ${v}`, { argument: 'logits', expected: 'finite values', got: String(v) });
      return v;
    },
  };
}

export interface CheckedBatch {
  readonly B: number;
  readonly T: number;
  readonly ids: Int32Array;
  /** The padding mask as given (0/1), or null when every token is real. */
  readonly mask: Float32Array | null;
}

/** Validates a batch's ids, shape and mask (labels are checked by the head). */
export function checkBatch(batch: Batch, vocabSize: number, maxPositions: number | null, offset = 0): CheckedBatch {
  if (batch === null || typeof batch !== 'object') invalidArgument('batch', 'an object with inputIds and shape', describe(batch));
  const ids = batch.inputIds;
  if (!(ids instanceof Int32Array)) invalidArgument('batch.inputIds', 'an Int32Array', describe(ids));
  const shape = batch.shape;
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 1))
    invalidArgument('batch.shape', '[B, T] with B, T ≥ 1', Array.isArray(shape) ? `[${shape.join(', ')}]` : describe(shape));
  const [B, T] = shape as [number, number];
  if (ids.length !== B * T)
    throw new ShapeError(`batch.inputIds: expected ${B * T} ids for shape [${B}, ${T}], got ${ids.length}`, { argument: 'batch.inputIds', expected: `${B * T} ids`, got: `${ids.length}` });
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (v < 0 || v >= vocabSize) invalidArgument('batch.inputIds', `token ids in [0, ${vocabSize})`, `${v} at index ${i}`);
  }
  if (maxPositions !== null && offset + T > maxPositions)
    invalidArgument('batch.shape', `at most ${maxPositions - offset} positions (the model's maximum is ${maxPositions})`, `T = ${T}`);
  let mask: Float32Array | null = null;
  const m = batch.attentionMask;
  if (m !== undefined && m !== null) {
    if (typeof m !== 'object' || typeof (m as ArrayLike<number>).length !== 'number') invalidArgument('batch.attentionMask', 'an array of 0/1 values', describe(m));
    if (m.length !== B * T)
      throw new ShapeError(`batch.attentionMask: expected ${B * T} values, got ${m.length}`, { argument: 'batch.attentionMask', expected: `${B * T} values`, got: `${m.length}` });
    let all = true;
    const f = new Float32Array(B * T);
    for (let i = 0; i < f.length; i++) {
      const v = m[i];
      if (v !== 0 && v !== 1) invalidArgument('batch.attentionMask', 'values 0 or 1', `${describe(v)} at index ${i}`);
      f[i] = v;
      if (v === 0) all = false;
    }
    mask = all ? null : f;
  }
  return { B, T, ids, mask };
}

// ---------------------------------------------------------------- KV cache

/** Keys and values of one layer: [B, maxT, Hkv, D] each, written position by position. */
export interface LayerCache {
  readonly k: Tensor;
  readonly v: Tensor;
}

/**
 * Keys and values of every layer for incremental decoding: buffers of maxT positions of which
 * [0, length) are filled. A step writes its keys/values at `length` and attends over the filled
 * part only (no buffer is reallocated while decoding).
 */
export class KVCache implements Disposable {
  readonly B: number;
  readonly maxT: number;
  readonly layers: LayerCache[];
  length = 0;

  /** `dtype`: the storage of the keys and values, that of the model's activations (bfloat16 for bf16 activations). */
  constructor(B: number, maxT: number, numLayers: number, kvHeads: number, headDim: number, device: Device = 'cpu', dtype: 'float32' | 'bfloat16' = 'float32') {
    this.B = B;
    this.maxT = maxT;
    const shape = [B, maxT, kvHeads, headDim];
    this.layers = Array.from({ length: numLayers }, () => ({ k: Tensor.zeros(shape, { device, dtype }), v: Tensor.zeros(shape, { device, dtype }) }));
  }

  /** Checks that T more positions fit. */
  reserve(T: number): void {
    if (this.length + T > this.maxT) invalidArgument('tokens', `at most ${this.maxT - this.length} more positions in this cache`, `${T}`);
  }

  dispose(): void {
    for (const l of this.layers) {
      l.k.dispose();
      l.v.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

// ---------------------------------------------------------------- attention core

export interface SdpaOptions {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly causal: boolean;
  readonly rope: { base: number; convention: F.RopeConvention } | null;
  /** Dropout on the attention probabilities in training mode (default 0). */
  readonly dropout?: number;
  /** Seed of those dropout masks (call n of a training forward uses seed + n). */
  readonly seed?: number;
}

export interface SdpaCall {
  readonly B: number;
  readonly T: number;
  /** [B, T] padding mask of the keys, or null. */
  readonly mask: Tensor | null;
  /** Position of the first token (RoPE; the cache length when decoding). */
  readonly offset: number;
  /** Write keys/values into this cache at `offset` and attend over its filled part (no backward then). */
  readonly cache: { layer: LayerCache; all: KVCache } | null;
}

/**
 * Scaled dot-product attention of projected q [B, T, H·D], k and v [B, T, Hkv·D]: RoPE on q and
 * k when configured, then softmax(q·kᵀ/√D)·v → [B, T, H·D]. Backward returns dq, dk, dv.
 * With a prefix attached, keys and values are [prefix; own] (n + T positions; query i sees the
 * whole prefix and, when causal, own keys ≤ i) and the mask gets n ones in front.
 */
export class SdpaCore extends Module {
  readonly o: SdpaOptions;
  readonly scale: number;
  readonly dropout: number;
  dropoutSeed: number;
  /** Training forwards so far (the next one's dropout mask uses dropoutSeed + dropoutCalls). */
  dropoutCalls = 0;
  #state: { q: Tensor; k: Tensor; v: Tensor; mask: Tensor | null; offset: number; B: number; T: number; drop: { dropout: number; seed: number } | null; n: number } | null = null;
  readonly #slot = new PrefixSlot();

  /** The attached prefix, or null. */
  get prefix(): AttentionPrefix | null {
    return this.#slot.prefix;
  }

  /** Attaches a prefix; its modules become children of this core. */
  attachPrefix(p: AttentionPrefix, modules: Readonly<Record<string, Module>> = {}): void {
    this.#slot.attach(p, modules, (n, m) => this.registerModule(n, m));
  }

  /** Detaches the prefix (its modules are unregistered, not disposed). */
  detachPrefix(): void {
    this.#slot.detach((n) => this.removeModule(n));
  }

  /** The prefix keys and values of a batch of B in workspaces on this core's device. */
  /** The prefix keys and values of a batch of B in workspaces on this core's device, in `dtype` (rounded once from the prefix's float32 for bf16 activations). */
  #prefixKv(p: AttentionPrefix, B: number, n: number, dtype: 'float32' | 'bfloat16'): { k: Tensor; v: Tensor } {
    const { kvHeads: Hkv, headDim: D } = this.o;
    const k = this.workspace('pk', [B, n, Hkv, D]), v = this.workspace('pv', [B, n, Hkv, D]);
    prefixKvInto(p, B, k, v);
    if (dtype === 'float32') return { k, v };
    return { k: scale(k, 1, this.workspace('pkb', k.shape, dtype)), v: scale(v, 1, this.workspace('pvb', v.shape, dtype)) };
  }

  constructor(o: SdpaOptions) {
    super();
    this.o = o;
    this.scale = 1 / Math.sqrt(o.headDim);
    this.dropout = o.dropout ?? 0;
    this.dropoutSeed = o.seed ?? 0;
  }

  forward(q3: Tensor, k3: Tensor, v3: Tensor, call: SdpaCall): Tensor {
    const { heads: H, kvHeads: Hkv, headDim: D } = this.o;
    const { B, T, offset } = call;
    let q = this.view('q', q3, [B, T, H, D]);
    let k = this.view('k', k3, [B, T, Hkv, D]);
    let v = this.view('v', v3, [B, T, Hkv, D]);
    if (this.o.rope) {
      q = F.ropeForward(q, this.workspace('qr', q.shape, storageOf(q)), { ...this.o.rope, offset });
      k = F.ropeForward(k, this.workspace('kr', k.shape, storageOf(k)), { ...this.o.rope, offset });
    }
    const o = this.workspace('o', [B, T, H, D], storageOf(q));
    const lse = this.workspace('lse', [B, H, T]);
    const cache = call.cache;
    if (cache) {
      // Keys/values of these positions go into the cache; attention reads its filled prefix.
      F.kvCacheWrite(k, cache.layer.k, offset);
      F.kvCacheWrite(v, cache.layer.v, offset);
      F.attentionForward(q, cache.layer.k, cache.layer.v, o, lse, { causal: this.o.causal, scale: this.scale, mask: null, kvLength: offset + T });
      this.#state = null;
    } else {
      const drop = this.training && this.dropout > 0 ? { dropout: this.dropout, seed: (this.dropoutSeed + this.dropoutCalls++) % Number.MAX_SAFE_INTEGER } : null;
      const p = this.#slot.prefix;
      const n = p ? p.length : 0;
      let mask = call.mask;
      if (p) {
        const st0 = storageOf(k);
        const kv = this.#prefixKv(p, B, n, st0);
        k = joinTime(kv.k, k, this.workspace('kp', [B, n + T, Hkv, D], st0));
        v = joinTime(kv.v, v, this.workspace('vp', [B, n + T, Hkv, D], st0));
        if (mask) {
          // n ones in front of each row's mask, on the mask's device
          const mp = this.workspace('maskp', [B, n + T]);
          fill(mp, 1);
          F.kvCacheWrite(this.view('maskv', mask, [B, T, 1, 1]), this.view('maskpv', mp, [B, n + T, 1, 1]), n);
          mask = mp;
        }
      }
      F.attentionForward(q, k, v, o, lse, { causal: this.o.causal, scale: this.scale, mask, ...drop });
      this.#state = { q, k, v, mask, offset, B, T, drop, n };
    }
    return this.view('o3', o, [B, T, H * D]);
  }

  /** dO [B, T, H·D] → dq [B, T, H·D], dk and dv [B, T, Hkv·D] (workspaces, overwritten). */
  backward(dO3: Tensor): { dq: Tensor; dk: Tensor; dv: Tensor } {
    const s = saved(this.#state, 'attention (a forward without a KV cache)');
    const { heads: H, kvHeads: Hkv, headDim: D } = this.o;
    const { B, T } = s;
    const dO = this.view('dO', dO3, [B, T, H, D]);
    const st = storageOf(s.q);
    const dq = this.workspace('dq', [B, T, H, D], st);
    const dk = this.workspace('dk', [B, T, Hkv, D], st);
    const dv = this.workspace('dv', [B, T, Hkv, D], st);
    const n = s.n;
    const out = this.workspace('o', [B, T, H, D], st);
    const dkf = n ? this.workspace('dkp', [B, n + T, Hkv, D], st) : dk;
    const dvf = n ? this.workspace('dvp', [B, n + T, Hkv, D], st) : dv;
    F.attentionBackward(s.q, s.k, s.v, this.workspace('lse', [B, H, T]), dO, dq, dkf, dvf, { causal: this.o.causal, scale: this.scale, mask: s.mask, out, ...s.drop });
    if (n) {
      const p = this.#slot.prefix;
      if (!p || p.length !== n) invalidArgument('attention backward', 'the prefix of its forward', 'a prefix detached or changed since');
      const dpk = this.workspace('dpk', [B, n, Hkv, D], st), dpv = this.workspace('dpv', [B, n, Hkv, D], st);
      splitTime(dkf, dpk, dk);
      splitTime(dvf, dpv, dv);
      // the prefix takes float32 gradients: bf16 ones are widened (exactly)
      if (st === 'float32') prefixBackwardFrom(p, dpk, dpv);
      else prefixBackwardFrom(p, scale(dpk, 1, this.workspace('dpk32', dpk.shape)), scale(dpv, 1, this.workspace('dpv32', dpv.shape)));
    }
    if (this.o.rope) {
      F.ropeBackward(dq, dq, { ...this.o.rope, offset: s.offset });
      F.ropeBackward(dk, dk, { ...this.o.rope, offset: s.offset });
    }
    return { dq: this.view('dq3', dq, [B, T, H * D]), dk: this.view('dk3', dk, [B, T, Hkv * D]), dv: this.view('dv3', dv, [B, T, Hkv * D]) };
  }
}
