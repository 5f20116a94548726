/**
 * What the models' heads read the trunk through: row gathers (one token's rows per sequence, in
 * float32 whatever the activations' dtype), the small head activations (tanh, ReLU) and the
 * regression loss.
 */
import * as F from '../nn/functional.js';
import { Module, saved } from '../nn/module.js';
import { axpy, fill, scale } from '../ops/index.js';
import type { Tensor } from '../tensor/tensor.js';

// ---------------------------------------------------------------- row gathers

/**
 * Picks rows of x [N, C] (a gather by the embedding kernel), and scatters their gradient back
 * into a zeroed [N, C]. Used for pooling one token per sequence and for splitting fused q/k/v.
 * bf16 activations: x is widened to float32 first (one copy of x), so the rows picked are float32
 * — the heads they feed stay float32 (docs/CUDA.md) — and the gradient goes back to x's dtype,
 * the picked rows' gradients rounded once.
 */
export class RowGather extends Module {
  #ids = new Int32Array(0);
  #n = -1;
  #C = 0;
  #shape: readonly number[] = [];
  #bf16 = false;

  /**
   * x viewed as [N, C] rows; ids: rows to take → out [ids.length, C]. With `outShape`, C is its
   * last dimension (x [B, T, 3C] with outShape [B, T, C] splits fused q/k/v rows).
   */
  forward(x: Tensor, ids: Int32Array, outShape?: readonly number[]): Tensor {
    const C = outShape ? outShape[outShape.length - 1]! : x.shape[x.rank - 1]!;
    const N = x.size / C;
    const out = this.workspace('out', outShape ?? [ids.length, C]);
    this.#bf16 = x.dtype === 'bfloat16';
    // bf16 rows widened into a float32 workspace first (a widening copy, exact)
    const src = this.#bf16 ? scale(x, 1, this.workspace('x32', x.shape)) : x;
    F.embeddingForward(ids, this.view('x', src, [N, C]), this.view('out2', out, [ids.length, C]));
    if (this.#ids.length < ids.length) this.#ids = new Int32Array(ids.length);
    this.#ids.set(ids);
    this.#n = ids.length;
    this.#C = C;
    this.#shape = x.shape;
    return out;
  }

  /** d(out) → d(x) in x's shape and dtype: zero except the gathered rows; `into` (x's shape) is added to instead. */
  backward(dOut: Tensor, into?: Tensor): Tensor {
    if (this.#n < 0) saved(null, 'RowGather');
    const C = this.#C;
    const N = this.#shape.reduce((a, b) => a * b, 1) / C;
    const wideInto = into && !this.#bf16 ? into : undefined;
    const dx = wideInto ?? fill(this.workspace('dx', this.#shape), 0);
    F.embeddingBackward(this.#ids.subarray(0, this.#n), this.view('dout2', dOut, [this.#n, C]), this.view(wideInto ? 'into2' : 'dx2', dx, [N, C]));
    if (!this.#bf16) return dx;
    // back to the stream's bf16, the gathered rows' gradients rounded once
    if (into) return axpy(1, dx, into);
    return scale(dx, 1, this.workspace('dx16', this.#shape, 'bfloat16'));
  }
}

// ---------------------------------------------------------------- head activations

/** tanh or ReLU on a small tensor (a pooled [B, C]) by the native op, on the tensor's device. */
export class SmallActivation extends Module {
  readonly kind: 'tanh' | 'relu';
  /** The forward's output (its workspace), from which the backward reads the derivative. */
  #y: Tensor | null = null;

  constructor(kind: 'tanh' | 'relu') {
    super();
    this.kind = kind;
  }

  forward(x: Tensor): Tensor {
    const y = F.activationForward(x, this.workspace('out', x.shape), this.kind);
    this.#y = y;
    return y;
  }

  backward(dOut: Tensor): Tensor {
    const y = saved(this.#y, 'SmallActivation');
    return F.activationBackward(y, dOut, this.workspace('dx', y.shape), this.kind);
  }
}

// ---------------------------------------------------------------- losses of the heads

/** Mean squared error of predictions [N] against targets [N] (Hugging Face's regression loss), ∂/∂pred written. */
export function mseLoss(pred: Tensor, labels: Float32Array, dPred: Tensor): { loss: number; count: number } {
  const n = pred.size;
  // On a device: one download of the N predictions and one upload of their gradient.
  const host = pred.device === 'cpu' ? null : pred.to('cpu');
  const p = (host ?? pred).toArray();
  host?.dispose();
  const d = new Float32Array(n);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const e = p[i]! - y;
    s += e * e;
    d[i] = (2 * e) / n;
  }
  dPred.set(d);
  return { loss: s / n, count: n };
}
