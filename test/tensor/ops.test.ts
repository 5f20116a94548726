/** Elementwise ops and reductions against float64 references, outputs poisoned first. */
import { describe, expect, it } from 'vitest';

import { ops, ShapeError, Tensor, NotFiniteError, setNumThreads } from '../../lib/index.js';
import { randomF32 } from '../support/helpers.js';

const SIZES = [1, 7, 33, 257, 4099, 70_001];
const f32 = Math.fround;

function poisoned(shape: number[]): Tensor {
  return Tensor.full(shape, 0).set(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN));
}

describe.each([1, 2])('elementwise ops with %i thread(s)', (threads) => {
  setNumThreads(threads);

  it.each(SIZES)('fill, copy, add, scale, axpy at n = %i', (n) => {
    const xa = randomF32(n, n);
    const ya = randomF32(n, n + 1);
    const x = Tensor.from(xa, [n]);
    const y = Tensor.from(ya, [n]);

    const f = poisoned([n]);
    ops.fill(f, -2.5);
    expect(f.toArray().every((v) => v === -2.5)).toBe(true);

    const c = poisoned([n]);
    ops.copy(x, c);
    expect(c.toArray()).toEqual(xa);

    const s = poisoned([n]);
    ops.add(x, y, s);
    const sa = s.toArray();
    for (let i = 0; i < n; i++) expect(sa[i]).toBe(f32(xa[i]! + ya[i]!));

    const sc = poisoned([n]);
    ops.scale(x, 0.3, sc);
    const sca = sc.toArray();
    for (let i = 0; i < n; i++) expect(sca[i]).toBe(f32(f32(0.3) * xa[i]!));

    const z = Tensor.from(ya, [n]);
    ops.axpy(-1.75, x, z);
    const za = z.toArray();
    for (let i = 0; i < n; i++) expect(Math.abs(za[i]! - (ya[i]! - 1.75 * xa[i]!))).toBeLessThanOrEqual(1e-6 * (Math.abs(ya[i]!) + 1.75 * Math.abs(xa[i]!)) + 1e-30);

    // In place: out may alias an input.
    ops.add(x, x, x);
    expect(x.toArray()[0]).toBe(f32(2 * xa[0]!));
  });

  it.each(SIZES)('sum, sumSquares, norm, dot at n = %i match float64', (n) => {
    const xa = randomF32(n, 3 * n);
    const ya = randomF32(n, 3 * n + 1);
    const x = Tensor.from(xa, [n]);
    const y = Tensor.from(ya, [n]);
    let s = 0;
    let s2 = 0;
    let d = 0;
    let mag = 0;
    for (let i = 0; i < n; i++) {
      s += xa[i]!;
      s2 += xa[i]! * xa[i]!;
      d += xa[i]! * ya[i]!;
      mag += Math.abs(xa[i]!);
    }
    expect(Math.abs(ops.sum(x) - s)).toBeLessThanOrEqual(1e-12 * mag + 1e-300);
    expect(Math.abs(ops.sumSquares(x) - s2)).toBeLessThanOrEqual(1e-12 * s2);
    expect(Math.abs(ops.norm(x) - Math.sqrt(s2))).toBeLessThanOrEqual(1e-12 * Math.sqrt(s2));
    expect(Math.abs(ops.dot(x, y) - d)).toBeLessThanOrEqual(1e-12 * n);
  });

  it.each([
    [1, 1, 1],
    [1, 7, 3],
    [3, 33, 17],
    [5, 257, 65],
    [2, 1000, 3],
  ])('transpose of [%i, %i, %i]', (b, r, c) => {
    const xa = randomF32(b * r * c, r * c);
    const x = Tensor.from(xa, [b, r, c]);
    const out = poisoned([b, c, r]);
    ops.transpose(x, out);
    const oa = out.toArray();
    let wrong = 0;
    for (let k = 0; k < b; k++)
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) if (oa[k * r * c + j * r + i] !== xa[k * r * c + i * c + j]) wrong++;
    expect(wrong).toBe(0);
    const fresh = ops.transpose(x);
    expect(fresh.shape).toEqual([b, c, r]);
    expect(fresh.toArray()).toEqual(oa);
  });
});

describe('op argument checks', () => {
  it('rejects mismatched shapes, aliasing, and non-finite scalars', () => {
    const a = Tensor.zeros([3]);
    const b = Tensor.zeros([4]);
    expect(() => ops.add(a, b, a)).toThrow(ShapeError);
    expect(() => ops.axpy(1, a, b)).toThrow(ShapeError);
    expect(() => ops.scale(a, NaN)).toThrow(NotFiniteError);
    expect(() => ops.fill(a, Infinity)).toThrow(NotFiniteError);
    const m = Tensor.zeros([3, 3]);
    expect(() => ops.transpose(m, m)).toThrow(/memory separate/);
    expect(() => ops.transpose(a)).toThrow(ShapeError);
    expect(() => ops.copy(a, b)).toThrow(ShapeError);
  });

  it('sums of huge float values do not overflow', () => {
    const x = Tensor.full([1000], 3e38);
    const v = Math.fround(3e38);
    expect(Math.abs(ops.norm(x) / (v * Math.sqrt(1000)) - 1)).toBeLessThan(1e-12);
    expect(Number.isFinite(ops.sumSquares(x))).toBe(true);
  });
  setNumThreads(0);
});

describe('ops.copyRange', () => {
  it('copies a flat range exactly, touches nothing else, and works as stack and unstack', () => {
    const a = Tensor.from(randomF32(12, 1), [3, 4]);
    const b = Tensor.from(randomF32(6, 2), [2, 3]);
    const stack = Tensor.full([25], 5);
    ops.copyRange(a, 0, stack, 1, 12);
    ops.copyRange(b, 2, stack, 15, 4); // b's elements 2..5
    const s = stack.toArray();
    const av = a.toArray();
    const bv = b.toArray();
    s.forEach((v, i) => expect(v, `stack[${i}]`).toBe(i >= 1 && i < 13 ? av[i - 1]! : i >= 15 && i < 19 ? bv[i - 13]! : 5));
    const back = poisoned([3, 4]);
    ops.copyRange(stack, 1, back, 0, 12);
    expect(back.toArray()).toEqual(av);
    ops.copyRange(stack, 0, stack, 20, 5); // one tensor, ranges apart
    expect(stack.toArray().slice(20)).toEqual(s.slice(0, 5));
    expect(ops.copyRange(a, 12, b, 6, 0)).toBe(b); // an empty range at the very end is a no-op
  });

  it('refuses ranges outside a tensor, overlapping ranges, negative counts and mixed dtypes, naming the argument', () => {
    const a = Tensor.full([8], 1);
    const b = Tensor.full([8], 2);
    expect(() => ops.copyRange(a, 5, b, 0, 4)).toThrow(/srcOffset/);
    expect(() => ops.copyRange(a, 0, b, 5, 4)).toThrow(/dstOffset/);
    expect(() => ops.copyRange(a, -1, b, 0, 1)).toThrow(/srcOffset/);
    expect(() => ops.copyRange(a, 0, b, 0, -1)).toThrow(/count/);
    expect(() => ops.copyRange(a, 0, a, 2, 4)).toThrow(/overlap/);
    expect(() => ops.copyRange(a, 0, a.to('cpu', { dtype: 'bfloat16' }), 0, 4)).toThrow(/dst/);
    expect(b.toArray()).toEqual(new Float32Array(8).fill(2)); // nothing was written
  });
});
