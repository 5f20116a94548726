/**
 * K-FAC curvature kernels against float64 references computed here: factor updates,
 * damped inverses, eigen and inverse preconditioning (checked against a dense solve of
 * (A ⊗ G + λI) vec(P) = vec(∇W)), and Newton-step clipping. Outputs are poisoned first.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, kfac, linalg, NotFiniteError, NumericalError, setCpuKernel, setNumThreads, ShapeError, Tensor } from '../../lib/index.js';
import { randomF32, rng } from '../support/helpers.js';
import { KERNELS, recordKernel } from '../support/isa.js';

const AVX2 = KERNELS.find((k) => k.name === 'avx2')!;

afterAll(() => {
  setNumThreads(0);
  setCpuKernel('auto');
});

type M = Float64Array; // row-major square or rectangular, dims passed alongside

const nan = (n: number) => new Float32Array(n).fill(NaN);
const T = (a: ArrayLike<number>, shape: number[]) => Tensor.from(Float32Array.from(a), shape);

function matmul64(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): M {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const x = a[i * k + p]!;
      if (x !== 0) for (let j = 0; j < n; j++) c[i * n + j]! += x * b[p * n + j]!;
    }
  return c;
}

function transpose64(a: ArrayLike<number>, m: number, n: number): M {
  const t = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) t[j * m + i] = a[i * n + j]!;
  return t;
}

/** Gauss-Jordan with partial pivoting: solves A X = B (A n×n, B n×m) in float64. */
function solve64(A: ArrayLike<number>, B: ArrayLike<number>, n: number, m: number): M {
  const a = Float64Array.from(A);
  const b = Float64Array.from(B);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(a[i * n + c]!) > Math.abs(a[p * n + c]!)) p = i;
    if (p !== c) {
      for (let j = 0; j < n; j++) [a[c * n + j], a[p * n + j]] = [a[p * n + j]!, a[c * n + j]!];
      for (let j = 0; j < m; j++) [b[c * m + j], b[p * m + j]] = [b[p * m + j]!, b[c * m + j]!];
    }
    const piv = a[c * n + c]!;
    for (let i = 0; i < n; i++) {
      if (i === c) continue;
      const f = a[i * n + c]! / piv;
      if (f === 0) continue;
      for (let j = c; j < n; j++) a[i * n + j]! -= f * a[c * n + j]!;
      for (let j = 0; j < m; j++) b[i * m + j]! -= f * b[c * m + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) b[i * m + j]! /= a[i * n + i]!;
  return b;
}

function eye(n: number, s = 1): M {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = s;
  return e;
}

function inverse64(A: ArrayLike<number>, n: number): M {
  return solve64(A, eye(n), n, n);
}

/** A random orthogonal n×n matrix (Gram-Schmidt on a seeded random matrix), float64. */
function orthogonal(n: number, seed: number): M {
  const r = rng(seed);
  const q = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) q[i] = 2 * r() - 1;
  // Orthonormalise the columns.
  for (let j = 0; j < n; j++) {
    for (let pass = 0; pass < 2; pass++)
      for (let k = 0; k < j; k++) {
        let d = 0;
        for (let i = 0; i < n; i++) d += q[i * n + j]! * q[i * n + k]!;
        for (let i = 0; i < n; i++) q[i * n + j]! -= d * q[i * n + k]!;
      }
    let s = 0;
    for (let i = 0; i < n; i++) s += q[i * n + j]! ** 2;
    s = Math.sqrt(s);
    for (let i = 0; i < n; i++) q[i * n + j]! /= s;
  }
  return q;
}

/** Q (rounded to float32), d (float32) and A = Q diag(d) Qᵀ computed in float64 from those. */
function spectral(n: number, seed: number, eig: (i: number) => number): { Q: Float32Array; d: Float32Array; A: M } {
  const Q = Float32Array.from(orthogonal(n, seed));
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = eig(i);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += Q[i * n + k]! * d[k]! * Q[j * n + k]!;
      A[i * n + j] = s;
    }
  return { Q, d, A };
}

/** H M H for the reflector H = I − 2uuᵀ/‖u‖² (M symmetric n×n, in place). O(n²). */
function reflect(M: M, u: M, n: number): void {
  const uu = u.reduce((a, v) => a + v * v, 0);
  for (let side = 0; side < 2; side++) {
    // Left: M ← M − (2/uu) u (uᵀM); then the same on the transposed (right) side.
    const w = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) w[j]! += u[i]! * M[i * n + j]!;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M[i * n + j]! -= (2 / uu) * u[i]! * w[j]!;
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) [M[i * n + j], M[j * n + i]] = [M[j * n + i]!, M[i * n + j]!];
  }
}

/** A = H₁H₂ diag(d) H₂H₁ and (A + δI)⁻¹ = H₁H₂ diag(1/(d+δ)) H₂H₁, both exact in float64, O(n²). */
function reflectedPair(n: number, seed: number, eig: (i: number) => number, delta: number): { A: M; inv: M } {
  const r = rng(seed);
  const us = [0, 1].map(() => Float64Array.from({ length: n }, () => 2 * r() - 1));
  const A = new Float64Array(n * n);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    A[i * n + i] = eig(i);
    inv[i * n + i] = 1 / (eig(i) + delta);
  }
  for (const u of us) {
    reflect(A, u, n);
    reflect(inv, u, n);
  }
  return { A, inv };
}

/** ‖got − want‖ / ‖want‖ (Infinity when got has a non-finite value). */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got[i]!)) return Infinity;
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

function norm64(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! ** 2;
  return Math.sqrt(s);
}

/** [∇W | ∇b] as one dout×Da float64 matrix. */
function joined(gW: Float32Array, gb: Float32Array | undefined, dout: number, din: number): M {
  const Da = din + (gb ? 1 : 0);
  const g = new Float64Array(dout * Da);
  for (let i = 0; i < dout; i++) {
    for (let j = 0; j < din; j++) g[i * Da + j] = gW[i * din + j]!;
    if (gb) g[i * Da + din] = gb[i]!;
  }
  return g;
}

/** Dense solve of (A ⊗ G + λI) vec(P) = vec(∇) with column-major vec, i.e. G P A + λ P = ∇. */
function kroneckerSolve(A: M, G: M, grad: M, dout: number, Da: number, lambda: number): M {
  const N = dout * Da;
  const K = new Float64Array(N * N);
  const rhs = new Float64Array(N);
  for (let j = 0; j < Da; j++)
    for (let i = 0; i < dout; i++) {
      rhs[j * dout + i] = grad[i * Da + j]!;
      for (let l = 0; l < Da; l++)
        for (let k = 0; k < dout; k++) K[(j * dout + i) * N + l * dout + k] = A[j * Da + l]! * G[i * dout + k]! + (j === l && i === k ? lambda : 0);
    }
  const v = solve64(K, rhs, N, 1);
  const P = new Float64Array(dout * Da);
  for (let j = 0; j < Da; j++) for (let i = 0; i < dout; i++) P[i * Da + j] = v[j * dout + i]!;
  return P;
}

function splitP(P: M, dout: number, din: number, bias: boolean): { W: M; b: M } {
  const Da = din + (bias ? 1 : 0);
  const W = new Float64Array(dout * din);
  const b = new Float64Array(dout);
  for (let i = 0; i < dout; i++) {
    for (let j = 0; j < din; j++) W[i * din + j] = P[i * Da + j]!;
    if (bias) b[i] = P[i * Da + din]!;
  }
  return { W, b };
}

describe('kfac.updateFactor', () => {
  const cases: [number, number][] = [
    [1, 1],
    [7, 1],
    [2, 5],
    [33, 7],
    [65, 33],
    [300, 130],
    [50, 257],
  ];
  it.each(cases)('R=%i d=%i: bias/no bias, beta 0 (poisoned factor) and 0.95, 1 and 2 threads', (R, d) => {
    for (const threads of [1, 2]) {
      setNumThreads(threads);
      for (const bias of [false, true])
        for (const beta of [0, 0.95]) {
          const D = d + (bias ? 1 : 0);
          const X = randomF32(R * d, R * 1000 + d);
          // A symmetric prior (only its lower triangle may be read).
          const F0 = randomF32(D * D, D + 7);
          for (let i = 0; i < D; i++) for (let j = 0; j < i; j++) F0[j * D + i] = F0[i * D + j]!;
          const x = T(X, [R, d]);
          const F = T(beta === 0 ? nan(D * D) : F0, [D, D]);
          const scale = 4; // e.g. G with a mean-reduced loss over N = 2 examples
          expect(kfac.updateFactor(F, x, { beta, scale, bias })).toBe(F);
          const alpha = ((1 - beta) * scale) / R;
          const want = new Float64Array(D * D);
          for (let i = 0; i < D; i++)
            for (let j = 0; j < D; j++) {
              let s = 0;
              for (let r = 0; r < R; r++) s += (i < d ? X[r * d + i]! : 1) * (j < d ? X[r * d + j]! : 1);
              want[i * D + j] = alpha * s + (beta === 0 ? 0 : beta * F0[i * D + j]!);
            }
          const got = F.toArray();
          expect(relErr(got, want)).toBeLessThan(2e-6);
          let asymmetric = 0;
          for (let i = 0; i < D; i++) for (let j = 0; j < i; j++) if (got[i * D + j] !== got[j * D + i]) asymmetric++;
          expect(asymmetric).toBe(0);
          x.dispose();
          F.dispose();
        }
    }
  });

  it('takes [..., d] inputs (leading dimensions are rows)', () => {
    const X = randomF32(2 * 3 * 5, 9);
    const a = T(X, [2, 3, 5]);
    const b = T(X, [6, 5]);
    const Fa = T(nan(25), [5, 5]);
    const Fb = T(nan(25), [5, 5]);
    kfac.updateFactor(Fa, a);
    kfac.updateFactor(Fb, b);
    expect(Fa.toArray()).toEqual(Fb.toArray());
  });

  // Sizes at the edges of every micro-kernel's tiles (MR 14/6/4 rows, NR 32/16 columns, MC
  // 168/72/64 rows per block) and depth blocks (KC 384/256), the bias column on and off.
  const edges: [number, number][] = [
    [1, 1],
    [3, 13],
    [385, 14],
    [17, 31],
    [769, 32],
    [40, 33],
    [257, 71],
    [100, 167],
    [385, 168],
    [33, 201],
  ];
  for (const k of KERNELS)
    it.skipIf(!k.available).each(edges)(`R=%i d=%i on the ${k.name} kernel${k.skip}: 1 and 2 threads, beta 0/0.95/1, bias, elementwise against float64`, (R, d) => {
      const X = randomF32(R * d, 31 * R + d);
      // X̃ᵀX̃ and Σ|x̃_i x̃_j| of X̃ = [X | 1] in float64; the no-bias factor is its leading d×d block.
      const D1 = d + 1;
      const xtx = new Float64Array(D1 * D1);
      const abs = new Float64Array(D1 * D1);
      const row = new Float64Array(D1);
      for (let r = 0; r < R; r++) {
        for (let j = 0; j < d; j++) row[j] = X[r * d + j]!;
        row[d] = 1;
        for (let i = 0; i < D1; i++)
          for (let j = 0; j <= i; j++) {
            xtx[i * D1 + j]! += row[i]! * row[j]!;
            abs[i * D1 + j]! += Math.abs(row[i]! * row[j]!);
          }
      }
      const kernel = k.name;
      {
        expect(setCpuKernel(kernel)).toBe(kernel);
        for (const threads of [1, 2]) {
          setNumThreads(threads);
          for (const bias of [false, true])
            for (const beta of [0, 0.95, 1]) {
              const D = d + (bias ? 1 : 0);
              // A prior whose strict upper triangle is NaN: only the lower one may be read.
              const F0 = randomF32(D * D, D + 11);
              for (let i = 0; i < D; i++) for (let j = i + 1; j < D; j++) F0[i * D + j] = NaN;
              const x = T(X, [R, d]);
              const F = T(beta === 0 ? nan(D * D) : F0, [D, D]);
              const scale = 3;
              kfac.updateFactor(F, x, { beta, scale, bias });
              const got = F.toArray();
              const alpha = ((1 - beta) * scale) / R;
              let bad = 0;
              for (let i = 0; i < D; i++)
                for (let j = 0; j < D; j++) {
                  const [a, b] = j <= i ? [i, j] : [j, i];
                  const prior = beta === 0 ? 0 : beta * F0[a * D + b]!;
                  const want = alpha * xtx[a * D1 + b]! + prior;
                  const tol = 4e-6 * (alpha * abs[a * D1 + b]! + Math.abs(prior)) + 1e-30;
                  if (!(Math.abs(got[i * D + j]! - want) <= tol)) bad++;
                }
              expect({ kernel, threads, bias, beta, bad }).toEqual({ kernel, threads, bias, beta, bad: 0 });
              x.dispose();
              F.dispose();
            }
        }
      }
      setCpuKernel('auto');
      recordKernel('factor update (syrk)', kernel, '1 and 2 threads');
    });

  it(`a large update (many depth blocks, several packing phases with 2 threads) gives the same bits on 1 and 2 threads and matches float64 entries, on the auto kernel and avx2${AVX2.skip}`, () => {
    const R = 6000;
    const d = 700;
    const X = randomF32(R * d, 77);
    const x = T(X, [R, d]);
    const F0 = randomF32((d + 1) * (d + 1), 78);
    for (const kernel of ['auto', ...(AVX2.available ? ['avx2'] : [])] as const) {
      setCpuKernel(kernel as 'auto' | 'avx2');
      const out: Float32Array[] = [];
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        const F = T(F0, [d + 1, d + 1]);
        kfac.updateFactor(F, x, { beta: 0.9, bias: true });
        out.push(F.toArray() as Float32Array);
        F.dispose();
      }
      const got = out[0]!;
      let differ = 0;
      for (let k = 0; k < got.length; k++) if (!Object.is(out[1]![k], got[k])) differ++;
      expect(differ).toBe(0);
      const D = d + 1;
      const r = rng(5);
      for (let t = 0; t < 64; t++) {
        const i = Math.floor(r() * D);
        const j = Math.floor(r() * D);
        const [a, b] = j <= i ? [i, j] : [j, i];
        let sum = 0;
        let abs = 0;
        for (let k = 0; k < R; k++) {
          const p = (a < d ? X[k * d + a]! : 1) * (b < d ? X[k * d + b]! : 1);
          sum += p;
          abs += Math.abs(p);
        }
        const want = (0.1 / R) * sum + 0.9 * F0[a * D + b]!;
        expect(Math.abs(got[i * D + j]! - want)).toBeLessThanOrEqual(4e-6 * ((0.1 / R) * abs + 0.9 * Math.abs(F0[a * D + b]!)));
      }
    }
    setCpuKernel('auto');
    x.dispose();
  });

  it('rejects bad arguments with typed errors naming them', () => {
    const x = T(randomF32(12, 1), [4, 3]);
    const F = Tensor.zeros([3, 3]);
    expect(() => kfac.updateFactor(F, x, { bias: true })).toThrow(ShapeError);
    expect(() => kfac.updateFactor(F, x, { beta: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => kfac.updateFactor(F, x, { scale: -1 })).toThrow(/scale/);
    const bad = T([1, NaN, 3, 4, 5, 6], [2, 3]);
    try {
      kfac.updateFactor(F, bad);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NotFiniteError);
      expect((e as NotFiniteError).argument).toBe('x');
    }
  });
});

describe('linalg.dampedInverse', () => {
  it.each([1, 2, 7, 33, 65, 130, 300, 520])('n=%i SPD matrices, well and ill conditioned, 1 and 2 threads', (n) => {
    for (const [cond, tol] of [
      [10, 1e-5],
      [1e4, 1e-2],
    ] as const) {
      const damping = 0.01;
      const { A, inv } = reflectedPair(n, n + 3, (i) => (n === 1 ? 1 : 1 + (cond - 1) * (i / (n - 1))), damping);
      // The float32 input is A rounded; its exact damped inverse differs from inv by about cond·2⁻²⁴.
      const a = T(A, [n, n]);
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        const out = linalg.dampedInverse(a, { damping, out: T(nan(n * n), [n, n]) });
        expect(relErr(out.toArray(), inv)).toBeLessThan(tol);
        out.dispose();
      }
      a.dispose();
    }
  });

  it('works in place and returns a new tensor without out', () => {
    const n = 9;
    const { A } = spectral(n, 5, (i) => 1 + i);
    const a = T(A, [n, n]);
    const fresh = linalg.dampedInverse(a, { damping: 0.5 });
    expect(linalg.dampedInverse(a, { damping: 0.5, out: a })).toBe(a);
    expect(relErr(a.toArray(), fresh.toArray())).toBeLessThan(1e-6);
  });

  it('retries in float64 when float32 fails, then throws NumericalError naming a', () => {
    const n = 6;
    const ones = T(new Float32Array(n * n).fill(1), [n, n]);
    // ones + 1e-9 I is positive definite, but 1 + 1e-9 rounds to 1 in float32.
    let retried = false;
    const inv = linalg.dampedInverse(ones, { damping: 1e-9, onFloat64Retry: () => (retried = true) });
    expect(retried).toBe(true);
    expect(inv.toArray().every(Number.isFinite)).toBe(true);
    try {
      linalg.dampedInverse(ones, { damping: 0 });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NumericalError);
      expect((e as NumericalError).argument).toBe('a');
    }
    expect(() => linalg.dampedInverse(T([1, 2, 3, 4, 5, 6], [2, 3]))).toThrow(ShapeError);
  });
});

describe('kfac.preconditionEigen (exact damping)', () => {
  const cases: [number, number][] = [
    [1, 1],
    [2, 7],
    [7, 2],
    [5, 9],
    [17, 6],
  ];
  it.each(cases)('dout=%i din=%i equals the dense Kronecker solve, bias and no bias', (dout, din) => {
    for (const bias of [false, true]) {
      const Da = din + (bias ? 1 : 0);
      const a = spectral(Da, 100 + Da, (i) => 0.05 + (i % 5) * 0.7);
      const g = spectral(dout, 200 + dout, (i) => 0.1 + (i % 3) * 1.3);
      const gW = randomF32(dout * din, 7 * dout + din);
      const gb = bias ? randomF32(dout, 11 + dout) : undefined;
      const lambda = 0.03;
      const args = {
        grad: T(gW, [dout, din]),
        A: { Q: T(a.Q, [Da, Da]), d: T(a.d, [Da]) },
        G: { Q: T(g.Q, [dout, dout]), d: T(g.d, [dout]) },
        damping: lambda,
        out: T(nan(dout * din), [dout, din]),
        ...(gb ? { gradBias: T(gb, [dout]), outBias: T(nan(dout), [dout]) } : {}),
      };
      const r = kfac.preconditionEigen(args);
      expect(r.weight).toBe(args.out);
      const want = splitP(kroneckerSolve(a.A, g.A, joined(gW, gb, dout, din), dout, Da, lambda), dout, din, bias);
      expect(relErr(r.weight.toArray(), want.W)).toBeLessThan(2e-5);
      if (bias) expect(relErr(r.bias!.toArray(), want.b)).toBeLessThan(2e-5);
      else expect(r.bias).toBeUndefined();
    }
  });

  it('identity factors with λ = 0 give back ∇W and ∇b', () => {
    const [dout, din] = [7, 33];
    const gW = randomF32(dout * din, 3);
    const gb = randomF32(dout, 4);
    const r = kfac.preconditionEigen({
      grad: T(gW, [dout, din]),
      gradBias: T(gb, [dout]),
      A: { Q: T(eye(din + 1), [din + 1, din + 1]), d: T(new Float32Array(din + 1).fill(1), [din + 1]) },
      G: { Q: T(eye(dout), [dout, dout]), d: T(new Float32Array(dout).fill(1), [dout]) },
      damping: 0,
    });
    expect(r.weight.toArray()).toEqual(gW);
    expect(r.bias!.toArray()).toEqual(gb);
  });

  it('rank-deficient factors (zero and slightly negative eigenvalues) give finite steps', () => {
    const [dout, din] = [6, 5];
    const a = spectral(din, 31, (i) => (i < 2 ? 0 : i === 2 ? -1e-7 : 1));
    const g = spectral(dout, 32, (i) => (i % 2 ? 0 : 2));
    const gW = randomF32(dout * din, 5);
    for (const lambda of [0, 1e-3]) {
      const r = kfac.preconditionEigen({
        grad: T(gW, [dout, din]),
        A: { Q: T(a.Q, [din, din]), d: T(a.d, [din]) },
        G: { Q: T(g.Q, [dout, dout]), d: T(g.d, [dout]) },
        damping: lambda,
      });
      expect(r.weight.toArray().every(Number.isFinite)).toBe(true);
    }
  });

  it('rejects mismatched shapes naming the argument', () => {
    const grad = Tensor.zeros([3, 4]);
    const A = { Q: Tensor.zeros([4, 4]), d: Tensor.zeros([4]) };
    const G = { Q: Tensor.zeros([3, 3]), d: Tensor.zeros([3]) };
    expect(() => kfac.preconditionEigen({ grad, gradBias: Tensor.zeros([3]), A, G, damping: 1 })).toThrow(/A\.Q/);
    expect(() => kfac.preconditionEigen({ grad, A, G: { Q: G.Q, d: Tensor.zeros([4]) }, damping: 1 })).toThrow(/G\.d/);
    expect(() => kfac.preconditionEigen({ grad, A, G, damping: -1 })).toThrow(InvalidArgumentError);
    expect(() => kfac.preconditionEigen({ grad, A, G, damping: 1, outBias: Tensor.zeros([3]) })).toThrow(/outBias/);
  });
});

describe('kfac inverse method (π damping)', () => {
  const cases: [number, number][] = [
    [1, 1],
    [2, 7],
    [9, 3],
    [17, 33],
    [65, 20],
  ];
  it.each(cases)('dout=%i din=%i equals its factored formula in float64, bias and no bias', (dout, din) => {
    for (const bias of [false, true]) {
      const Da = din + (bias ? 1 : 0);
      const a = spectral(Da, 300 + Da, (i) => 0.2 + (i % 4));
      const g = spectral(dout, 400 + dout, (i) => 0.01 + 0.02 * (i % 3));
      const gW = randomF32(dout * din, 5 * dout + din);
      const gb = bias ? randomF32(dout, 13 + dout) : undefined;
      const lambda = 0.1;
      let trA = 0;
      let trG = 0;
      for (let i = 0; i < Da; i++) trA += a.A[i * Da + i]!;
      for (let i = 0; i < dout; i++) trG += g.A[i * dout + i]!;
      const pi = Math.sqrt(trA / Da / (trG / dout));
      const Ad = Float64Array.from(a.A);
      const Gd = Float64Array.from(g.A);
      for (let i = 0; i < Da; i++) Ad[i * Da + i]! += pi * Math.sqrt(lambda);
      for (let i = 0; i < dout; i++) Gd[i * dout + i]! += Math.sqrt(lambda) / pi;
      const P = matmul64(matmul64(inverse64(Gd, dout), joined(gW, gb, dout, din), dout, dout, Da), inverse64(Ad, Da), dout, Da, Da);
      const want = splitP(P, dout, din, bias);

      const At = T(a.A, [Da, Da]);
      const Gt = T(g.A, [dout, dout]);
      const common = {
        grad: T(gW, [dout, din]),
        out: T(nan(dout * din), [dout, din]),
        ...(gb ? { gradBias: T(gb, [dout]), outBias: T(nan(dout), [dout]) } : {}),
      };
      const r = kfac.preconditionInverseFactors({ ...common, A: At, G: Gt, damping: lambda });
      expect(r.pi).toBeCloseTo(pi, 5);
      expect(relErr(r.weight.toArray(), want.W)).toBeLessThan(1e-4);
      if (bias) expect(relErr(r.bias!.toArray(), want.b)).toBeLessThan(1e-4);

      // The same through precomputed inverses (reusable between refreshes).
      const pd = kfac.piDamping(At, Gt, lambda);
      expect(pd.pi).toBe(r.pi);
      const Ainv = linalg.dampedInverse(At, { damping: pd.dampA });
      const Ginv = linalg.dampedInverse(Gt, { damping: pd.dampG });
      const out2 = T(nan(dout * din), [dout, din]);
      const r2 = kfac.preconditionInverse({ ...common, out: out2, ...(gb ? { outBias: T(nan(dout), [dout]) } : {}), Ainv, Ginv });
      expect(relErr(r2.weight.toArray(), want.W)).toBeLessThan(1e-4);
      if (bias) expect(relErr(r2.bias!.toArray(), want.b)).toBeLessThan(1e-4);
    }
  });

  it('identity factors with λ = 0 give back ∇W', () => {
    const [dout, din] = [5, 12];
    const gW = randomF32(dout * din, 8);
    const r = kfac.preconditionInverseFactors({ grad: T(gW, [dout, din]), A: T(eye(din), [din, din]), G: T(eye(dout), [dout, dout]), damping: 0 });
    expect(r.pi).toBe(1);
    expect(relErr(r.weight.toArray(), gW)).toBeLessThan(1e-6);
  });

  it('a zero G factor (lora_A at step one) and a rank-deficient A give a finite step', () => {
    const [dout, din, R] = [8, 20, 3];
    const x = T(randomF32(R * din, 77), [R, din]);
    const A = Tensor.zeros([din + 1, din + 1]);
    kfac.updateFactor(A, x, { bias: true }); // rank ≤ 4 of 21
    const G = Tensor.zeros([dout, dout]);
    const r = kfac.preconditionInverseFactors({ grad: T(randomF32(dout * din, 78), [dout, din]), gradBias: T(randomF32(dout, 79), [dout]), A, G, damping: 1e-3 });
    expect(r.pi).toBe(1); // tr G = 0: π falls back to 1
    expect(r.weight.toArray().every(Number.isFinite)).toBe(true);
    expect(r.bias!.toArray().every(Number.isFinite)).toBe(true);
  });
});

describe('kfac.clipNewtonStep', () => {
  const make = (sizes: number[], scales: number[], seed: number) =>
    sizes.map((n, i) => {
      const v = randomF32(n, seed + i);
      for (let k = 0; k < n; k++) v[k]! *= scales[i]!;
      return T(v, [n]);
    });

  for (const k of KERNELS)
    it.skipIf(!k.available)(`global on the ${k.name} kernel${k.skip}: no clip below τ, exact norm τ after clipping; Σ⟨P, ∇W⟩ in float64 (1 and 2 threads)`, () => {
      expect(setCpuKernel(k.name)).toBe(k.name);
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        const ts = make([1, 33, 70_001, 7], [1, 1, 1, 1], 1);
        const before = ts.map((t) => t.toArray());
        const total = Math.hypot(...before.map(norm64));
        const r0 = kfac.clipNewtonStep(ts, { maxNorm: total * 1.01 });
        expect(r0.clipped).toBe(false);
        expect(r0.scale).toBe(1);
        expect(r0.norm).toBeCloseTo(total, 6);
        ts.forEach((t, i) => expect(t.toArray()).toEqual(before[i]));

        const tau = total / 3;
        const r = kfac.clipNewtonStep(ts, { maxNorm: tau, mode: 'global' });
        expect(r.clipped).toBe(true);
        expect(r.scale).toBeCloseTo(1 / 3, 10);
        expect(r.norms.map((n, i) => n / norm64(before[i]!))).toEqual(r.norms.map(() => expect.closeTo(1, 6)));
        const after = Math.hypot(...ts.map((t) => norm64(t.toArray())));
        expect(Math.abs(after - tau) / tau).toBeLessThan(1e-6);

        // the dot-product reduction of the Fisher clip (c large: nothing is scaled)
        const grads = make([1, 33, 70_001, 7], [1, 1, 1, 1], 41);
        let vg = 0;
        let mag = 0;
        ts.forEach((t, i) => {
          const a = t.toArray();
          const g = grads[i]!.toArray();
          for (let j = 0; j < a.length; j++) {
            vg += a[j]! * g[j]!;
            mag += Math.abs(a[j]! * g[j]!);
          }
        });
        const rf = kfac.clipNewtonStep(ts, { mode: 'fisher', c: 1e30, lr: 1, grads });
        expect(rf.clipped).toBe(false);
        // products of floats are exact in float64; two float64 sums of n terms differ by at most 2·n·2⁻⁵³·Σ|p·g|
        expect(Math.abs(rf.vg! - vg)).toBeLessThanOrEqual(2 * (1 + 33 + 70_001 + 7) * 2 ** -53 * mag);
      }
      setCpuKernel('auto');
      setNumThreads(0);
      recordKernel('Newton-step clip (norms, dots, scaling)', k.name, '1 and 2 threads');
    });

  it('per-tensor: each tensor clipped on its own', () => {
    const ts = make([10, 20, 30], [0.01, 10, 1], 5);
    const before = ts.map((t) => t.toArray());
    const norms = before.map(norm64);
    const tau = 1;
    const r = kfac.clipNewtonStep(ts, { maxNorm: tau, mode: 'per-tensor' });
    expect(r.clippedTensors).toEqual(norms.map((n) => n > tau));
    ts.forEach((t, i) => {
      const n = norm64(t.toArray());
      if (norms[i]! > tau) expect(Math.abs(n - tau)).toBeLessThan(1e-6);
      else expect(t.toArray()).toEqual(before[i]);
    });
    expect(r.scale).toBe(Math.min(...r.scales));
  });

  it('fisher: ν = min(1, sqrt(c / (η² Σ⟨P, ∇W⟩)))', () => {
    const P = make([15, 40], [1, 1], 9);
    const G = make([15, 40], [1, 1], 9); // ∇W = P: Σ⟨P, ∇W⟩ = ‖P‖² > 0
    const before = P.map((t) => t.toArray());
    const vg = before.reduce((s, a) => s + norm64(a) ** 2, 0);
    const lr = 0.1;
    const c = 1e-3;
    const nu = Math.min(1, Math.sqrt(c / (lr * lr * vg)));
    expect(nu).toBeLessThan(1);
    const r = kfac.clipNewtonStep(P, { mode: 'fisher', c, lr, grads: G });
    expect(r.vg).toBeCloseTo(vg, 6);
    expect(r.scale).toBeCloseTo(nu, 10);
    P.forEach((t, i) => expect(relErr(t.toArray(), Array.from(before[i]!, (v) => v * nu))).toBeLessThan(1e-6));
    // A large c never clips; Σ⟨P, ∇W⟩ = 0 never clips; a negative one is bounded by its magnitude.
    expect(kfac.clipNewtonStep(P, { mode: 'fisher', c: 1e9, lr, grads: G }).clipped).toBe(false);
    const zero = [Tensor.zeros([15]), Tensor.zeros([40])];
    const rz = kfac.clipNewtonStep(P, { mode: 'fisher', c, lr, grads: zero });
    expect(rz.vg).toBe(0);
    expect(rz.clipped).toBe(false);
    const neg = G.map((g) => {
      const a = g.toArray().map((v) => -v);
      return T(a, [a.length]);
    });
    const vgNow = P.reduce((s, t, i) => {
      const p = t.toArray();
      const g = neg[i]!.toArray();
      return s + p.reduce((acc, v, k) => acc + v * g[k]!, 0);
    }, 0);
    const rn = kfac.clipNewtonStep(P, { mode: 'fisher', c: c / 100, lr, grads: neg });
    expect(rn.vg).toBeLessThan(0);
    expect(rn.vg).toBeCloseTo(vgNow, 6);
    expect(rn.scale).toBeCloseTo(Math.min(1, Math.sqrt(c / 100 / (lr * lr * Math.abs(vgNow)))), 6);
  });

  it('NaN or Inf in a step throws NotFiniteError naming it and scales nothing', () => {
    const ts = make([5, 5], [100, 100], 3);
    const bad = T([1, 2, Infinity, 4], [4]);
    const before = ts.map((t) => t.toArray());
    try {
      kfac.clipNewtonStep([ts[0]!, bad, ts[1]!], { maxNorm: 1 });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(NotFiniteError);
      expect((e as NotFiniteError).argument).toBe('tensors[1]');
    }
    ts.forEach((t, i) => expect(t.toArray()).toEqual(before[i]));
    expect(() => kfac.clipNewtonStep(ts, { maxNorm: 0 })).toThrow(InvalidArgumentError);
    expect(() => kfac.clipNewtonStep(ts, { mode: 'fisher', c: 1, lr: 1, grads: [ts[0]!] })).toThrow(/grads/);
    expect(() => kfac.clipNewtonStep(ts, { mode: 'fisher', c: 1, lr: 1, grads: [ts[0]!, Tensor.zeros([4])] })).toThrow(ShapeError);
    // @ts-expect-error an unknown mode
    expect(() => kfac.clipNewtonStep(ts, { mode: 'sideways', maxNorm: 1 })).toThrow(/mode/);
  });
});
