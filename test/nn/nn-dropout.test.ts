/**
 * Dropout's mask on every CPU kernel this machine runs: the AVX-512 path (sixteen lanes of the
 * counter-based hash) must give the very mask of the portable path, bit for bit, on odd sizes
 * (tails), with 1 and 2 threads; and the kept values are x/(1 − p) exactly.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { nn, setCpuKernel, setNumThreads, Tensor } from '../../lib/index.js';
import { randomF32 } from '../support/helpers.js';
import { KERNELS, recordKernel } from '../support/isa.js';

const F = nn.functional;

function drop(n: number, p: number, seed: number): Float32Array {
  using x = Tensor.from(randomF32(n, n + 1), [n]);
  using out = Tensor.empty([n]);
  out.set(new Float32Array(n).fill(NaN)); // poisoned: an unwritten element shows
  F.dropoutForward(x, out, p, seed);
  return out.toArray();
}

describe('dropout mask across kernels', () => {
  afterAll(() => {
    setCpuKernel('auto');
    setNumThreads(0);
  });
  const sizes = [1, 15, 16, 17, 33, 1000, 40_001];
  const reference = (() => {
    setCpuKernel('generic');
    const r = sizes.map((n) => [0.1, 0.5].map((p) => drop(n, p, 12345 + n)));
    setCpuKernel('auto');
    return r;
  })();

  for (const k of KERNELS)
    it.skipIf(!k.available)(`${k.name}${k.skip}: the same mask and values as the portable path`, () => {
      setCpuKernel(k.name);
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        sizes.forEach((n, i) =>
          [0.1, 0.5].forEach((p, j) => {
            const got = drop(n, p, 12345 + n);
            expect(Array.from(got)).toEqual(Array.from(reference[i]![j]!));
            const x = randomF32(n, n + 1);
            let kept = 0;
            for (let e = 0; e < n; e++)
              if (got[e] !== 0) {
                kept++;
                expect(got[e]).toBe(Math.fround(x[e]! * Math.fround(1 / (1 - p))));
              }
            if (n >= 1000) expect(Math.abs(kept / n - (1 - p))).toBeLessThan(0.05);
          }),
        );
      }
      recordKernel('dropout', k.name, '1 and 2 threads');
    });
});
