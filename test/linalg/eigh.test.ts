/**
 * linalg.eigh / eighRefresh / eighBatched through the public API, checked in float64:
 * residual ‖AQ − QΛ‖_F/‖A‖_F ≤ 1e-5, orthogonality ‖QᵀQ − I‖_F ≤ 1e-5·√n, ascending values,
 * known spectra where the input was built from one.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { DisposedError, InvalidArgumentError, linalg, NotFiniteError, NumericalError, setCpuKernel, setNumThreads, ShapeError, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import { rng } from '../support/helpers.js';
import { KERNELS, recordKernel } from '../support/isa.js';

afterAll(() => setNumThreads(0));
afterEach(() => native()._eighFaultInjection(0));

/** Standard normal samples (Box–Muller on the seeded generator). */
function gaussian(seed: number): () => number {
  const u = rng(seed);
  return () => Math.sqrt(-2 * Math.log(u() + 1e-300)) * Math.cos(2 * Math.PI * u());
}

/** A random orthogonal n×n matrix (Gram–Schmidt twice on a Gaussian matrix), row-major float64. */
function randomOrthogonal(n: number, seed: number): Float64Array {
  const g = gaussian(seed);
  const Q = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) Q[i] = g();
  const col = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) col[i] = Q[i * n + j]!;
    for (let pass = 0; pass < 2; pass++)
      for (let k = 0; k < j; k++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += Q[i * n + k]! * col[i]!;
        for (let i = 0; i < n; i++) col[i]! -= s * Q[i * n + k]!;
      }
    let s = 0;
    for (let i = 0; i < n; i++) s += col[i]! * col[i]!;
    s = 1 / Math.sqrt(s);
    for (let i = 0; i < n; i++) Q[i * n + j] = col[i]! * s;
  }
  return Q;
}

/** Q·diag(lam)·Qᵀ as float32 (symmetric). */
function withSpectrum(lam: number[], seed: number): Float32Array {
  const n = lam.length;
  const Q = randomOrthogonal(n, seed);
  const A = new Float32Array(n * n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) row[k] = Q[i * n + k]! * lam[k]!;
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += row[k]! * Q[j * n + k]!;
      A[i * n + j] = A[j * n + i] = s;
    }
  }
  return A;
}

/** A tensor full of NaN: anything a kernel fails to write shows. */
function poisoned(shape: number[]): Tensor {
  return Tensor.from(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape);
}

function randomSymmetric(n: number, seed: number, scale = 1): Float32Array {
  const g = gaussian(seed);
  const A = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) A[i * n + j] = A[j * n + i] = g() * scale;
  return A;
}

/** Residual and orthogonality of (w, Q) for A, all in float64 (Q row-major, eigenvector j in column j). */
function quality(A: ArrayLike<number>, w: ArrayLike<number>, Q: ArrayLike<number>, n: number) {
  let an = 0;
  for (let i = 0; i < n * n; i++) an += A[i]! * A[i]!;
  let rn = 0;
  const acc = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let k = 0; k < n; k++) {
      const a = A[i * n + k]!;
      if (a === 0) continue;
      for (let j = 0; j < n; j++) acc[j]! += a * Q[k * n + j]!;
    }
    for (let j = 0; j < n; j++) {
      const r = acc[j]! - Q[i * n + j]! * w[j]!;
      rn += r * r;
    }
  }
  let on = 0;
  const G = new Float64Array(n * n);
  for (let k = 0; k < n; k++)
    for (let i = 0; i < n; i++) {
      const q = Q[k * n + i]!;
      for (let j = 0; j < n; j++) G[i * n + j]! += q * Q[k * n + j]!;
    }
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      const r = G[i * n + j]! - (i === j ? 1 : 0);
      on += r * r;
    }
  let ascending = true;
  for (let i = 0; i + 1 < n; i++) ascending &&= w[i]! <= w[i + 1]!;
  return { residual: an > 0 ? Math.sqrt(rn / an) : Math.sqrt(rn), orth: Math.sqrt(on), ascending };
}

function expectGood(A: Float32Array, w: Float32Array, Q: Float32Array, n: number) {
  for (const x of w) expect(Number.isFinite(x)).toBe(true);
  for (const x of Q) expect(Number.isFinite(x)).toBe(true);
  const q = quality(A, w, Q, n);
  expect(q.ascending).toBe(true);
  expect(q.residual).toBeLessThanOrEqual(1e-5);
  expect(q.orth).toBeLessThanOrEqual(1e-5 * Math.sqrt(n));
  return q;
}

type Kind = 'random' | 'clustered' | 'repeated' | 'rank-deficient PSD' | 'graded' | 'diagonal' | 'scaled 1e-30' | 'scaled 1e30';
const KINDS: Kind[] = ['random', 'clustered', 'repeated', 'rank-deficient PSD', 'graded', 'diagonal', 'scaled 1e-30', 'scaled 1e30'];

/** The test matrix and, when it was built from one, its exact spectrum (ascending). */
function makeCase(kind: Kind, n: number, seed: number): { A: Float32Array; lam?: number[] } {
  const g = gaussian(seed + 1000);
  let lam: number[] | undefined;
  switch (kind) {
    case 'random':
      return { A: randomSymmetric(n, seed) };
    case 'scaled 1e-30':
      return { A: randomSymmetric(n, seed, 1e-30) };
    case 'scaled 1e30':
      return { A: randomSymmetric(n, seed, 1e30) };
    case 'diagonal': {
      const A = new Float32Array(n * n);
      for (let i = 0; i < n; i++) A[i * n + i] = g();
      return { A };
    }
    case 'clustered':
      lam = Array.from({ length: n }, () => 1 + 1e-6 * g());
      break;
    case 'repeated':
      lam = Array.from({ length: n }, (_, i) => i % 3);
      break;
    case 'rank-deficient PSD':
      lam = Array.from({ length: n }, (_, i) => (i < Math.max(1, n >> 2) ? Math.abs(g()) + 0.1 : 0));
      break;
    case 'graded':
      lam = Array.from({ length: n }, (_, i) => 10 ** (-6 * (i / Math.max(1, n - 1))));
      break;
  }
  return { A: withSpectrum(lam, seed), lam: [...lam].sort((a, b) => a - b) };
}

describe.each([1, 2])('eigh with %i thread(s)', (threads) => {
  const sizes = threads === 1 ? [1, 2, 7, 33, 100, 257] : [7, 100, 257];
  it.each(sizes)('n = %i, every kind of spectrum', (n) => {
    setNumThreads(threads);
    for (const kind of KINDS) {
      const { A, lam } = makeCase(kind, n, n * 13 + KINDS.indexOf(kind));
      using a = Tensor.from(A, [n, n]);
      const r = linalg.eigh(a);
      const w = r.values.toArray();
      const Q = r.vectors.toArray();
      expect(r.values.shape).toEqual([n]);
      expect(r.vectors.shape).toEqual([n, n]);
      expect(r.retriedFloat64).toBe(false);
      expectGood(A, w, Q, n);
      if (lam) {
        const top = Math.max(...lam.map(Math.abs));
        for (let i = 0; i < n; i++) expect(Math.abs(w[i]! - lam[i]!)).toBeLessThanOrEqual(1e-5 * top + 1e-30);
      }
      r.values.dispose();
      r.vectors.dispose();
    }
  });
});

describe('eigh on each CPU kernel (the tridiagonal reduction\'s symmetric products are ISA-specific)', () => {
  afterAll(() => setCpuKernel('auto'));
  for (const k of KERNELS)
    it.skipIf(!k.available)(`n = 100 and 257 on the ${k.name} kernel${k.skip}: random and clustered spectra`, () => {
      setNumThreads(1);
      expect(setCpuKernel(k.name)).toBe(k.name);
      for (const n of [100, 257])
        for (const kind of ['random', 'clustered'] as const) {
          const { A } = makeCase(kind, n, n * 17 + KINDS.indexOf(kind));
          using a = Tensor.from(A, [n, n]);
          const r = linalg.eigh(a);
          expectGood(A, r.values.toArray(), r.vectors.toArray(), n);
          r.values.dispose();
          r.vectors.dispose();
        }
      recordKernel('eigh (tridiagonal reduction)', k.name, '1 thread');
    });
});

describe('eigh: special inputs, outputs, errors', () => {
  it('a larger matrix (n = 600)', () => {
    const n = 600;
    const A = randomSymmetric(n, 77);
    using a = Tensor.from(A, [n, n]);
    const r = linalg.eigh(a);
    expectGood(A, r.values.toArray(), r.vectors.toArray(), n);
  });

  it('the zero matrix gives zeros and an orthonormal basis', () => {
    for (const n of [1, 5, 40]) {
      using a = Tensor.zeros([n, n]);
      const r = linalg.eigh(a);
      expect([...r.values.toArray()].every((x) => x === 0)).toBe(true);
      expect(quality(new Float32Array(n * n), r.values.toArray(), r.vectors.toArray(), n).orth).toBeLessThanOrEqual(1e-6);
    }
  });

  it('uses the symmetric part of a slightly asymmetric input', () => {
    const n = 20;
    const S = randomSymmetric(n, 5);
    const A = S.slice();
    for (let i = 0; i < n; i++) A[i * n + ((i + 3) % n)]! += 1e-7;
    using a = Tensor.from(A, [n, n]);
    const r = linalg.eigh(a);
    const sym = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sym[i * n + j] = 0.5 * (A[i * n + j]! + A[j * n + i]!);
    expectGood(sym, r.values.toArray(), r.vectors.toArray(), n);
  });

  it('writes every element of poisoned out buffers and returns them', () => {
    for (const n of [1, 7, 33, 130]) {
      const A = randomSymmetric(n, n);
      using a = Tensor.from(A, [n, n]);
      using values = poisoned([n]);
      using vectors = poisoned([n, n]);
      const r = linalg.eigh(a, { out: { values, vectors } });
      expect(r.values).toBe(values);
      expect(r.vectors).toBe(vectors);
      expectGood(A, values.toArray(), vectors.toArray(), n);
    }
  });

  it('clampNonNegative clamps the tiny negative eigenvalues of a PSD factor', () => {
    const n = 40;
    const lam = Array.from({ length: n }, (_, i) => (i < 10 ? -1e-7 * (i + 1) : i / n));
    const A = withSpectrum(lam, 3);
    using a = Tensor.from(A, [n, n]);
    const plain = linalg.eigh(a).values.toArray();
    expect(plain[0]!).toBeLessThan(0);
    const clamped = linalg.eigh(a, { clampNonNegative: true }).values.toArray();
    expect(Math.min(...clamped)).toBe(0);
    for (let i = 0; i < n; i++) expect(clamped[i]).toBe(Math.max(0, plain[i]!));
  });

  it('rejects bad input with typed errors', () => {
    using nan = Tensor.from(new Float32Array([1, NaN, NaN, 1]), [2, 2]);
    expect(() => linalg.eigh(nan)).toThrow(NotFiniteError);
    using inf = Tensor.from(new Float32Array([1, 0, 0, Infinity]), [2, 2]);
    expect(() => linalg.eigh(inf)).toThrow(NotFiniteError);
    using rect = Tensor.zeros([2, 3]);
    expect(() => linalg.eigh(rect)).toThrow(ShapeError);
    using r3 = Tensor.zeros([2, 2, 2]);
    expect(() => linalg.eigh(r3)).toThrow(ShapeError);
    expect(() => linalg.eigh([[1]] as unknown as Tensor)).toThrow(InvalidArgumentError);
    const gone = Tensor.zeros([2, 2]);
    gone.dispose();
    expect(() => linalg.eigh(gone)).toThrow(DisposedError);
    using sq = Tensor.zeros([3, 3]);
    expect(() => linalg.eigh(sq, { clampNonNegative: 1 as unknown as boolean })).toThrow(InvalidArgumentError);
    using wrong = Tensor.zeros([4]);
    expect(() => linalg.eigh(sq, { out: { values: wrong } })).toThrow(ShapeError);
    // The native layer re-checks what TypeScript checked.
    expect(() => native().eigh(rect.handle, null, null, {})).toThrow(ShapeError);
    expect(() => native().eigh(nan.handle, null, null, {})).toThrow(NotFiniteError);
  });
});

describe('robustness: float64 retry and failure reporting', () => {
  it('a failed float32 solve is retried in float64 and is just as good', () => {
    const n = 50;
    const A = randomSymmetric(n, 9);
    using a = Tensor.from(A, [n, n]);
    native()._eighFaultInjection(1);
    const r = linalg.eigh(a);
    expect(r.retriedFloat64).toBe(true);
    expectGood(A, r.values.toArray(), r.vectors.toArray(), n);
  });

  it('eigh throws NumericalError when float64 fails too', () => {
    using a = Tensor.from(randomSymmetric(10, 1), [10, 10]);
    native()._eighFaultInjection(2);
    expect(() => linalg.eigh(a)).toThrow(NumericalError);
  });

  it('eighRefresh keeps the previous basis and reports it when every solve fails', () => {
    const n = 30;
    using a0 = Tensor.from(randomSymmetric(n, 2), [n, n]);
    const prev = linalg.eigh(a0);
    using a = Tensor.from(randomSymmetric(n, 3), [n, n]); // unrelated: the basis is stale
    native()._eighFaultInjection(2);
    const r = linalg.eighRefresh(a, prev.vectors, { previousValues: prev.values });
    expect(r.fellBack).toBe(true);
    expect(r.keptPrevious).toBe(true);
    expect([...r.vectors.toArray()]).toEqual([...prev.vectors.toArray()]);
    expect([...r.values.toArray()]).toEqual([...prev.values.toArray()]);
  });
});

/** One K-FAC eigen-preconditioned step in float64: P = Q_G[(Q_Gᵀ W Q_A) ⊘ (d_G d_Aᵀ + λ)]Q_Aᵀ. W: [m, n]. */
function kfacStep(QG: ArrayLike<number>, dG: ArrayLike<number>, QA: ArrayLike<number>, dA: ArrayLike<number>, W: Float64Array, m: number, n: number, lambda: number): Float64Array {
  const mul = (X: ArrayLike<number>, tX: boolean, Y: ArrayLike<number>, tY: boolean, r: number, k: number, c: number) => {
    const out = new Float64Array(r * c);
    for (let i = 0; i < r; i++)
      for (let p = 0; p < k; p++) {
        const x = tX ? X[p * r + i]! : X[i * k + p]!;
        for (let j = 0; j < c; j++) out[i * c + j]! += x * (tY ? Y[j * k + p]! : Y[p * c + j]!);
      }
    return out;
  };
  const T = mul(mul(QG, true, W, false, m, m, n), false, QA, false, m, n, n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[i * n + j]! /= dG[i]! * dA[j]! + lambda;
  return mul(mul(QG, false, T, false, m, m, n), false, QA, true, m, n, n);
}

function relDiff(x: Float64Array, y: Float64Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < x.length; i++) {
    d += (x[i]! - y[i]!) ** 2;
    s += y[i]! ** 2;
  }
  return Math.sqrt(d / s);
}

/** XᵀX/R for a fresh Gaussian X [R, n] with feature scales decaying like 1/(1+j/8): a batch curvature factor. */
function batchFactor(n: number, R: number, seed: number): Float64Array {
  const g = gaussian(seed);
  const X = new Float64Array(R * n);
  for (let r = 0; r < R; r++) for (let j = 0; j < n; j++) X[r * n + j] = g() / (1 + j / 8);
  const F = new Float64Array(n * n);
  for (let r = 0; r < R; r++)
    for (let i = 0; i < n; i++) {
      const xi = X[r * n + i]!;
      for (let j = 0; j < n; j++) F[i * n + j]! += (xi * X[r * n + j]!) / R;
    }
  return F;
}

describe('eighRefresh', () => {
  it('after one EMA step (β = 0.95) a K-FAC step matches the cold one to 1e-3', () => {
    const [nA, nG, R] = [48, 32, 64];
    const factors = [nA, nG].map((n, f) => {
      let F = batchFactor(n, R, 10 + f);
      for (let s = 0; s < 4; s++) {
        const B = batchFactor(n, R, 20 + 10 * f + s);
        F = F.map((x, i) => 0.95 * x + 0.05 * B[i]!);
      }
      const old = Float32Array.from(F);
      const B = batchFactor(n, R, 99 + f);
      const now = Float32Array.from(F.map((x, i) => 0.95 * x + 0.05 * B[i]!));
      return { n, old, now };
    });
    const results = factors.map(({ n, old, now }) => {
      using a0 = Tensor.from(old, [n, n]);
      using a = Tensor.from(now, [n, n]);
      const prev = linalg.eigh(a0, { clampNonNegative: true });
      const warm = linalg.eighRefresh(a, prev.vectors, { previousValues: prev.values, clampNonNegative: true });
      const cold = linalg.eigh(a, { clampNonNegative: true });
      const q = quality(now, warm.values.toArray(), warm.vectors.toArray(), n);
      expect(q.residual).toBeLessThanOrEqual(1e-4);
      expect(q.orth).toBeLessThanOrEqual(1e-5 * Math.sqrt(n));
      expect(warm.keptPrevious).toBe(false);
      return { warm, cold };
    });
    const [A, G] = results as [(typeof results)[0], (typeof results)[0]];
    const g = gaussian(5);
    const W = Float64Array.from({ length: nG * nA }, () => g());
    const dmax = Math.max(...A.cold.values.toArray()) * Math.max(...G.cold.values.toArray());
    for (const lambda of [1e-3 * dmax, 1e-2 * dmax]) {
      const Pw = kfacStep(G.warm.vectors.toArray(), G.warm.values.toArray(), A.warm.vectors.toArray(), A.warm.values.toArray(), W, nG, nA, lambda);
      const Pc = kfacStep(G.cold.vectors.toArray(), G.cold.values.toArray(), A.cold.vectors.toArray(), A.cold.values.toArray(), W, nG, nA, lambda);
      expect(relDiff(Pw, Pc)).toBeLessThanOrEqual(1e-3);
    }
  });

  it('a nearly unchanged matrix is refreshed warm, accurately, in place', () => {
    for (const n of [7, 64, 150]) {
      const F = batchFactor(n, 2 * n, n);
      const old = Float32Array.from(F);
      const B = batchFactor(n, 2 * n, n + 1);
      const now = Float32Array.from(F.map((x, i) => 0.999 * x + 0.001 * B[i]!));
      using a0 = Tensor.from(old, [n, n]);
      using a = Tensor.from(now, [n, n]);
      const prev = linalg.eigh(a0);
      const r = linalg.eighRefresh(a, prev.vectors, { out: { vectors: prev.vectors } });
      expect(r.vectors).toBe(prev.vectors);
      const q = quality(now, r.values.toArray(), r.vectors.toArray(), n);
      expect(q.residual).toBeLessThanOrEqual(1e-4);
      expect(q.orth).toBeLessThanOrEqual(1e-5 * Math.sqrt(n));
      expect(r.residual).toBeLessThanOrEqual(1e-4);
    }
  });

  it('a stale basis falls back to a cold solve', () => {
    const n = 60;
    const A = randomSymmetric(n, 8);
    using a = Tensor.from(A, [n, n]);
    using stale = Tensor.from(Float32Array.from(randomOrthogonal(n, 4)), [n, n]);
    const r = linalg.eighRefresh(a, stale);
    expect(r.fellBack).toBe(true);
    expect(r.offDiagonal).toBeGreaterThan(0.25);
    expectGood(A, r.values.toArray(), r.vectors.toArray(), n);
  });

  it('the same basis for the same matrix needs no rotation; the zero matrix keeps the basis', () => {
    const n = 33;
    const A = randomSymmetric(n, 12);
    using a = Tensor.from(A, [n, n]);
    const prev = linalg.eigh(a);
    const r = linalg.eighRefresh(a, prev.vectors);
    expect(r.fellBack).toBe(false);
    expectGood(A, r.values.toArray(), r.vectors.toArray(), n);
    using z = Tensor.zeros([n, n]);
    const rz = linalg.eighRefresh(z, prev.vectors);
    expect([...rz.values.toArray()].every((x) => x === 0)).toBe(true);
  });

  it('rejects bad input with typed errors', () => {
    using a = Tensor.zeros([4, 4]);
    using p3 = Tensor.zeros([3, 3]);
    expect(() => linalg.eighRefresh(a, p3)).toThrow(ShapeError);
    using pnan = poisoned([4, 4]);
    using a1 = Tensor.from(randomSymmetric(4, 1), [4, 4]);
    expect(() => linalg.eighRefresh(a1, pnan)).toThrow(NotFiniteError);
    using eye = Tensor.from(Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)), [4, 4]);
    expect(() => linalg.eighRefresh(a1, eye, { maxResidual: -1 })).toThrow(InvalidArgumentError);
    expect(() => linalg.eighRefresh(a1, eye, { maxResidual: NaN })).toThrow(NotFiniteError);
    using v5 = Tensor.zeros([5]);
    expect(() => linalg.eighRefresh(a1, eye, { previousValues: v5 })).toThrow(ShapeError);
  });
});

describe('eighBatched', () => {
  it.each([1, 2, 3, 8, 16, 24, 25, 33, 64])('37 matrices of size %i, poisoned outputs', (r) => {
    const B = 37;
    const A = new Float32Array(B * r * r);
    for (let b = 0; b < B; b++) {
      const kind = KINDS[b % KINDS.length]!;
      A.set(makeCase(kind, r, b * 7 + r).A, b * r * r);
    }
    using a = Tensor.from(A, [B, r, r]);
    using values = poisoned([B, r]);
    using vectors = poisoned([B, r, r]);
    const res = linalg.eighBatched(a, { out: { values, vectors } });
    expect(res.values).toBe(values);
    expect(res.retried).toBe(0);
    const w = values.toArray();
    const V = vectors.toArray();
    for (let b = 0; b < B; b++)
      expectGood(A.subarray(b * r * r, (b + 1) * r * r), w.subarray(b * r, (b + 1) * r), V.subarray(b * r * r, (b + 1) * r * r), r);
  });

  it('zero matrices, clamping and errors', () => {
    using z = Tensor.zeros([3, 4, 4]);
    const rz = linalg.eighBatched(z);
    expect([...rz.values.toArray()].every((x) => x === 0)).toBe(true);
    const lam = [-1e-7, 0.5, 1, 2];
    using a = Tensor.from(withSpectrum(lam, 1), [1, 4, 4]);
    expect(Math.min(...linalg.eighBatched(a, { clampNonNegative: true }).values.toArray())).toBe(0);
    using bad = Tensor.from(new Float32Array(8).fill(NaN), [2, 2, 2]);
    expect(() => linalg.eighBatched(bad)).toThrow(NotFiniteError);
    using rect = Tensor.zeros([2, 2, 3]);
    expect(() => linalg.eighBatched(rect)).toThrow(ShapeError);
    using flat = Tensor.zeros([2, 2]);
    expect(() => linalg.eighBatched(flat)).toThrow(ShapeError);
  });
});
