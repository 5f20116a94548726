/**
 * The K-FAC preconditioner and optimizer, checked by identities (docs/KFAC.md#eigen-method): a dense solve of
 * (A⊗G + λI) vec(P) = vec(∇W); identity factors reduce to SGD; on a deep linear network the
 * Kronecker factors give the exact Gauss-Newton block; clipping semantics; a least-squares
 * problem where K-FAC needs far fewer steps than a tuned AdamW; finite steps on degenerate
 * factors; bit-for-bit resume.
 */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, optim, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { DenseLayer, gradNorm, solve } from '../support/dense-layer.js';
import { maxRel, randomF32, rng } from '../support/helpers.js';

/** Column-major Kronecker system (A ⊗ G + λI) for P [dout, Da]: (A⊗G)vec(P) = vec(G P Aᵀ). */
function denseSolve(A: Float64Array, G: Float64Array, grad: Float64Array, dout: number, Da: number, lambda: number): Float64Array {
  const n = dout * Da;
  const M = new Float64Array(n * n);
  // vec index (i, j) → i + j·dout
  for (let j = 0; j < Da; j++)
    for (let i = 0; i < dout; i++)
      for (let l = 0; l < Da; l++)
        for (let k = 0; k < dout; k++) M[(i + j * dout) * n + (k + l * dout)] = A[j * Da + l]! * G[i * dout + k]! + (i === k && j === l ? lambda : 0);
  const b = new Float64Array(n);
  for (let j = 0; j < Da; j++) for (let i = 0; i < dout; i++) b[i + j * dout] = grad[i * Da + j]!;
  const x = solve(M, b, n);
  const P = new Float64Array(dout * Da);
  for (let j = 0; j < Da; j++) for (let i = 0; i < dout; i++) P[i * Da + j] = x[i + j * dout]!;
  return P;
}

function gram(X: Float32Array, R: number, d: number, bias: boolean, scale: number): Float64Array {
  const D = d + (bias ? 1 : 0);
  const F = new Float64Array(D * D);
  const row = (r: number, j: number) => (j === d ? 1 : X[r * d + j]!);
  for (let r = 0; r < R; r++) for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) F[i * D + j]! += (scale * row(r, i) * row(r, j)) / R;
  return F;
}

describe('K-FAC preconditioner', () => {
  it.each([
    ['eigen', true],
    ['eigen', false],
    ['inverse', true],
    ['inverse', false],
  ] as const)('%s method, bias %s: one step equals the float64 formula', (method, bias) => {
    const [R, din, dout, N, lambda] = [23, 5, 4, 8, 0.05];
    const X = randomF32(R * din, 1);
    const Gr = randomF32(R * dout, 2).map((v) => v / N);
    const layer = new DenseLayer('fc', randomF32(dout * din, 3), dout, din, bias ? randomF32(dout, 4) : undefined);
    layer.setInput(Tensor.from(X, [R, din]));
    layer.setOutputGrad(Tensor.from(Gr, [R, dout]));
    const gw = randomF32(dout * din, 5);
    const gb = randomF32(dout, 6);
    layer.setGrads(gw, bias ? gb : undefined);
    const pre = new KfacPreconditioner([layer], { method, damping: lambda, factorDecay: 0.5, newtonClip: null });
    const tel = pre.step({ batchSize: N });
    expect(tel.preconditioned).toBe(true);
    const Da = din + (bias ? 1 : 0);
    const A = gram(X, R, din, bias, 1);
    const G = gram(Gr, R, dout, false, N * N);
    const grad = new Float64Array(dout * Da);
    for (let i = 0; i < dout; i++) {
      for (let j = 0; j < din; j++) grad[i * Da + j] = gw[i * din + j]!;
      if (bias) grad[i * Da + din] = gb[i]!;
    }
    let want: Float64Array;
    if (method === 'eigen') {
      want = denseSolve(A, G, grad, dout, Da, lambda);
    } else {
      // P = (G + √λ/π I)⁻¹ ∇ (A + π√λ I)⁻¹, π = sqrt((tr A / Da) / (tr G / dout))
      let ta = 0;
      let tg = 0;
      for (let i = 0; i < Da; i++) ta += A[i * Da + i]!;
      for (let i = 0; i < dout; i++) tg += G[i * dout + i]!;
      const pi = Math.sqrt(ta / Da / (tg / dout));
      const Ad = Float64Array.from(A);
      for (let i = 0; i < Da; i++) Ad[i * Da + i]! += pi * Math.sqrt(lambda);
      const Gd = Float64Array.from(G);
      for (let i = 0; i < dout; i++) Gd[i * dout + i]! += Math.sqrt(lambda) / pi;
      // Solve Gd P Ad = grad: P = Gd⁻¹ grad Ad⁻¹ via the Kronecker system with λ = 0.
      want = denseSolve(Ad, Gd, grad, dout, Da, 0);
    }
    const got = new Float64Array(dout * Da);
    const pw = layer.weight.grad!.toArray();
    const pb = bias ? layer.bias!.grad!.toArray() : undefined;
    for (let i = 0; i < dout; i++) {
      for (let j = 0; j < din; j++) got[i * Da + j] = pw[i * din + j]!;
      if (pb) got[i * Da + din] = pb[i]!;
    }
    expect(maxRel(got, want)).toBeLessThan(1e-5);
    // The bias-corrected factors are the batch factors (one update: 1 − β⁰·… = 1 − β → corrected).
    const f = pre.factors('fc');
    expect(maxRel(f.A, A)).toBeLessThan(1e-5);
    expect(maxRel(f.G, G)).toBeLessThan(1e-5);
  });

  it('identity factors reduce K-FAC to SGD with lr/(1+λ)', () => {
    const [din, dout, N, lambda, lr] = [6, 4, 3, 0.25, 0.1];
    const eye = (n: number, s: number) => {
      const a = new Float32Array(n * n);
      for (let i = 0; i < n; i++) a[i * n + i] = s;
      return a;
    };
    const W = randomF32(dout * din, 11);
    const a = new DenseLayer('fc', W, dout, din);
    const b = new DenseLayer('fc', W, dout, din);
    const kfac = new KFAC([a], [], { lr, momentum: 0, damping: lambda, factorDecay: 0, newtonClip: null, method: 'eigen' });
    const sgd = new optim.SGD([b.weight], { lr: lr / (1 + lambda) });
    for (let s = 0; s < 3; s++) {
      const g = randomF32(dout * din, 20 + s);
      a.setInput(Tensor.from(eye(din, Math.sqrt(din)), [din, din])); // AᵀA/R = I
      a.setOutputGrad(Tensor.from(eye(dout, Math.sqrt(dout) / N), [dout, dout])); // N²·gᵀg/R = I
      a.setGrads(g);
      b.setGrads(g);
      kfac.step({ batchSize: N });
      sgd.step();
    }
    expect(maxRel(a.weight.tensor.toArray(), b.weight.tensor.toArray())).toBeLessThan(1e-6);
  });

  it('on a deep linear network the factors give the exact Gauss-Newton block', () => {
    // f(x) = W3 W2 W1 x, squared loss; the GN block of W2 is (1/R) Σ (a aᵀ) ⊗ (W3ᵀ W3).
    const [d0, d1, d2, d3, R] = [4, 5, 3, 2, 9];
    const W1 = randomF32(d1 * d0, 31);
    const W2 = randomF32(d2 * d1, 32);
    const W3 = randomF32(d3 * d2, 33);
    const X = randomF32(R * d0, 34);
    const mul = (A: ArrayLike<number>, B: ArrayLike<number>, m: number, k: number, n: number) => {
      const C = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) C[i * n + j]! += A[i * k + p]! * B[p * n + j]!;
      return C;
    };
    const f = (w2: Float64Array, x: ArrayLike<number>) => mul(W3, mul(w2, mul(W1, x, d1, d0, 1), d2, d1, 1), d3, d2, 1);
    // Exact GN block by central differences of the network output (float64).
    const n = d2 * d1;
    const GN = new Float64Array(n * n);
    const w2 = Float64Array.from(W2);
    for (let r = 0; r < R; r++) {
      const x = X.subarray(r * d0, (r + 1) * d0);
      const J = new Float64Array(d3 * n); // column (i, j) at i + j·d2 (column-major vec)
      for (let i = 0; i < d2; i++)
        for (let j = 0; j < d1; j++) {
          const h = 1e-6;
          w2[i * d1 + j]! += h;
          const up = f(w2, x);
          w2[i * d1 + j]! -= 2 * h;
          const dn = f(w2, x);
          w2[i * d1 + j]! += h;
          for (let k = 0; k < d3; k++) J[k * n + (i + j * d2)] = (up[k]! - dn[k]!) / (2 * h);
        }
      for (let p = 0; p < n; p++) for (let q = 0; q < n; q++) for (let k = 0; k < d3; k++) GN[p * n + q]! += (J[k * n + p]! * J[k * n + q]!) / R;
    }
    // K-FAC factors of W2: inputs a = W1 x; "exact" output gradients: the rows of W3 (one per
    // network output), scaled by √d3 so that with a summed loss G = W3ᵀW3.
    const layer = new DenseLayer('w2', W2, d2, d1);
    const inputs = new Float32Array(R * d1);
    for (let r = 0; r < R; r++) inputs.set(Float32Array.from(mul(W1, X.subarray(r * d0, (r + 1) * d0), d1, d0, 1)), r * d1);
    layer.setInput(Tensor.from(inputs, [R, d1]));
    layer.setOutputGrad(Tensor.from(W3.map((v) => v * Math.sqrt(d3)), [d3, d2]));
    layer.setGrads(new Float32Array(d2 * d1));
    const pre = new KfacPreconditioner([layer], { lossReduction: 'sum', factorDecay: 0, newtonClip: null });
    pre.step({ batchSize: R });
    const { A, G } = pre.factors('w2');
    const kron = new Float64Array(n * n);
    for (let j = 0; j < d1; j++)
      for (let i = 0; i < d2; i++)
        for (let l = 0; l < d1; l++) for (let k = 0; k < d2; k++) kron[(i + j * d2) * n + (k + l * d2)] = A[j * d1 + l]! * G[i * d2 + k]!;
    expect(maxRel(kron, GN)).toBeLessThan(1e-5);
  });

  it('clips the Newton step: global, per-tensor and Fisher-norm', () => {
    const mk = () => {
      const l1 = new DenseLayer('l1', randomF32(12, 41), 3, 4, randomF32(3, 42));
      const l2 = new DenseLayer('l2', randomF32(6, 43), 2, 3);
      for (const [l, din, dout, s] of [
        [l1, 4, 3, 1],
        [l2, 3, 2, 2],
      ] as const) {
        l.setInput(Tensor.from(randomF32(10 * din, 50 + s), [10, din]));
        l.setOutputGrad(Tensor.from(randomF32(10 * dout, 60 + s), [10, dout]));
        l.setGrads(randomF32(dout * din, 70 + s), l.bias ? randomF32(dout, 80 + s) : undefined);
      }
      return [l1, l2];
    };
    const free = mk();
    const unclipped = new KfacPreconditioner(free, { damping: 0.1, newtonClip: null }).step({ batchSize: 4 });
    const normP = gradNorm(free.flatMap((l) => [l.weight.grad, l.bias?.grad]));
    expect(unclipped.preClipNorm).toBeCloseTo(normP, 4);
    expect(unclipped.clipped).toBe(false);

    const tau = normP / 3;
    const g = mk();
    const tel = new KfacPreconditioner(g, { damping: 0.1, newtonClip: { maxNorm: tau } }).step({ batchSize: 4 });
    expect(tel.preClipNorm).toBeCloseTo(normP, 4);
    expect(tel.clipped).toBe(true);
    expect(tel.clipRate).toBe(1);
    expect(gradNorm(g.flatMap((l) => [l.weight.grad, l.bias?.grad]))).toBeCloseTo(tau, 4);
    // Direction unchanged: clipped = scale · unclipped.
    const ratio = g[0]!.weight.grad!.toArray()[0]! / free[0]!.weight.grad!.toArray()[0]!;
    expect(ratio).toBeCloseTo(tel.clipScale, 5);

    const big = mk();
    const none = new KfacPreconditioner(big, { damping: 0.1, newtonClip: { maxNorm: normP * 10 } }).step({ batchSize: 4 });
    expect(none.clipped).toBe(false);
    expect(none.clipScale).toBe(1);

    const per = mk();
    new KfacPreconditioner(per, { damping: 0.1, newtonClip: { mode: 'per-tensor', maxNorm: 1e-3 } }).step({ batchSize: 4 });
    for (const l of per) for (const t of [l.weight.grad, l.bias?.grad]) if (t) expect(gradNorm([t])).toBeLessThanOrEqual(1e-3 * (1 + 1e-5));

    // Fisher-norm: ν = min(1, sqrt(c / (lr² Σ⟨P, ∇W⟩))).
    const fi = mk();
    const raw = fi.flatMap((l) => [l.weight.grad!.toArray(), ...(l.bias ? [l.bias.grad!.toArray()] : [])]);
    const fr = new KfacPreconditioner(fi, { damping: 0.1, newtonClip: { mode: 'fisher', c: 1e-6 } }).step({ batchSize: 4, lr: 0.5 });
    const Ps = free.flatMap((l) => [l.weight.grad!.toArray(), ...(l.bias ? [l.bias.grad!.toArray()] : [])]);
    let vg = 0;
    Ps.forEach((p, i) => p.forEach((v, j) => (vg += v * raw[i]![j]!)));
    expect(fr.clipScale).toBeCloseTo(Math.min(1, Math.sqrt(1e-6 / (0.25 * Math.abs(vg)))), 5);
  });

  it('keeps steps finite on zero, rank-deficient and badly scaled factors', () => {
    for (const [scaleX, scaleG] of [
      [1, 0], // lora_B = 0 at initialisation: G of lora_A is exactly zero
      [1e-20, 1],
      [1e15, 1e-15],
      [0, 1],
    ] as [number, number][]) {
      for (const method of ['eigen', 'inverse'] as const) {
        const R = 7;
        const X = randomF32(R * 5, 90).map((v, i) => (i % 5 === 4 ? 0 : i % 5 === 3 ? X0(i) : v) * scaleX);
        const layer = new DenseLayer('fc', randomF32(15, 91), 3, 5, new Float32Array(3));
        layer.setInput(Tensor.from(X, [R, 5]));
        layer.setOutputGrad(Tensor.from(randomF32(R * 3, 92).map((v) => v * scaleG), [R, 3]));
        layer.setGrads(randomF32(15, 93), randomF32(3, 94));
        const tel = new KfacPreconditioner([layer], { method, damping: 1e-3, newtonClip: null }).step({ batchSize: 2 });
        expect(Number.isFinite(tel.preClipNorm)).toBe(true);
        for (const v of layer.weight.grad!.toArray()) expect(Number.isFinite(v)).toBe(true);
        for (const v of layer.bias!.grad!.toArray()) expect(Number.isFinite(v)).toBe(true);
      }
    }
    function X0(i: number) {
      return (i % 7) / 7; // a duplicated pattern column: rank deficiency
    }
  });

  it('layers sharing an inputKey share one A factor and give the same steps', () => {
    const X = Tensor.from(randomF32(11 * 4, 100), [11, 4]);
    const build = (shared: boolean) =>
      ['q', 'k', 'v'].map((n, i) => {
        const l = new DenseLayer(n, randomF32(8, 101 + i), 2, 4);
        if (shared) l.inputKey = 'attn-input';
        l.setInput(X);
        l.setOutputGrad(Tensor.from(randomF32(22, 110 + i), [11, 2]));
        l.setGrads(randomF32(8, 120 + i));
        return l;
      });
    const a = build(true);
    const b = build(false);
    const ta = new KfacPreconditioner(a, { damping: 0.01, newtonClip: null }).step({ batchSize: 3 });
    const tb = new KfacPreconditioner(b, { damping: 0.01, newtonClip: null }).step({ batchSize: 3 });
    expect(ta.decompositions.cold).toBe(4); // one shared A + three G
    expect(tb.decompositions.cold).toBe(6);
    a.forEach((l, i) => expect(maxRel(l.weight.grad!.toArray(), b[i]!.weight.grad!.toArray())).toBeLessThan(1e-6));
  });

  it("sequence 'expand' sums an example's tokens: G is R/N times the per-row G, A is unchanged, a pooled layer is unchanged", () => {
    const [N, T, din, dout] = [3, 5, 4, 2];
    const make = (rows: number, seed: number) => {
      const l = new DenseLayer(`fc${rows}`, randomF32(dout * din, seed), dout, din);
      l.setInput(Tensor.from(randomF32(rows * din, seed + 1), [rows, din]));
      l.setOutputGrad(Tensor.from(randomF32(rows * dout, seed + 2), [rows, dout]));
      l.setGrads(randomF32(dout * din, seed + 3));
      return l;
    };
    const factors = (sequence: 'per-row' | 'expand') => {
      const p = new KfacPreconditioner([make(N * T, 7), make(N, 17)], { sequence, factorDecay: 0, newtonClip: null });
      p.step({ batchSize: N });
      return [p.factors(`fc${N * T}`), p.factors(`fc${N}`)] as const;
    };
    const [tokRow, headRow] = factors('per-row');
    const [tokExp, headExp] = factors('expand');
    expect(maxRel(tokExp.A, tokRow.A)).toBeLessThan(1e-7);
    expect(maxRel(tokExp.G, Float32Array.from(tokRow.G, (v) => v * T))).toBeLessThan(1e-6);
    expect(maxRel(headExp.G, headRow.G)).toBeLessThan(1e-7);
    expect(() => new KfacPreconditioner([make(2, 1)], { sequence: 'sum' as never })).toThrow(InvalidArgumentError);
  });

  it('rejects bad layers and options with typed errors', () => {
    const l = new DenseLayer('fc', randomF32(6, 1), 2, 3);
    expect(() => new KfacPreconditioner([])).toThrow(InvalidArgumentError);
    expect(() => new KfacPreconditioner([l, l])).toThrow(InvalidArgumentError);
    expect(() => new KfacPreconditioner([l], { method: 'newton' as never })).toThrow(InvalidArgumentError);
    expect(() => new KfacPreconditioner([l], { newtonClip: { mode: 'global' } as never })).toThrow(InvalidArgumentError);
    const p = new KfacPreconditioner([l]);
    l.setInput(Tensor.zeros([4, 5]));
    l.setOutputGrad(Tensor.zeros([4, 2]));
    l.setGrads(new Float32Array(6));
    expect(() => p.step({ batchSize: 0 })).toThrow(InvalidArgumentError);
    expect(() => p.step({ batchSize: 2 })).toThrow(InvalidArgumentError); // input width 5 ≠ 3
  });
});

describe('KFAC optimizer', () => {
  /** Linear least squares y = W* x with ill-conditioned inputs; the loss is mean-reduced. */
  function problem(seed: number) {
    const [R, din, dout] = [128, 12, 3];
    const r = rng(seed);
    const X = new Float32Array(R * din);
    for (let i = 0; i < R; i++) for (let j = 0; j < din; j++) X[i * din + j] = (2 * r() - 1) * 10 ** (-2 * (j / (din - 1))); // column scales 1 … 1e-2
    const Wstar = randomF32(dout * din, seed + 1);
    const Y = new Float32Array(R * dout);
    for (let i = 0; i < R; i++) for (let k = 0; k < dout; k++) for (let j = 0; j < din; j++) Y[i * dout + k]! += Wstar[k * din + j]! * X[i * din + j]!;
    return { R, din, dout, X: Tensor.from(X, [R, din]), Y };
  }

  function lossAndGrad(layer: DenseLayer, p: ReturnType<typeof problem>): number {
    const y = layer.forward(p.X).toArray();
    const d = new Float32Array(y.length);
    let loss = 0;
    for (let i = 0; i < y.length; i++) {
      const e = y[i]! - p.Y[i]!;
      loss += (0.5 * e * e) / p.R;
      d[i] = e / p.R;
    }
    layer.backward(Tensor.from(d, [p.R, p.dout]));
    return loss;
  }

  function stepsToTarget(make: (layer: DenseLayer) => { step(): void }, seed: number, target: number, maxSteps: number): number {
    const p = problem(seed);
    const layer = new DenseLayer('fc', new Float32Array(p.dout * p.din), p.dout, p.din);
    const opt = make(layer);
    const r = rng(seed + 7);
    for (let s = 0; s < maxSteps; s++) {
      const loss = lossAndGrad(layer, p);
      if (loss <= target) return s;
      // Curvature of the squared loss: a Fisher sample, g ~ N(0, I)/N (the true Fisher is I/N²·N).
      const g = new Float32Array(p.R * p.dout);
      for (let i = 0; i < g.length; i++) g[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) / p.R;
      layer.curvatureGrad = Tensor.from(g, [p.R, p.dout]);
      opt.step();
    }
    return Infinity;
  }

  it('reaches a least-squares target in far fewer steps than a tuned AdamW', () => {
    const p0 = problem(5);
    const l0 = new DenseLayer('fc', new Float32Array(p0.dout * p0.din), p0.dout, p0.din);
    const initial = lossAndGrad(l0, p0);
    const target = initial * 1e-3;
    const kfacSteps = stepsToTarget((layer) => {
      const k = new KFAC([layer], [], { lr: 1, momentum: 0, damping: 1e-4, inverseEvery: 1, newtonClip: null });
      return { step: () => k.step({ batchSize: p0.R }) };
    }, 5, target, 400);
    const adamSteps = Math.min(
      ...[1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1].map((lr) =>
        stepsToTarget((layer) => new optim.AdamW([layer.weight], { lr, weightDecay: 0 }), 5, target, 400),
      ),
    );
    expect(kfacSteps).toBeLessThan(20);
    expect(kfacSteps * 5).toBeLessThan(adamSteps);
  });

  it('a resumed run reproduces an uninterrupted one bit for bit', () => {
    const run = (resumeAt: number | null) => {
      const p = problem(9);
      let layer = new DenseLayer('fc', new Float32Array(p.dout * p.din), p.dout, p.din, new Float32Array(p.dout));
      let k = new KFAC([layer], [], { lr: 0.5, damping: 1e-3, inverseEvery: 3, newtonClip: { maxNorm: 0.5 } });
      for (let s = 0; s < 12; s++) {
        if (s === resumeAt) {
          const state = k.stateDict();
          const w = layer.weight.tensor.toArray();
          const b = layer.bias!.tensor.toArray();
          k.dispose();
          layer = new DenseLayer('fc', w, p.dout, p.din, b);
          k = new KFAC([layer], [], { lr: 0.5, damping: 1e-3, inverseEvery: 3, newtonClip: { maxNorm: 0.5 } });
          k.loadStateDict(state);
        }
        lossAndGrad(layer, p);
        k.step({ batchSize: p.R });
      }
      return layer.weight.tensor.toArray();
    };
    expect(run(7)).toEqual(run(null));
  });

  it('warm eigenbasis refreshes track cold solves (and warm refreshes did happen)', () => {
    const traj = (warm: boolean) => {
      const p = problem(13);
      const layer = new DenseLayer('fc', new Float32Array(p.dout * p.din), p.dout, p.din);
      const k = new KFAC([layer], [], { lr: 0.3, damping: 1e-3, inverseEvery: 1, warmRefresh: warm, newtonClip: null, method: 'eigen' });
      const steps: Float32Array[] = [];
      const kinds = { cold: 0, warm: 0, fallback: 0, kept: 0 };
      for (let s = 0; s < 8; s++) {
        lossAndGrad(layer, p);
        const t = k.step({ batchSize: p.R });
        for (const key of Object.keys(kinds) as (keyof typeof kinds)[]) kinds[key] += t.decompositions[key];
        steps.push(layer.weight.grad!.toArray());
      }
      return { steps, kinds };
    };
    const w = traj(true);
    const c = traj(false);
    // two factors per step: the first step solves both cold; most later refreshes are warm
    // (a refresh judged stale falls back to a cold solve)
    expect(w.kinds.cold).toBe(2);
    expect(w.kinds.warm).toBeGreaterThanOrEqual(10);
    expect(w.kinds.warm + w.kinds.fallback + w.kinds.kept).toBe(14);
    expect(c.kinds).toEqual({ cold: 16, warm: 0, fallback: 0, kept: 0 });
    w.steps.forEach((s, i) => expect(maxRel(s, c.steps[i]!)).toBeLessThan(1e-3));
  });
});
