/**
 * The layers of T5: attention without score scaling and with an additive relative position bias
 * (self-attention, causal in the decoder; cross-attention over the encoder's output), the
 * feed-forward (ReLU or gated), and the pre-norm blocks (T5's RMS layer norm: no mean, no bias)
 * with dropout on every sublayer output.
 *
 * Names follow T5ForConditionalGeneration: `encoder.block.0.layer.0.SelfAttention.q.weight`,
 * `decoder.block.0.layer.1.EncDecAttention.k.weight`, `….layer.1.DenseReluDense.wi.weight`
 * (`wi_0`, `wi_1` when gated), `….layer.0.layer_norm.weight`.
 */
import * as F from '../nn/functional.js';
import { Dropout, type Linear, RMSNorm } from '../nn/layers.js';
import { type Module, saved, storageOf } from '../nn/module.js';
import { invalidArgument } from '../errors.js';
import { add, axpy, copy, scale } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Init } from './base.js';
import { Container, type LayerCache } from './common.js';
import { type AttentionPrefix, joinTime, PrefixSlot, prefixBackwardFrom, prefixKvInto, splitTime } from './prefix-kv.js';
import type { T5Config } from './t5-config.js';

/** What one attention call needs besides its inputs. */
export interface T5AttnCall {
  readonly B: number;
  readonly Tq: number;
  /** Keys: the key input's length, or the filled cache length. */
  readonly Tk: number;
  /** [B, Tk] key padding mask or null. */
  readonly mask: Tensor | null;
  /** [H, Tq, Tk] relative position bias or null (cross-attention has none). */
  readonly bias: Tensor | null;
  /** [B, H, Tq, Tk] gradient of the bias (=) in backward, or null when it is frozen. */
  readonly dbias: Tensor | null;
  /** Self-attention cache (decoding): keys/values written at `offset`, attention over [0, Tk). */
  readonly cache: { layer: LayerCache; offset: number } | null;
  /** Precomputed cross-attention keys/values [B, Tk, H, D] (decoding): k and v are not applied. */
  readonly kv: { k: Tensor; v: Tensor } | null;
}

/** q, k, v, o without biases; softmax(q·kᵀ + bias + mask)·v with no 1/√D scaling. */
export class T5Attention extends Container {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly o: Linear;
  readonly causal: boolean;
  readonly heads: number;
  readonly headDim: number;
  readonly dropout: number;
  dropoutSeed: number;
  dropoutCalls = 0;
  #s: { q: Tensor; k: Tensor; v: Tensor; call: T5AttnCall; drop: { dropout: number; seed: number } | null; n: number } | null = null;
  readonly #slot = new PrefixSlot();

  /**
   * Learned keys/values attended before the own ones (prefix tuning on the decoder's
   * self-attention, lib/peft/prefix.ts). The caller passes Tk, mask and bias for n + T keys;
   * with a cache, the prefix is already in it (T5Model.startDecoding).
   */
  get prefix(): AttentionPrefix | null {
    return this.#slot.prefix;
  }

  attachPrefix(p: AttentionPrefix, modules: Readonly<Record<string, Module>> = {}): void {
    this.#slot.attach(p, modules, (n, m) => this.registerModule(n, m));
  }

  detachPrefix(): void {
    this.#slot.detach((n) => this.removeModule(n));
  }

  constructor(c: T5Config, init: Init, causal: boolean, seed: number) {
    super();
    const inner = c.numHeads * c.headDim;
    this.q = this.put('q', init.linear(c.hiddenSize, inner, false));
    this.k = this.put('k', init.linear(c.hiddenSize, inner, false));
    this.v = this.put('v', init.linear(c.hiddenSize, inner, false));
    this.o = this.put('o', init.linear(inner, c.hiddenSize, false));
    this.causal = causal;
    this.heads = c.numHeads;
    this.headDim = c.headDim;
    this.dropout = c.dropout;
    this.dropoutSeed = seed;
  }

  /** Keys and values [B, T, H, D] of a key input (cross-attention keys/values for decoding). */
  projectKv(xkv: Tensor, B: number, T: number, into: { k: Tensor; v: Tensor }): void {
    const HD = this.heads * this.headDim;
    copy(this.k.forward(xkv), this.view('kvk', into.k, [B, T, HD]));
    copy(this.v.forward(xkv), this.view('kvv', into.v, [B, T, HD]));
  }

  /** xq [B, Tq, C], xkv [B, Tk, C] (the same tensor for self-attention) → [B, Tq, C]. */
  forward(xq: Tensor, xkv: Tensor, call: T5AttnCall): Tensor {
    const { B, Tq, Tk } = call;
    const H = this.heads;
    const D = this.headDim;
    const q = this.view('q4', this.q.forward(xq), [B, Tq, H, D]);
    let k: Tensor;
    let v: Tensor;
    let kvLength: number | undefined;
    let n = 0;
    if (call.kv) {
      k = call.kv.k;
      v = call.kv.v;
    } else {
      const T = xkv.shape[1]!;
      k = this.view('k4', this.k.forward(xkv), [B, T, H, D]);
      v = this.view('v4', this.v.forward(xkv), [B, T, H, D]);
      if (call.cache) {
        F.kvCacheWrite(k, call.cache.layer.k, call.cache.offset);
        F.kvCacheWrite(v, call.cache.layer.v, call.cache.offset);
        k = call.cache.layer.k;
        v = call.cache.layer.v;
        kvLength = Tk;
      } else if (this.#slot.prefix) {
        n = this.#slot.prefix.length;
        const st = storageOf(k);
        let pk = this.workspace('pk', [B, n, H, D]), pv = this.workspace('pv', [B, n, H, D]);
        prefixKvInto(this.#slot.prefix, B, pk, pv);
        // bf16 activations: the float32 prefix keys/values rounded once before the join
        if (st !== 'float32') {
          pk = scale(pk, 1, this.workspace('pkb', pk.shape, st));
          pv = scale(pv, 1, this.workspace('pvb', pv.shape, st));
        }
        k = joinTime(pk, k, this.workspace('kp', [B, n + T, H, D], st));
        v = joinTime(pv, v, this.workspace('vp', [B, n + T, H, D], st));
      }
    }
    const o = this.workspace('o', [B, Tq, H, D], storageOf(q));
    const lse = this.workspace('lse', [B, H, Tq]);
    const decoding = call.cache !== null || call.kv !== null;
    const drop = !decoding && this.training && this.dropout > 0 ? { dropout: this.dropout, seed: (this.dropoutSeed + this.dropoutCalls++) % Number.MAX_SAFE_INTEGER } : null;
    F.attentionForward(q, k, v, o, lse, { causal: this.causal, scale: 1, mask: call.mask, bias: call.bias, ...(kvLength === undefined ? {} : { kvLength }), ...drop });
    this.#s = decoding ? null : { q, k, v, call, drop, n };
    return this.o.forward(this.view('o3', o, [B, Tq, H * D]));
  }

  /**
   * dOut [B, Tq, C] → the query input's gradient (a workspace, =). The key input's gradient is
   * added into `dkv`, into the query input's gradient ('self': self-attention), or dropped (null:
   * a frozen encoder). The bias gradient goes to call.dbias (=).
   */
  backward(dOut: Tensor, dkv: Tensor | 'self' | null): Tensor {
    const s = saved(this.#s, 'T5Attention (a forward without a cache)');
    const { B, Tq } = s.call;
    const H = this.heads;
    const D = this.headDim;
    const dO = this.view('dO', this.o.backward(dOut)!, [B, Tq, H, D]);
    const st = storageOf(s.q);
    const dq = this.workspace('dq', s.q.shape, st);
    const dk = this.workspace('dk', s.k.shape, st);
    const dv = this.workspace('dv', s.v.shape, st);
    // The forward's output (still in its workspace) spares the kernel a pass over the keys.
    const out = this.workspace('o', [B, Tq, H, D], st);
    F.attentionBackward(s.q, s.k, s.v, this.workspace('lse', [B, H, Tq]), dO, dq, dk, dv, { causal: this.causal, scale: 1, mask: s.call.mask, bias: s.call.bias, dbias: s.call.dbias, out, ...s.drop });
    const dxq = this.workspace('dxq', [B, Tq, this.q.inFeatures], st);
    this.q.backward(this.view('dq3', dq, [B, Tq, H * D]), { dx: dxq, accumulate: false });
    const T = s.k.shape[1]! - s.n;
    const into = dkv === 'self' ? dxq : dkv;
    let dk3 = this.view('dk3', dk, [B, T + s.n, H * D]);
    let dv3 = this.view('dv3', dv, [B, T + s.n, H * D]);
    if (s.n) {
      const p = this.#slot.prefix;
      if (!p || p.length !== s.n) invalidArgument('attention backward', 'the prefix of its forward', 'a prefix detached or changed since');
      // split [B, n + T, H, D] along time: the prefix part to the prefix, the own part on
      dk3 = this.workspace('dkown', [B, T, H * D], st);
      dv3 = this.workspace('dvown', [B, T, H * D], st);
      const dpk = this.workspace('dpk', [B, s.n, H, D], st), dpv = this.workspace('dpv', [B, s.n, H, D], st);
      splitTime(dk, dpk, this.view('dkown4', dk3, [B, T, H, D]));
      splitTime(dv, dpv, this.view('dvown4', dv3, [B, T, H, D]));
      // the prefix takes float32 gradients: bf16 ones are widened (exactly)
      if (st === 'float32') prefixBackwardFrom(p, dpk, dpv);
      else prefixBackwardFrom(p, scale(dpk, 1, this.workspace('dpk32', dpk.shape)), scale(dpv, 1, this.workspace('dpv32', dpv.shape)));
    }
    if (into) {
      this.k.backward(dk3, { dx: into, accumulate: true });
      this.v.backward(dv3, { dx: into, accumulate: true });
    } else {
      this.k.backward(dk3);
      this.v.backward(dv3);
    }
    return dxq;
  }
}

/** wo(dropout(act(wi·x))) or wo(dropout(act(wi_0·x)·(wi_1·x))). */
export class T5DenseActDense extends Container {
  readonly wi: Linear | null;
  readonly wi_0: Linear | null;
  readonly wi_1: Linear | null;
  readonly wo: Linear;
  readonly dropout: Dropout;
  readonly act: F.GateActivation;
  #h: { a: Tensor; b: Tensor | null } | null = null;

  constructor(c: T5Config, init: Init, seed: number) {
    super();
    const C = c.hiddenSize;
    this.act = c.activation;
    this.wi = c.gated ? null : this.put('wi', init.linear(C, c.intermediateSize, false));
    this.wi_0 = c.gated ? this.put('wi_0', init.linear(C, c.intermediateSize, false)) : null;
    this.wi_1 = c.gated ? this.put('wi_1', init.linear(C, c.intermediateSize, false)) : null;
    this.wo = this.put('wo', init.linear(c.intermediateSize, C, false));
    this.dropout = this.put('dropout', new Dropout(c.dropout, { seed }));
  }

  forward(x: Tensor): Tensor {
    let h: Tensor;
    if (this.wi) {
      const a = this.wi.forward(x);
      h = this.workspace('h', a.shape, storageOf(a));
      if (this.act === 'relu') F.reluForward(a, h);
      else if (this.act === 'silu') F.siluForward(a, h);
      else F.geluForward(a, h, this.act === 'gelu' ? 'erf' : 'tanh');
      this.#h = { a, b: null };
    } else {
      const a = this.wi_0!.forward(x);
      const b = this.wi_1!.forward(x);
      h = F.gatedForward(a, b, this.workspace('h', a.shape, storageOf(a)), this.act);
      this.#h = { a, b };
    }
    return this.wo.forward(this.dropout.forward(h));
  }

  backward(dOut: Tensor, _unused: Tensor | 'self' | null = null): Tensor {
    const { a, b } = saved(this.#h, 'T5DenseActDense');
    const dh = this.dropout.backward(this.wo.backward(dOut)!);
    const da = this.workspace('da', a.shape, storageOf(a));
    const dx = this.workspace('dx', [...a.shape.slice(0, -1), this.wo.outFeatures], storageOf(a));
    if (this.wi) {
      if (this.act === 'relu') F.reluBackward(a, dh, da);
      else if (this.act === 'silu') F.siluBackward(a, dh, da);
      else F.geluBackward(a, dh, da, this.act === 'gelu' ? 'erf' : 'tanh');
      this.wi.backward(da, { dx, accumulate: false });
    } else {
      const db = this.workspace('db', a.shape, storageOf(a));
      F.gatedBackward(a, b!, dh, da, db, this.act);
      this.wi_0!.backward(da, { dx, accumulate: false });
      this.wi_1!.backward(db, { dx, accumulate: true });
    }
    return dx;
  }
}

/** x + dropout(sublayer(layer_norm(x))): one `layer.i` of a block. */
class Residual<S extends { backward(d: Tensor, extra: Tensor | 'self' | null): Tensor }> extends Container {
  readonly layer_norm: RMSNorm;
  readonly dropout: Dropout;

  constructor(c: T5Config, seed: number) {
    super();
    this.layer_norm = this.put('layer_norm', new RMSNorm(c.hiddenSize, { eps: c.layerNormEps }));
    this.dropout = this.put('dropout', new Dropout(c.dropout, { seed }));
  }

  finish(x: Tensor, y: Tensor): Tensor {
    return add(x, this.dropout.forward(y), this.workspace('out', x.shape, storageOf(x)));
  }

  /** dOut → dx (= dOut + the sublayer's input gradient through the norm). */
  back(sub: S, dOut: Tensor, extra: Tensor | 'self' | null): Tensor {
    const dx = this.layer_norm.backward(sub.backward(this.dropout.backward(dOut), extra));
    axpy(1, dOut, dx);
    return dx;
  }
}

class SelfAttentionLayer extends Residual<T5Attention> {
  readonly SelfAttention: T5Attention;
  constructor(c: T5Config, init: Init, causal: boolean, seed: number) {
    super(c, seed);
    this.SelfAttention = this.put('SelfAttention', new T5Attention(c, init, causal, seed + 100));
  }
}

class CrossAttentionLayer extends Residual<T5Attention> {
  readonly EncDecAttention: T5Attention;
  constructor(c: T5Config, init: Init, seed: number) {
    super(c, seed);
    this.EncDecAttention = this.put('EncDecAttention', new T5Attention(c, init, false, seed + 100));
  }
}

class FeedForwardLayer extends Residual<T5DenseActDense> {
  readonly DenseReluDense: T5DenseActDense;
  constructor(c: T5Config, init: Init, seed: number) {
    super(c, seed);
    this.DenseReluDense = this.put('DenseReluDense', new T5DenseActDense(c, init, seed + 100));
  }
}

/** One encoder block (self-attention, FF) or decoder block (causal self-attention, cross-attention, FF). */
export class T5Block extends Container {
  readonly self: SelfAttentionLayer;
  readonly cross: CrossAttentionLayer | null;
  readonly ff: FeedForwardLayer;

  constructor(c: T5Config, init: Init, decoder: boolean, seed: number) {
    super();
    this.self = this.put('layer.0', new SelfAttentionLayer(c, init, decoder, seed));
    this.cross = decoder ? this.put('layer.1', new CrossAttentionLayer(c, init, seed + 1000)) : null;
    this.ff = this.put(decoder ? 'layer.2' : 'layer.1', new FeedForwardLayer(c, init, seed + 2000));
  }

  /** x [B, T, C] → [B, T, C]; `enc` [B, Ts, C] and `cross` for a decoder block. */
  forward(x: Tensor, self: T5AttnCall, enc: Tensor | null, cross: T5AttnCall | null): Tensor {
    const s = this.self;
    const n = s.layer_norm.forward(x);
    let h = s.finish(x, s.SelfAttention.forward(n, n, self));
    if (this.cross) {
      const c = this.cross;
      h = c.finish(h, c.EncDecAttention.forward(c.layer_norm.forward(h), enc!, cross!));
    }
    const f = this.ff;
    return f.finish(h, f.DenseReluDense.forward(f.layer_norm.forward(h)));
  }

  /** dOut → dx; a decoder block adds the encoder output's gradient into `dEnc`. */
  backward(dOut: Tensor, dEnc: Tensor | null): Tensor {
    let d = this.ff.back(this.ff.DenseReluDense, dOut, null);
    if (this.cross) d = this.cross.back(this.cross.EncDecAttention, d, dEnc);
    return this.self.back(this.self.SelfAttention, d, 'self');
  }
}
