/**
 * EKFAC: in the Kronecker eigenbasis of the last refresh, the step divides by the running second
 * moments of the projected per-row gradients, S_ij = (w/D) Σ_r (q_Giᵀ g_r)² (q_Ajᵀ ã_r)², instead of
 * d_Gi d_Aj — checked against a float64 evaluation of that formula; EKFAC with the inverse method
 * is a ConfigError; its state survives a checkpoint round trip.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, linalg, Tensor } from '../../lib/index.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { DenseLayer } from '../support/dense-layer.js';
import { randomF32 } from '../support/helpers.js';

const [dout, din, R, lambda] = [3, 4, 7, 1e-2];
const Da = din + 1;

function feed(l: DenseLayer, X: Float32Array, Gr: Float32Array, gw: Float32Array, gb: Float32Array) {
  l.setInput(Tensor.from(X, [R, din]));
  l.setOutputGrad(Tensor.from(Gr, [R, dout]));
  l.setGrads(gw, gb);
}

describe('EKFAC', () => {
  it('one step equals the float64 eigenvalue-corrected formula and differs from the K-FAC step', () => {
    const X = randomF32(R * din, 1);
    const Gr = randomF32(R * dout, 2);
    const gw = randomF32(dout * din, 3);
    const gb = randomF32(dout, 4);
    const run = (method: 'ekfac' | 'eigen') => {
      const l = new DenseLayer('fc', randomF32(dout * din, 5), dout, din, randomF32(dout, 6));
      const p = new KfacPreconditioner([l], { method, damping: lambda, factorDecay: 0, inverseEvery: 1, warmRefresh: false, lossReduction: 'sum', newtonClip: null });
      feed(l, X, Gr, gw, gb);
      p.step({ batchSize: R }); // builds the basis (EKFAC has no S yet: the K-FAC eigenvalues)
      feed(l, X, Gr, gw, gb);
      p.step({ batchSize: R });
      return { p, P: l.weight.grad!.toArray(), Pb: l.bias!.grad!.toArray() };
    };
    const e = run('ekfac');
    const k = run('eigen');
    // the reference: the eigenbasis of the same factors (eigenvectors are unique up to sign; the formula is sign-invariant)
    const f = e.p.factors('fc');
    const QA = linalg.eigh(Tensor.from(f.A, [Da, Da])).vectors.toArray();
    const QG = linalg.eigh(Tensor.from(f.G, [dout, dout])).vectors.toArray();
    const qA = (j: number, k: number) => QA[k * Da + j]!; // column j
    const qG = (i: number, k: number) => QG[k * dout + i]!;
    const at = (r: number, k: number) => (k < din ? X[r * din + k]! : 1);
    const grad = (i: number, k: number) => (k < din ? gw[i * din + k]! : gb[i]!);
    const P = new Float64Array(dout * Da);
    for (let i = 0; i < dout; i++)
      for (let j = 0; j < Da; j++) {
        let s = 0;
        for (let r = 0; r < R; r++) {
          let pg = 0;
          let pa = 0;
          for (let k = 0; k < dout; k++) pg += qG(i, k) * Gr[r * dout + k]!;
          for (let k = 0; k < Da; k++) pa += qA(j, k) * at(r, k);
          s += (pg * pg * pa * pa) / R;
        }
        let v = 0;
        for (let a = 0; a < dout; a++) for (let b = 0; b < Da; b++) v += qG(i, a) * grad(a, b) * qA(j, b);
        const c = v / (s + lambda);
        for (let a = 0; a < dout; a++) for (let b = 0; b < Da; b++) P[a * Da + b]! += c * qG(i, a) * qA(j, b);
      }
    let err = 0;
    let scale = 0;
    let diff = 0;
    for (let a = 0; a < dout; a++)
      for (let b = 0; b < Da; b++) {
        const got = b < din ? e.P[a * din + b]! : e.Pb[a]!;
        const kf = b < din ? k.P[a * din + b]! : k.Pb[a]!;
        err = Math.max(err, Math.abs(got - P[a * Da + b]!));
        diff = Math.max(diff, Math.abs(kf - P[a * Da + b]!));
        scale = Math.max(scale, Math.abs(P[a * Da + b]!));
      }
    expect(err / scale).toBeLessThan(2e-3);
    expect(diff / scale).toBeGreaterThan(5e-2);

    // checkpoint round trip: a fresh preconditioner loaded from the state takes the same next step
    const st = e.p.stateDict();
    expect(Object.keys(st.tensors)).toContain('fc/ekfac_S');
    const l2 = new DenseLayer('fc', randomF32(dout * din, 5), dout, din, randomF32(dout, 6));
    const p2 = new KfacPreconditioner([l2], { method: 'ekfac', damping: lambda, factorDecay: 0, inverseEvery: 1, warmRefresh: false, lossReduction: 'sum', newtonClip: null });
    p2.loadStateDict(st);
    const l1 = e.p.layers[0] as DenseLayer;
    const g3 = randomF32(dout * din, 9);
    feed(l1, X, Gr, g3, gb);
    feed(l2, X, Gr, g3, gb);
    e.p.step({ batchSize: R });
    p2.step({ batchSize: R });
    expect(l2.weight.grad!.toArray()).toEqual(l1.weight.grad!.toArray());
  });

  it('EKFAC is the default method; with the inverse method, or eigenvalueCorrection false with it, a ConfigError naming the option', () => {
    const l = new DenseLayer('fc', randomF32(6, 1), 2, 3);
    expect(() => new KfacPreconditioner([l], { method: 'inverse', eigenvalueCorrection: true })).toThrow(ConfigError);
    expect(() => new KfacPreconditioner([l], { method: 'inverse', eigenvalueCorrection: true })).toThrow(/eigenvalueCorrection/);
    expect(new KfacPreconditioner([l], { eigenvalueCorrection: true }).method).toBe('ekfac');
    expect(new KfacPreconditioner([l]).method).toBe('ekfac');
    expect(new KfacPreconditioner([l], { eigenvalueCorrection: false }).method).toBe('eigen');
    expect(new KfacPreconditioner([l], { method: 'inverse' }).method).toBe('inverse');
    expect(() => new KfacPreconditioner([l], { method: 'ekfac', eigenvalueCorrection: false })).toThrow(/eigenvalueCorrection/);
  });
});
