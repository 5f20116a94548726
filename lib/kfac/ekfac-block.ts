/**
 * EKFAC (George et al., 2018): the Kronecker eigenbasis of the eigen method with its eigenvalues
 * replaced by running second moments of the gradients projected into that basis,
 * S = (w/D) Σ_r (Q_Gᵀ g_r)² (Q_Aᵀ ã_r)²ᵀ (the rows weighted as G's, docs/KFAC.md#ekfac), and
 * P = Q_G [(Q_Gᵀ [∇W | ∇b] Q_A) ⊘ (S/(1 − Πβ) + λ)] Q_Aᵀ.
 * S is captured per micro-batch in the basis of the last refresh; until it has data the block
 * uses the K-FAC eigenvalues d_G d_Aᵀ.
 */
import { matmul } from '../linalg/matmul.js';
import * as ops from '../ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import { EigenBlock } from './blocks.js';
import { stateLike } from './state.js';

function squared(t: Tensor): Tensor {
  const v = t.toArray();
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * v[i]!;
  t.set(v);
  return t;
}

export class EkfacBlock extends EigenBlock {
  override readonly method = 'ekfac' as const;
  /** Running second moments [dout, Da]. */
  readonly S: Tensor;
  #acc: Tensor;
  #pendingD = 0;
  #pending = 0;
  weight = 0;
  updates = 0;

  constructor(...args: ConstructorParameters<typeof EigenBlock>) {
    super(...args);
    this.S = stateLike(this.layer.weight.tensor, [this.dout, this.a.dim]);
    this.#acc = stateLike(this.layer.weight.tensor, [this.dout, this.a.dim]);
  }

  /** [X | 1] when the layer has a bias, as [R, Da]. */
  #withOnes(x: Tensor): Tensor {
    const din = this.din;
    const R = x.size / din;
    const v = x.toArray();
    if (!this.hasBias) return Tensor.from(v, [R, din]);
    const out = new Float32Array(R * (din + 1));
    for (let r = 0; r < R; r++) {
      out.set(v.subarray(r * din, (r + 1) * din), r * (din + 1));
      out[r * (din + 1) + din] = 1;
    }
    return Tensor.from(out, [R, din + 1]);
  }

  override get capturesRows(): boolean {
    return true;
  }

  override captureRows(a: Tensor, g: Tensor, w: number, d: number): void {
    const QA = this.a.decomp?.Q;
    const QG = this.g.decomp?.Q;
    if (!QA || !QG) return;
    const at = this.#withOnes(a);
    const gt = Tensor.from(g.toArray(), [g.size / this.dout, this.dout]);
    const ap = squared(matmul(at, QA));
    const gp = squared(matmul(gt, QG));
    const D = this.#pendingD + d;
    // running mean over micro-batches: acc ← (D_prev/D)·acc + (w/D)·gp²ᵀ ap²
    matmul(gp, ap, { transA: true, alpha: w / D, beta: this.#pendingD / D, out: this.#acc });
    for (const t of [at, gt, ap, gp]) t.dispose();
    this.#pendingD = D;
    this.#pending += 1;
  }

  override commitRows(beta: number): void {
    if (this.#pending === 0) return;
    ops.scale(this.S, beta, this.S);
    ops.axpy(1 - beta, this.#acc, this.S);
    this.weight = 1 - (1 - this.weight) * beta;
    this.updates += 1;
    this.#pendingD = 0;
    this.#pending = 0;
  }

  override discardRows(): void {
    this.#pendingD = 0;
    this.#pending = 0;
  }

  override precondition(damping: number): void {
    if (this.updates === 0) return super.precondition(damping);
    const QA = this.a.decomp!.Q;
    const QG = this.g.decomp!.Q;
    const Da = this.a.dim;
    const gw = (this.grad as Tensor).toArray();
    const gb = this.biasGrad?.toArray();
    const full = new Float32Array(this.dout * Da);
    for (let i = 0; i < this.dout; i++) {
      full.set(gw.subarray(i * this.din, (i + 1) * this.din), i * Da);
      if (Da > this.din) full[i * Da + this.din] = gb ? gb[i]! : 0;
    }
    const V = Tensor.from(full, [this.dout, Da]);
    const proj = matmul(matmul(QG, V, { transA: true }), QA);
    const p = proj.toArray();
    const s = this.S.toArray();
    const corr = this.weight > 0 ? 1 / this.weight : 1;
    for (let i = 0; i < p.length; i++) {
      const den = s[i]! * corr + damping;
      p[i] = den > 0 ? p[i]! / den : 0;
    }
    proj.set(p);
    const back = matmul(matmul(QG, proj), QA, { transB: true }).toArray();
    const P = new Float32Array(this.dout * this.din);
    const Pb = new Float32Array(this.dout);
    for (let i = 0; i < this.dout; i++) {
      P.set(back.subarray(i * Da, i * Da + this.din), i * this.din);
      if (Da > this.din) Pb[i] = back[i * Da + this.din]!;
    }
    this.P.set(P);
    if (this.Pb) this.Pb.set(Pb);
    V.dispose();
    proj.dispose();
  }

  override stateTensors(): Record<string, Tensor> {
    return { [`${this.layer.name}/ekfac_S`]: this.S.clone() };
  }

  override stateMeta(): Record<string, number> {
    return { weight: this.weight, updates: this.updates };
  }

  override loadState(tensors: Record<string, Tensor>, meta?: Record<string, number>): void {
    const s = tensors[`${this.layer.name}/ekfac_S`];
    if (s) ops.copy(s, this.S);
    if (meta) {
      this.weight = meta['weight'] ?? 0;
      this.updates = meta['updates'] ?? 0;
    }
    this.discardRows();
  }

  override dispose(): void {
    super.dispose();
    this.S.dispose();
    this.#acc.dispose();
  }
}
