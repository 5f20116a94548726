/** bfloat16: conversion, and every bf16 GEMM kernel this machine runs against a float64 reference. */
import { afterAll, describe, expect, it } from 'vitest';

import { bf16Kernels, DTypeError, InvalidArgumentError, linalg, ops, setBf16Kernel, ShapeError, Tensor } from '../../lib/index.js';
import { randomF32 } from '../support/helpers.js';

/** The float32 value nearest-even rounding to bfloat16 gives (reference, in JS). */
function roundBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const v = u[0]!;
  if ((v & 0x7fffffff) > 0x7f800000) return NaN;
  u[0] = ((v + 0x7fff + ((v >>> 16) & 1)) >>> 16) << 16;
  return f[0]!;
}

describe('bfloat16 conversion', () => {
  it('rounds to nearest even and keeps NaN and ±Inf; back to float32 is exact', () => {
    const xs = [0, -0, 1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -7 + 2 ** -8, -2.5, 3.1415927, 1e-30, 6e4, 3.4e38, Infinity, -Infinity, NaN, ...randomF32(200, 3)];
    using x = Tensor.from(Float32Array.from(xs), [xs.length]);
    using b = ops.cast(x, 'bfloat16');
    expect(b.dtype).toBe('bfloat16');
    const back = b.toArray();
    for (let i = 0; i < xs.length; i++) {
      const want = roundBf16(xs[i]!);
      if (Number.isNaN(want)) expect(Number.isNaN(back[i]!)).toBe(true);
      else expect(back[i]).toBe(want);
    }
    expect(back[3]).toBe(1); // a tie rounds to the even neighbour
    using f = ops.cast(b, 'float32');
    expect(f.dtype).toBe('float32');
    expect(Array.from(f.toArray()).slice(0, 13)).toEqual(Array.from(back).slice(0, 13));
  });

  it('bad input is a typed error', () => {
    using x = Tensor.zeros([2]);
    expect(() => ops.cast(x, 'float16')).toThrow(InvalidArgumentError);
    expect(() => ops.cast(x, 'int8' as never)).toThrow(InvalidArgumentError);
    using a = ops.cast(Tensor.zeros([3, 4]), 'bfloat16');
    using b = ops.cast(Tensor.zeros([2, 5]), 'bfloat16');
    expect(() => linalg.matmul(a, b, { transB: true })).toThrow(ShapeError);
    expect(() => linalg.matmul(a, b)).toThrow(ShapeError);
    expect(() => linalg.matmul(x, b)).toThrow(DTypeError);
    expect(() => setBf16Kernel('nope' as never)).toThrow(InvalidArgumentError);
  });
});

const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 7],
  [17, 33, 65],
  [33, 31, 100],
  [5, 64, 1000],
  [40, 19, 33],
];

describe.each(['portable', 'avx512bf16', 'amx'] as const)('bf16 GEMM kernel %s', (kernel) => {
  const supported = bf16Kernels().supported[kernel] === true;
  if (!supported) console.log(`bf16 kernel ${kernel}: skipped, this CPU/OS/build cannot run it`);
  afterAll(() => setBf16Kernel('auto'));
  it.skipIf(!supported).each([true, false])('a·op(b) on odd sizes matches float64 within the float32 summation bound (transB %s)', (transB) => {
    expect(setBf16Kernel(kernel)).toBe(kernel);
    for (const [m, n, k] of SIZES) {
      using af = Tensor.from(randomF32(m * k, m + k), [m, k]);
      using bf = Tensor.from(randomF32(n * k, n + 2 * k), transB ? [n, k] : [k, n]);
      using a = ops.cast(af, 'bfloat16');
      using b = ops.cast(bf, 'bfloat16');
      const A = a.toArray();
      const Braw = b.toArray();
      // B[j * k + p] = element (p, j) of op(b)
      const B = transB ? Braw : Float32Array.from({ length: n * k }, (_, idx) => Braw[(idx % k) * n + Math.floor(idx / k)]!);
      using c = linalg.matmul(a, b, { transB });
      expect(c.shape).toEqual([m, n]);
      const C = c.toArray();
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          let mag = 0;
          for (let p = 0; p < k; p++) {
            s += A[i * k + p]! * B[j * k + p]!;
            mag += Math.abs(A[i * k + p]! * B[j * k + p]!);
          }
          expect(Math.abs(C[i * n + j]! - s)).toBeLessThanOrEqual(2 * k * 2 ** -24 * mag + 1e-30);
        }
    }
  });
});
