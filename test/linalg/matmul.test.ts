/** linalg.matmul through the public API against a float64 reference. */
import { afterAll, describe, expect, it } from 'vitest';

import { DisposedError, InvalidArgumentError, linalg, ShapeError, Tensor, setNumThreads, NotFiniteError } from '../../lib/index.js';
import { randomF32, refGemm, worstRelative } from '../support/helpers.js';

// Error bound: for a dot product of length k in float32 with float32 accumulation,
// |ĉ − c| ≤ γ_k Σ|a||b| with γ_k ≈ k·u (u = 2⁻²⁴); blocked and FMA summation gives far less
// in practice, so 4·u·sqrt(k)-ish is typical. We allow 2·k·u, the deterministic bound, floored at 1e-6.
const tolFor = (k: number) => Math.max(1e-6, 2 * k * 2 ** -24);

const CASES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [7, 1, 5],
  [3, 5, 1],
  [17, 33, 7],
  [33, 17, 65],
  [64, 64, 64],
  [127, 129, 131],
  [1, 300, 257],
  [300, 2, 3],
  [5, 5, 1000],
];

afterAll(() => setNumThreads(0));

describe.each([1, 2])('matmul with %i thread(s)', (threads) => {
  it.each(CASES)('m=%i n=%i k=%i, all transposes, alpha/beta', (m, n, k) => {
    setNumThreads(threads);
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const [alpha, beta] of [
          [1, 0],
          [-0.5, 0],
          [2, 0.75],
        ] as const) {
          const A = randomF32(m * k, m + 31 * k);
          const B = randomF32(k * n, n + 17 * k);
          const C0 = randomF32(m * n, m * n + 5);
          const a = Tensor.from(A, transA ? [k, m] : [m, k]);
          const b = Tensor.from(B, transB ? [n, k] : [k, n]);
          const out = Tensor.from(beta === 0 ? new Float32Array(m * n).fill(NaN) : C0, [m, n]);
          const r = linalg.matmul(a, b, { transA, transB, alpha, beta, out });
          expect(r).toBe(out);
          const ref = refGemm(A, B, C0, m, n, k, transA, transB, alpha, beta);
          expect(worstRelative(out.toArray(), ref.c, ref.mag, tolFor(k))).toBeLessThanOrEqual(1);
          a.dispose();
          b.dispose();
          out.dispose();
        }
  });

  it('batched [B,M,K]·[B,K,N] and broadcast of a 2-D operand', () => {
    setNumThreads(threads);
    const [B, m, n, k] = [5, 7, 9, 11];
    const A = randomF32(B * m * k, 1);
    const Bm = randomF32(B * k * n, 2);
    const W = randomF32(k * n, 3);
    const a = Tensor.from(A, [B, m, k]);
    const batched = linalg.matmul(a, Tensor.from(Bm, [B, k, n]));
    const broadcast = linalg.matmul(a, Tensor.from(W, [k, n]));
    expect(batched.shape).toEqual([B, m, n]);
    const got = batched.toArray();
    const gotW = broadcast.toArray();
    for (let i = 0; i < B; i++) {
      const ref = refGemm(A.subarray(i * m * k, (i + 1) * m * k), Bm.subarray(i * k * n, (i + 1) * k * n), undefined, m, n, k, false, false, 1, 0);
      expect(worstRelative(got.subarray(i * m * n, (i + 1) * m * n), ref.c, ref.mag, tolFor(k))).toBeLessThanOrEqual(1);
      const refW = refGemm(A.subarray(i * m * k, (i + 1) * m * k), W, undefined, m, n, k, false, false, 1, 0);
      expect(worstRelative(gotW.subarray(i * m * n, (i + 1) * m * n), refW.c, refW.mag, tolFor(k))).toBeLessThanOrEqual(1);
    }
  });
});

describe('matmul edge cases and errors', () => {
  it('k = 0 gives beta·C and zero-sized outputs are fine', () => {
    const a = Tensor.zeros([3, 0]);
    const b = Tensor.zeros([0, 2]);
    const out = Tensor.full([3, 2], 4);
    linalg.matmul(a, b, { out, beta: 0.5 });
    expect(Array.from(out.toArray())).toEqual([2, 2, 2, 2, 2, 2]);
    expect(linalg.matmul(Tensor.zeros([0, 3]), Tensor.zeros([3, 4])).shape).toEqual([0, 4]);
  });

  it('throws typed errors that name the argument', () => {
    const a = Tensor.zeros([2, 3]);
    const b = Tensor.zeros([4, 5]);
    let err: unknown;
    try {
      linalg.matmul(a, b);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    expect((err as ShapeError).argument).toBe('b');
    expect(() => linalg.matmul(a, Tensor.zeros([3, 2]), { out: Tensor.zeros([3, 3]) })).toThrow(ShapeError);
    expect(() => linalg.matmul(a, Tensor.zeros([3, 2]), { beta: 1 })).toThrow(InvalidArgumentError);
    expect(() => linalg.matmul(a, Tensor.zeros([3, 2]), { alpha: NaN })).toThrow(NotFiniteError);
    expect(() => linalg.matmul(a, Tensor.zeros([3, 2]), { transA: 1 as never })).toThrow(InvalidArgumentError);
    expect(() => linalg.matmul(Tensor.zeros([3]), a)).toThrow(ShapeError);
    expect(() => linalg.matmul(Tensor.zeros([2, 2, 2]), Tensor.zeros([3, 2, 2]))).toThrow(ShapeError);
    const sq = Tensor.zeros([3, 3]);
    expect(() => linalg.matmul(sq, sq, { out: sq })).toThrow(/memory separate/);
    const d = Tensor.zeros([3, 3]);
    d.dispose();
    expect(() => linalg.matmul(sq, d)).toThrow(DisposedError);
    expect(() => linalg.matmul({} as never, sq)).toThrow(InvalidArgumentError);
  });
});
