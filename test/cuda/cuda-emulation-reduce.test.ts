/**
 * sum_squares_many (native/cuda/nn_reduce_body.h) on the emulated cuda device: every tensor's
 * Σx² in float64 against a JS float64 reference and the CPU kernel, for lists with empty tensors,
 * tensors spanning several chunks and many tensors; on the CPU it equals sumSquares bit for bit.
 * One call makes exactly one download, whatever the number of tensors.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { DeviceError, ops, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import { emulationPossible } from '../support/emulation.js';
import { input } from '../support/nn-helpers.js';

const ref = (a: Float64Array): number => a.reduce((s, v) => s + v * v, 0);

describe('sumSquaresMany on the CPU', () => {
  it('equals sumSquares tensor by tensor, bit for bit', () => {
    const xs = [0, 1, 7, 33, 1000, 65537, 3].map((n, i) => Tensor.from(input(n, 41 + i, 3).f32, [n]));
    expect(ops.sumSquaresMany(xs)).toEqual(xs.map((x) => ops.sumSquares(x)));
    expect(ops.sumSquaresMany([])).toEqual([]);
  });

  it('rejects a non-float32 tensor, naming it', () => {
    const ok = Tensor.zeros([3]);
    const bf = Tensor.zeros([3]).to('cpu', { dtype: 'bfloat16' });
    expect(() => ops.sumSquaresMany([ok, bf])).toThrow(/tensors\[1\]/);
  });
});

describe.skipIf(!emulationPossible())('sumSquaresMany on the emulated cuda device', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each([
    ['odd sizes with empty tensors', [0, 1, 7, 33, 0, 129, 1000]],
    ['tensors spanning several chunks', [16384, 16385, 3 * 16384 + 7, 5]],
    ['many small tensors', Array.from({ length: 300 }, (_, i) => (i * 37) % 91)],
  ])('%s: float64 reference and the CPU, one download', (_, sizes) => {
    const xs = sizes.map((n, i) => input(n, 1000 + i, 2));
    const host = xs.map((x, i) => Tensor.from(x.f32, [sizes[i]!]));
    const dev = host.map((t) => t.to('cuda'));
    const before = native()._loopbackTransfers();
    const got = ops.sumSquaresMany(dev);
    const after = native()._loopbackTransfers();
    expect(after.downloads - before.downloads).toBe(sizes.some((n) => n > 0) ? 1 : 0);
    const cpu = ops.sumSquaresMany(host);
    expect(got).toHaveLength(sizes.length);
    got.forEach((v, i) => {
      const r = ref(xs[i]!.f64);
      expect(Math.abs(v - r), `tensor ${i} (n = ${sizes[i]}) vs float64`).toBeLessThanOrEqual(1e-12 * (r + 1));
      expect(Math.abs(v - cpu[i]!), `tensor ${i} vs cpu`).toBeLessThanOrEqual(1e-12 * (r + 1));
    });
  });

  it('names a tensor on another device', () => {
    const d = Tensor.zeros([3]).to('cuda');
    expect(() => ops.sumSquaresMany([d, Tensor.zeros([3])])).toThrow(DeviceError);
    expect(() => ops.sumSquaresMany([d, Tensor.zeros([3])])).toThrow(/tensors\[1\]/);
  });
});
