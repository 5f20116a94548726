/** Rotary position embedding, multi-head / grouped-query self-attention and its KV cache. */
import { describe, invalidArgument, ShapeError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { checkBoolean, checkFinite, checkInteger } from '../util/validate.js';
import * as F from './functional.js';
import { Module, saved } from './module.js';
import { MAX_DIM } from './dims.js';
import { Linear } from './linear.js';

export interface RoPEOptions {
  base?: number;
  convention?: F.RopeConvention;
}

/** Rotary position embedding on [B, T, H, D]; forward(x, offset) with offset the KV-cache length. */
export class RoPE extends Module {
  readonly base: number;
  readonly convention: F.RopeConvention;
  #offset = -1;

  constructor(options: RoPEOptions = {}) {
    super();
    this.base = options.base === undefined ? 10000 : checkFinite(options.base, 'base');
    if (!(this.base > 1)) invalidArgument('base', 'a number above 1', describe(this.base));
    const c = options.convention ?? 'half';
    if (c !== 'half' && c !== 'interleaved') invalidArgument('convention', "'half' or 'interleaved'", describe(c));
    this.convention = c;
  }

  forward(x: Tensor, offset = 0): Tensor {
    const out = this.workspace('out', x.shape);
    F.ropeForward(x, out, { offset, base: this.base, convention: this.convention });
    this.#offset = offset;
    return out;
  }

  backward(dOut: Tensor): Tensor {
    if (this.#offset < 0) saved(null, 'RoPE');
    return F.ropeBackward(dOut, this.workspace('dx', dOut.shape), { offset: this.#offset, base: this.base, convention: this.convention });
  }
}

// ---------------------------------------------------------------- Attention

export interface AttentionModuleOptions {
  /** Query heads H. */
  heads: number;
  /** Key/value heads (default H; fewer for grouped-query attention; must divide H). */
  kvHeads?: number;
  /** Head dimension D (default dim / H). */
  headDim?: number;
  /** Biases on q/k/v and on the output projection (default true for both; Llama uses false). */
  bias?: boolean | { qkv: boolean; out: boolean };
  /** Causal (decoder) attention (default true). */
  causal?: boolean;
  /** Rotary embedding of q and k; null or absent for none (GPT-2, BERT use learned positions). */
  rope?: RoPEOptions | null;
  /** Score scale (default 1/sqrt(D)). */
  scale?: number;
  /** Dropout on the attention probabilities in training mode (GPT-2's attn_pdrop; default 0). */
  dropout?: number;
  /** Seed of the weight initialisation and of the dropout masks (call n uses seed + n). */
  seed?: number;
}

/** Keys and values of earlier steps for incremental decoding (see Attention.createCache). */
export interface KVCache {
  /** [B, capacity, Hkv, D] */
  readonly k: Tensor;
  /** [B, capacity, Hkv, D] */
  readonly v: Tensor;
  /** Time steps filled so far. */
  length: number;
}

/**
 * Multi-head / grouped-query self-attention: x [B, T, dim] → o_proj(attn(q, k, v)) [B, T, dim]
 * with q_proj [H·D ← dim], k_proj and v_proj [Hkv·D ← dim], o_proj [dim ← H·D].
 */
export class Attention extends Module {
  readonly dim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly causal: boolean;
  readonly scale: number;
  readonly rope: { base: number; convention: F.RopeConvention } | null;
  readonly dropout: number;
  /** Dropout seed; training forwards so far are counted in dropoutCalls. */
  dropoutSeed: number;
  dropoutCalls = 0;
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  #state: { q: Tensor; k: Tensor; v: Tensor; mask: Tensor | null; offset: number; B: number; T: number; drop: { dropout: number; seed: number } | null } | null = null;

  constructor(dim: number, options: AttentionModuleOptions) {
    super();
    this.dim = checkInteger(dim, 'dim', 1, MAX_DIM);
    this.heads = checkInteger(options.heads, 'heads', 1, MAX_DIM);
    this.kvHeads = options.kvHeads === undefined ? this.heads : checkInteger(options.kvHeads, 'kvHeads', 1, MAX_DIM);
    if (this.heads % this.kvHeads !== 0) invalidArgument('kvHeads', `a divisor of heads (${this.heads})`, describe(this.kvHeads));
    if (options.headDim === undefined && dim % this.heads !== 0) invalidArgument('heads', `a divisor of dim (${dim}) or an explicit headDim`, describe(this.heads));
    this.headDim = options.headDim === undefined ? dim / this.heads : checkInteger(options.headDim, 'headDim', 1, MAX_DIM);
    this.causal = options.causal === undefined ? true : checkBoolean(options.causal, 'causal');
    this.scale = options.scale === undefined ? 1 / Math.sqrt(this.headDim) : checkFinite(options.scale, 'scale');
    if (options.rope) {
      const r = new RoPE(options.rope);
      if (this.headDim % 2 !== 0) invalidArgument('headDim', 'an even head dimension for RoPE', describe(this.headDim));
      this.rope = { base: r.base, convention: r.convention };
    } else this.rope = null;
    this.dropout = options.dropout === undefined ? 0 : checkFinite(options.dropout, 'dropout');
    if (this.dropout < 0 || this.dropout >= 1) invalidArgument('dropout', 'a probability in [0, 1)', describe(this.dropout));
    this.dropoutSeed = options.seed ?? 0;
    const b = options.bias ?? true;
    const qkvBias = typeof b === 'boolean' ? b : b.qkv;
    const outBias = typeof b === 'boolean' ? b : b.out;
    const seed = options.seed ?? 0;
    const H = this.heads * this.headDim;
    const Hkv = this.kvHeads * this.headDim;
    this.q_proj = this.registerModule('q_proj', new Linear(dim, H, { bias: qkvBias, seed }));
    this.k_proj = this.registerModule('k_proj', new Linear(dim, Hkv, { bias: qkvBias, seed: seed + 2 }));
    this.v_proj = this.registerModule('v_proj', new Linear(dim, Hkv, { bias: qkvBias, seed: seed + 4 }));
    this.o_proj = this.registerModule('o_proj', new Linear(H, dim, { bias: outBias, seed: seed + 6 }));
  }

  /** A KV cache for `batch` sequences of up to `capacity` tokens (dispose it when done). */
  createCache(batch: number, capacity: number): KVCache {
    const shape = [checkInteger(batch, 'batch', 1, MAX_DIM), checkInteger(capacity, 'capacity', 1, MAX_DIM), this.kvHeads, this.headDim];
    return { k: Tensor.zeros(shape, { device: this.device }), v: Tensor.zeros(shape, { device: this.device }), length: 0 };
  }

  /**
   * x [B, T, dim]; mask [B, T] (1 real token, 0 padding; [B, capacity] with a cache); offset:
   * first position for RoPE. With `cache` (inference only): positions continue from
   * cache.length, the new keys/values are appended, attention runs over everything cached, and
   * cache.length grows by T; backward is not available after such a call.
   */
  forward(x: Tensor, options: { mask?: Tensor | null; offset?: number; cache?: KVCache } = {}): Tensor {
    if (!(x instanceof Tensor)) invalidArgument('x', 'a Tensor', describe(x));
    if (x.rank !== 3 || x.shape[2] !== this.dim)
      throw new ShapeError(`x: expected [B, T, ${this.dim}], got [${x.shape.join(', ')}]`, { argument: 'x', expected: `[B, T, ${this.dim}]`, got: `[${x.shape.join(', ')}]` });
    const [B, T] = x.shape as [number, number, number];
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const cache = options.cache;
    if (cache && (cache.k.shape[0] !== B || cache.length + T > cache.k.shape[1]!))
      invalidArgument('cache', `room for ${T} more steps of batch ${B}`, `a cache [${cache.k.shape.join(', ')}] holding ${cache.length}`);
    const offset = cache ? cache.length : (options.offset ?? 0);
    let q = this.view('q4', this.q_proj.forward(x), [B, T, H, D]);
    let k = this.view('k4', this.k_proj.forward(x), [B, T, Hkv, D]);
    const v = this.view('v4', this.v_proj.forward(x), [B, T, Hkv, D]);
    if (this.rope) {
      q = F.ropeForward(q, this.workspace('qr', q.shape), { ...this.rope, offset });
      k = F.ropeForward(k, this.workspace('kr', k.shape), { ...this.rope, offset });
    }
    const mask = options.mask ?? null;
    const o = this.workspace('o', [B, T, H, D]);
    const lse = this.workspace('lse', [B, H, T]);
    if (cache) {
      F.kvCacheWrite(k, cache.k, cache.length);
      F.kvCacheWrite(v, cache.v, cache.length);
      cache.length += T;
      F.attentionForward(q, cache.k, cache.v, o, lse, { causal: this.causal, scale: this.scale, mask, kvLength: cache.length });
      this.#state = null;
    } else {
      const drop = this.training && this.dropout > 0 ? { dropout: this.dropout, seed: (this.dropoutSeed + this.dropoutCalls++) % Number.MAX_SAFE_INTEGER } : null;
      F.attentionForward(q, k, v, o, lse, { causal: this.causal, scale: this.scale, mask, ...drop });
      this.#state = { q, k, v, mask, offset, B, T, drop };
    }
    return this.o_proj.forward(this.view('o3', o, [B, T, H * D]));
  }

  backward(dOut: Tensor): Tensor {
    const s = saved(this.#state, 'Attention');
    const { heads: H, kvHeads: Hkv, headDim: D } = this;
    const dO = this.view('dO4', this.o_proj.backward(dOut)!, [s.B, s.T, H, D]);
    const dq = this.workspace('dq', [s.B, s.T, H, D]);
    const dk = this.workspace('dk', [s.B, s.T, Hkv, D]);
    const dv = this.workspace('dv', [s.B, s.T, Hkv, D]);
    const out = this.workspace('o', [s.B, s.T, H, D]);
    F.attentionBackward(s.q, s.k, s.v, this.workspace('lse', [s.B, H, s.T]), dO, dq, dk, dv, { causal: this.causal, scale: this.scale, mask: s.mask, out, ...s.drop });
    if (this.rope) {
      F.ropeBackward(dq, dq, { ...this.rope, offset: s.offset });
      F.ropeBackward(dk, dk, { ...this.rope, offset: s.offset });
    }
    const dx = this.workspace('dx', [s.B, s.T, this.dim]);
    this.q_proj.backward(this.view('dq3', dq, [s.B, s.T, H * D]), { dx, accumulate: false });
    this.k_proj.backward(this.view('dk3', dk, [s.B, s.T, Hkv * D]), { dx, accumulate: true });
    this.v_proj.backward(this.view('dv3', dv, [s.B, s.T, Hkv * D]), { dx, accumulate: true });
    return dx;
  }
}
