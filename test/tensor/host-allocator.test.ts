/** The caching allocator of host tensor storage: reuse, bounds, release, and no stale reads. */
import { afterAll, describe, expect, it } from 'vitest';

import { info, InvalidArgumentError, linalg, OutOfMemoryError, releaseCachedMemory, setHostCacheLimit, Tensor } from '../../lib/index.js';
import { randomF32, refGemm, worstRelative } from '../support/helpers.js';

const mem = () => info().memory;

describe('host caching allocator', () => {
  afterAll(() => setHostCacheLimit(256 * 2 ** 20));

  it('serves a freed block of the same size class again without asking the system', () => {
    setHostCacheLimit(256 * 2 ** 20);
    Tensor.zeros([1000, 37]).dispose(); // lands in the cache
    const before = mem();
    const t = Tensor.zeros([1000, 37]);
    const after = mem();
    expect(after.cacheHits).toBe(before.cacheHits + 1);
    expect(after.systemAllocations).toBe(before.systemAllocations);
    expect(after.allocatedBytes).toBeGreaterThanOrEqual(before.allocatedBytes + 1000 * 37 * 4);
    t.dispose();
    expect(mem().cachedBytes).toBeGreaterThanOrEqual(1000 * 37 * 4);
  });

  it('releaseCachedMemory returns every cached byte to the system', () => {
    Tensor.zeros([512, 512]).dispose();
    const cached = mem().cachedBytes;
    expect(cached).toBeGreaterThan(0);
    expect(releaseCachedMemory()).toBe(cached);
    expect(mem().cachedBytes).toBe(0);
    const hits = mem().cacheHits;
    Tensor.zeros([512, 512]).dispose();
    expect(mem().cacheHits).toBe(hits); // nothing left to reuse
  });

  it('keeps the cache within its bound (0 disables it)', () => {
    setHostCacheLimit(0);
    expect(mem().cachedBytes).toBe(0);
    Tensor.zeros([300, 300]).dispose();
    expect(mem().cachedBytes).toBe(0);
    setHostCacheLimit(1 << 20);
    for (let i = 0; i < 6; i++) Tensor.zeros([300, 300]).dispose(); // 360 KB each, one cached block
    const ts = Array.from({ length: 6 }, () => Tensor.zeros([300, 300]));
    for (const t of ts) t.dispose();
    expect(mem().cachedBytes).toBeLessThanOrEqual(1 << 20);
    expect(mem().cachedBytes).toBeGreaterThan(0);
  });

  it('a reused block full of NaN never leaks into a new output (β = 0 writes every element)', () => {
    setHostCacheLimit(256 * 2 ** 20);
    for (const [m, n, k] of [[33, 65, 17], [128, 96, 64]] as const) {
      const poison = Tensor.from(new Float32Array(m * n).fill(Number.NaN), [m, n]);
      poison.dispose();
      const a = randomF32(m * k, 1);
      const b = randomF32(k * n, 2);
      using ta = Tensor.from(a, [m, k]);
      using tb = Tensor.from(b, [k, n]);
      using c = linalg.matmul(ta, tb);
      const ref = refGemm(a, b, undefined, m, n, k, false, false, 1, 0);
      expect(worstRelative(c.toArray(), ref.c, ref.mag, 1e-5)).toBeLessThanOrEqual(1);
    }
  });

  it('bad input is a typed error', () => {
    expect(() => setHostCacheLimit(-1)).toThrow(InvalidArgumentError);
    expect(() => Tensor.zeros([1 << 20, 1 << 20, 64])).toThrow(OutOfMemoryError);
  });
});
