/** A plain linear layer built on linalg.matmul, for testing the preconditioner without lib/nn. */
import { linalg, ops, Tensor } from '../../lib/index.js';
import type { KfacLayer } from '../../lib/kfac/layer.js';
import type { Param } from '../../lib/optim/types.js';

export class DenseLayer implements KfacLayer {
  readonly weight: Param;
  readonly bias: Param | null;
  inputKey?: string;
  #x: Tensor | undefined;
  #dy: Tensor | undefined;
  /** When set, outputGrad() returns this instead of the backpropagated gradient (e.g. a Fisher sample). */
  curvatureGrad: Tensor | undefined;

  constructor(
    readonly name: string,
    W: Float32Array,
    readonly dout: number,
    readonly din: number,
    b?: Float32Array,
  ) {
    this.weight = { name: `${name}.weight`, tensor: Tensor.from(W, [dout, din]), grad: null };
    this.bias = b ? { name: `${name}.bias`, tensor: Tensor.from(b, [dout]), grad: null } : null;
  }

  /** y = x Wᵀ + b; keeps x for the backward pass and for K-FAC. */
  forward(x: Tensor): Tensor {
    this.#x = x;
    const y = linalg.matmul(x, this.weight.tensor, { transB: true });
    if (this.bias) {
      const rows = x.shape[0]!;
      const b = this.bias.tensor.toArray();
      const ya = y.toArray();
      for (let r = 0; r < rows; r++) for (let i = 0; i < this.dout; i++) ya[r * this.dout + i]! += b[i]!;
      y.set(ya);
    }
    return y;
  }

  /** dW = dyᵀ x, db = Σ dy (overwriting the grads), returns dx = dy W. */
  backward(dy: Tensor): Tensor {
    this.#dy = dy;
    const x = this.#x as Tensor;
    this.weight.grad?.dispose();
    this.weight.grad = linalg.matmul(dy, x, { transA: true });
    if (this.bias) {
      const d = dy.toArray();
      const gb = new Float32Array(this.dout);
      for (let r = 0; r < dy.shape[0]!; r++) for (let i = 0; i < this.dout; i++) gb[i]! += d[r * this.dout + i]!;
      this.bias.grad?.dispose();
      this.bias.grad = Tensor.from(gb, [this.dout]);
    }
    return linalg.matmul(dy, this.weight.tensor);
  }

  input(): Tensor {
    return this.#x as Tensor;
  }

  outputGrad(): Tensor {
    return this.curvatureGrad ?? (this.#dy as Tensor);
  }

  setInput(x: Tensor): void {
    this.#x = x;
  }
  setOutputGrad(g: Tensor): void {
    this.#dy = g;
  }
  setGrads(gw: Float32Array, gb?: Float32Array): void {
    this.weight.grad = Tensor.from(gw, [this.dout, this.din]);
    if (this.bias && gb) this.bias.grad = Tensor.from(gb, [this.dout]);
  }
}

/** Trainer-task plumbing over one DenseLayer: its weight gradient accumulates across micro-batches in `gw`. */
export abstract class DenseGradTask {
  abstract readonly layer: DenseLayer;
  readonly gw: Tensor;
  constructor(dout: number, din: number) {
    this.gw = Tensor.zeros([dout, din]);
  }
  /**
   * ½‖W x_i − t_i‖² averaged over the batch: x_i is row i of `X` (din wide), t_i(j) = `target(i, j)`;
   * returns the loss and its gradient dy ([B, dout]) with respect to the layer's output.
   */
  protected squaredLoss(idx: readonly number[], X: Float32Array, target: (i: number, j: number) => number): { loss: number; dy: Tensor } {
    const { din, dout } = this.layer;
    const B = idx.length;
    const x = Tensor.from(Float32Array.from(idx.flatMap((i) => Array.from(X.subarray(i * din, i * din + din)))), [B, din]);
    const y = this.layer.forward(x).toArray();
    const dy = new Float32Array(B * dout);
    let loss = 0;
    idx.forEach((i, r) => {
      for (let j = 0; j < dout; j++) {
        const e = y[r * dout + j]! - target(i, j);
        loss += (0.5 * e * e) / B;
        dy[r * dout + j] = e / B;
      }
    });
    return { loss, dy: Tensor.from(dy, [B, dout]) };
  }
  /** Backpropagates `dy` ([B, dout]) through the layer and adds its weight gradient into `gw`. */
  protected accumulate(dy: Tensor): void {
    this.layer.weight.grad = null; // DenseLayer.backward disposes and overwrites its grad
    this.layer.backward(dy).dispose();
    const got = this.layer.weight.grad as unknown as Tensor;
    ops.add(this.gw, got, this.gw);
    got.dispose();
    this.layer.weight.grad = this.gw;
  }
  zeroGrad() {
    ops.fill(this.gw, 0);
  }
  grads() {
    return [this.gw];
  }
  evaluate() {
    return { loss: 0, metrics: {} };
  }
}

export function gradNorm(ts: (Tensor | null | undefined)[]): number {
  let s = 0;
  for (const t of ts) if (t) s += ops.sumSquares(t);
  return Math.sqrt(s);
}

/** Solves M x = b in float64 (Gaussian elimination with partial pivoting). */
export function solve(M: Float64Array, b: Float64Array, n: number): Float64Array {
  const a = Float64Array.from(M);
  const x = Float64Array.from(b);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]!) > Math.abs(a[p * n + c]!)) p = r;
    if (p !== c) {
      for (let k = 0; k < n; k++) [a[c * n + k], a[p * n + k]] = [a[p * n + k]!, a[c * n + k]!];
      [x[c], x[p]] = [x[p]!, x[c]!];
    }
    for (let r = c + 1; r < n; r++) {
      const f = a[r * n + c]! / a[c * n + c]!;
      for (let k = c; k < n; k++) a[r * n + k]! -= f * a[c * n + k]!;
      x[r]! -= f * x[c]!;
    }
  }
  for (let c = n - 1; c >= 0; c--) {
    let s = x[c]!;
    for (let k = c + 1; k < n; k++) s -= a[c * n + k]! * x[k]!;
    x[c] = s / a[c * n + c]!;
  }
  return x;
}
