/**
 * T5's decoding state: the decoder's self-attention KV cache (its first n positions hold prefix
 * tuning's keys and values, see prefix-kv.ts fillPrefixCache) and the cross-attention keys/values
 * computed once from the encoder output (T5Model.startDecoding / decodeStep, t5-generate.ts).
 */
import { invalidArgument } from '../errors.js';
import * as F from '../nn/functional.js';
import { copy } from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './common.js';

/** A copy of a tensor's values on the host as float32 (a device tensor is downloaded first, bf16 widened). */
export function hostValues(t: Tensor): Float32Array {
  if (t.device === 'cpu' && t.dtype === 'float32') return t.toArray();
  using h = t.to('cpu', { dtype: 'float32' });
  return h.toArray();
}

/** The encoder output and cached keys/values of a decoding run (see T5Model.startDecoding). */
export class Seq2SeqState implements Disposable {
  readonly B: number;
  readonly Ts: number;
  /** Self-attention keys/values of the decoder, one layer each. */
  readonly self: KVCache;
  /** Cross-attention keys/values [B, Ts, H, D] of each decoder layer (computed once). */
  readonly cross: { k: Tensor; v: Tensor }[];
  readonly mask: Tensor | null;

  constructor(B: number, Ts: number, self: KVCache, cross: { k: Tensor; v: Tensor }[], mask: Tensor | null) {
    this.B = B;
    this.Ts = Ts;
    this.self = self;
    this.cross = cross;
    this.mask = mask;
  }

  /** Keeps batch rows `rows` (beam search): row i becomes the old row rows[i]. */
  reorder(rows: Int32Array): void {
    if (rows.length !== this.B) invalidArgument('rows', `${this.B} row indices`, `${rows.length}`);
    const gather = (t: Tensor): void => {
      const C = t.size / this.B;
      using v = t.reshape([this.B, C]);
      using src = Tensor.empty([this.B, C], { device: t.device });
      copy(v, src);
      F.embeddingForward(rows, src, v);
    };
    for (const l of this.self.layers) {
      gather(l.k);
      gather(l.v);
    }
    // Cross keys/values and the mask only differ between rows of different sources.
    for (const c of this.cross) {
      gather(c.k);
      gather(c.v);
    }
    if (this.mask) gather(this.mask);
  }

  dispose(): void {
    this.self.dispose();
    for (const c of this.cross) {
      c.k.dispose();
      c.v.dispose();
    }
    this.mask?.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
