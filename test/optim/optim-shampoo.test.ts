/**
 * Shampoo and SOAP against their formulas on the first step (float64 references built from the
 * same eigendecompositions), Adam on vectors, the trust-ratio clip bound, and a least-squares
 * problem both solve.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, linalg, optim, Tensor } from '../../lib/index.js';
import type { Param } from '../../lib/optim/types.js';
import { randomF32 } from '../support/helpers.js';

const [m, n] = [5, 3];

function eig(F: Float64Array, k: number) {
  const r = linalg.eigh(Tensor.from(Float32Array.from(F), [k, k]), { clampNonNegative: true });
  return { Q: Float64Array.from(r.vectors.toArray()), d: Float64Array.from(r.values.toArray()) };
}
function mm(a: ArrayLike<number>, b: ArrayLike<number>, r: number, k: number, c: number, tA = false, tB = false) {
  const o = new Float64Array(r * c);
  for (let i = 0; i < r; i++) for (let p = 0; p < k; p++) for (let j = 0; j < c; j++) o[i * c + j]! += (tA ? a[p * r + i]! : a[i * k + p]!) * (tB ? b[j * k + p]! : b[p * c + j]!);
  return o;
}
function pow(e: { Q: Float64Array; d: Float64Array }, k: number, p: number) {
  const eps = 1e-4 * Math.max(...e.d, 0) + 1e-12;
  const QS = Float64Array.from(e.Q, (q, i) => q * (Math.max(e.d[i % k]!, 0) + eps) ** p);
  return mm(QS, e.Q, k, k, k, false, true);
}
const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));

function oneStep(variant: 'shampoo' | 'soap', lr: number, clip: { trustRatio: number } | null) {
  const W0 = randomF32(m * n, 1);
  const g = randomF32(m * n, 2);
  const p: Param = { name: 'w', tensor: Tensor.from(W0, [m, n]), grad: Tensor.from(g, [m, n]) };
  const b: Param = { name: 'b', tensor: Tensor.from(randomF32(3, 3)), grad: Tensor.from(randomF32(3, 4)) };
  const b0 = b.tensor.toArray();
  const opt = new optim.Shampoo([p, b], { variant, lr, newtonClip: clip });
  const tel = opt.step();
  const dW = Float64Array.from(p.tensor.toArray(), (v, i) => v - W0[i]!);
  const db = Float64Array.from(b.tensor.toArray(), (v, i) => v - b0[i]!);
  return { W0, g, dW, db, tel, b0 };
}

describe('Shampoo and SOAP', () => {
  it('shampoo: Δ = −η·(‖Adam step‖/‖D‖)·D, D = L^{-1/4} Γ R^{-1/4}; vectors get Adam', () => {
    const { g, dW, db } = oneStep('shampoo', 1e-2, null);
    const L = eig(mm(g, g, m, n, m, false, true), m);
    const R = eig(mm(g, g, n, m, n, true, false), n);
    const D = mm(mm(pow(L, m, -0.25), g, m, m, n), pow(R, n, -0.25), m, n, n);
    const adam = Math.sqrt(Array.from(g).reduce((s, x) => s + (x / (Math.abs(x) + 1e-8)) ** 2, 0));
    const want = D.map((x) => (-1e-2 * adam * x) / norm(D));
    for (let i = 0; i < want.length; i++) expect(dW[i]).toBeCloseTo(want[i]!, 5);
    for (const v of db) expect(Math.abs(Math.abs(v) - 1e-2)).toBeLessThan(1e-6); // Adam's first step: η·sign(g)
  });

  it('soap: Δ = −η·Q_L (m̂′/(√v̂′+ε)) Q_Rᵀ in the eigenbasis', () => {
    const { g, dW } = oneStep('soap', 1e-2, null);
    const L = eig(mm(g, g, m, n, m, false, true), m);
    const R = eig(mm(g, g, n, m, n, true, false), n);
    const gr = mm(mm(L.Q, g, m, m, n, true), R.Q, m, n, n);
    const u = gr.map((x) => x / (Math.abs(x) + 1e-8));
    const want = mm(mm(L.Q, u, m, m, n), R.Q, m, n, n, false, true).map((x) => -1e-2 * x);
    for (let i = 0; i < want.length; i++) expect(dW[i]).toBeCloseTo(want[i]!, 5);
  });

  for (const variant of ['shampoo', 'soap'] as const)
    it(`${variant}: the default trust-ratio clip bounds each tensor's update`, () => {
      const { W0, dW, tel, b0 } = oneStep(variant, 10, undefined as never);
      const all = [...W0, ...b0];
      // per tensor: κ·√n_i·max(rms θ_i, rms of all parameters)
      const rms = Math.max(Math.sqrt(Array.from(W0).reduce((s, x) => s + x * x, 0) / W0.length), Math.sqrt(all.reduce((s, x) => s + x * x, 0) / all.length));
      expect(tel.clipped).toBe(true);
      expect(norm(dW)).toBeLessThanOrEqual(0.01 * Math.sqrt(W0.length) * Math.max(rms, 1e-3) * (1 + 1e-5));
      expect(norm(dW)).toBeGreaterThan(0.0099 * Math.sqrt(W0.length) * rms);
    });

  for (const variant of ['shampoo', 'soap'] as const)
    it(`${variant}: with a schedule the clipped update follows η/η̄ (trustLr)`, () => {
      const W0 = randomF32(m * n, 1);
      const size = (lr: number | ((s: number) => number), trustLr?: number) => {
        const p: Param = { name: 'w', tensor: Tensor.from(W0, [m, n]), grad: Tensor.from(randomF32(m * n, 2), [m, n]) };
        const opt = new optim.Shampoo([p], { variant, lr, ...(trustLr === undefined ? {} : { trustLr }) });
        const tel = opt.step();
        expect(tel.clipped).toBe(true);
        return norm(Float64Array.from(p.tensor.toArray(), (v, i) => v - W0[i]!));
      };
      const full = size(10);
      expect(size(() => 10, 40)).toBeCloseTo(full / 4, 6);
      expect(size(() => 10)).toBeCloseTo(full, 6); // η̄ = the largest lr so far = η at the first step
      expect(() => new optim.Shampoo([], { variant, trustLr: -1 })).toThrow(/trustLr/);
    });

  it('a clip the update does not support (norm, Fisher bound, global mode) is a ConfigError naming it', () => {
    const p: Param = { name: 'w', tensor: Tensor.zeros([m, n]), grad: null };
    const bad: [unknown, RegExp][] = [
      [{ maxNorm: 1 }, /newtonClip\.maxNorm/],
      [{ mode: 'fisher', c: 1e-3 }, /newtonClip\.c/],
      [{ trustRatio: 0.01, mode: 'global' }, /newtonClip\.mode/],
    ];
    for (const [newtonClip, name] of bad)
      for (const variant of ['shampoo', 'soap'] as const) {
        let err: unknown;
        try {
          new optim.Shampoo([p], { variant, newtonClip } as never);
        } catch (e) {
          err = e;
        }
        expect(err, JSON.stringify(newtonClip)).toBeInstanceOf(ConfigError);
        expect((err as Error).message).toMatch(name);
      }
    expect(new optim.Shampoo([p], { newtonClip: { trustRatio: 0.02, mode: 'per-tensor' } }).trustRatio).toBe(0.02);
  });

  for (const variant of ['shampoo', 'soap'] as const)
    it(`${variant} fits a least-squares problem`, () => {
      const X = randomF32(32 * n, 7);
      const Wt = randomF32(m * n, 8);
      const p: Param = { name: 'w', tensor: Tensor.zeros([m, n]), grad: null };
      const opt = new optim.Shampoo([p], { variant, lr: 0.05, newtonClip: null });
      const loss = () => {
        const W = p.tensor.toArray();
        const G = new Float32Array(m * n);
        let l = 0;
        for (let r = 0; r < 32; r++)
          for (let i = 0; i < m; i++) {
            let e = 0;
            for (let k = 0; k < n; k++) e += (W[i * n + k]! - Wt[i * n + k]!) * X[r * n + k]!;
            l += (e * e) / 64;
            for (let k = 0; k < n; k++) G[i * n + k]! += (e * X[r * n + k]!) / 32;
          }
        p.grad = Tensor.from(G, [m, n]);
        return l;
      };
      const l0 = loss();
      for (let s = 0; s < 150; s++) {
        loss();
        opt.step();
      }
      expect(loss()).toBeLessThan(0.05 * l0);
    });
});
