/**
 * LayerNorm and RMSNorm input gradients on every CPU kernel this machine runs: the AVX-512 row
 * sums (sixteen columns per step, masked tails) against the portable ones on odd widths, 1 and
 * 2 threads. The portable path itself is checked against finite differences in
 * test/nn/nn-norm-act.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { nn, setCpuKernel, setNumThreads, Tensor } from '../../lib/index.js';
import { randomF32 } from '../support/helpers.js';
import { KERNELS, recordKernel } from '../support/isa.js';

const F = nn.functional;
const WIDTHS = [1, 7, 16, 17, 33, 100, 515];

function grads(N: number, C: number): Float32Array[] {
  using x = Tensor.from(randomF32(N * C, C), [N, C]);
  using w = Tensor.from(randomF32(C, C + 1), [C]);
  using b = Tensor.from(randomF32(C, C + 2), [C]);
  using g = Tensor.from(randomF32(N * C, C + 3), [N, C]);
  using out = Tensor.empty([N, C]);
  using mean = Tensor.empty([N]);
  using rstd = Tensor.empty([N]);
  using dx = Tensor.empty([N, C]);
  using rdx = Tensor.empty([N, C]);
  F.layerNormForward(x, w, b, 1e-5, out, mean, rstd);
  F.layerNormBackward(x, w, mean, rstd, g, { dx, dw: null, db: null });
  F.rmsNormForward(x, w, 1e-6, out, rstd);
  F.rmsNormBackward(x, w, rstd, g, { dx: rdx, dw: null });
  return [dx.toArray(), rdx.toArray()];
}

describe('norm input gradients across kernels', () => {
  afterAll(() => {
    setCpuKernel('auto');
    setNumThreads(0);
  });
  const N = 5;
  const reference = (() => {
    setCpuKernel('generic');
    const r = WIDTHS.map((C) => grads(N, C));
    setCpuKernel('auto');
    return r;
  })();

  for (const k of KERNELS)
    it.skipIf(!k.available)(`${k.name}${k.skip}: LayerNorm and RMSNorm dx match the portable path`, () => {
      setCpuKernel(k.name);
      for (const threads of [1, 2]) {
        setNumThreads(threads);
        WIDTHS.forEach((C, i) => {
          const got = grads(N, C);
          for (let which = 0; which < 2; which++) {
            const want = reference[i]![which]!;
            const scale = Math.max(...Array.from(want, Math.abs));
            got[which]!.forEach((v, e) => expect(Math.abs(v - want[e]!)).toBeLessThanOrEqual(1e-6 * scale));
          }
        });
      }
      recordKernel('norm backward', k.name, '1 and 2 threads');
    });
});
