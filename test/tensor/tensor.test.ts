import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { DisposedError, InvalidArgumentError, KfacError, ShapeError, Tensor } from '../../lib/index.js';
import { native, nativePath } from '../../lib/native/loader.js';

native(); // loaded, so nativePath() names the addon file

describe('Tensor', () => {
  it('round-trips a Float32Array with one shape', () => {
    const data = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const t = Tensor.from(data, [2, 3]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.device).toBe('cpu');
    expect(t.size).toBe(6);
    expect(t.nbytes).toBe(24);
    expect(Array.from(t.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    data[0] = 99; // the tensor holds its own copy
    expect(t.toArray()[0]).toBe(1);
    t.dispose();
  });

  it('infers shapes from nested arrays and rejects ragged ones', () => {
    const t = Tensor.from([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.toNested()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(() => Tensor.from([[1, 2], [3]])).toThrow(ShapeError);
    expect(() => Tensor.from([[1, 2], 3] as never)).toThrow(ShapeError);
    expect(() => Tensor.from(['a'] as never)).toThrow(InvalidArgumentError);
    expect(Tensor.from(5).shape).toEqual([]);
  });

  it('checks that data and shape agree', () => {
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrow(ShapeError);
    expect(() => Tensor.from(new Float64Array(6) as never, [2, 3])).toThrow(InvalidArgumentError);
    for (const bad of [[-1], [1.5], [NaN], ['2'], [1, 1, 1, 1, 1, 1, 1, 1, 1], 7]) {
      expect(() => Tensor.zeros(bad as never)).toThrow(ShapeError);
    }
  });

  it('refuses absurd sizes with a typed error instead of allocating', () => {
    let err: unknown;
    try {
      Tensor.zeros([1e9, 1e9]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KfacError);
    expect((err as KfacError).code).toBe('ERR_OUT_OF_MEMORY');
  });

  it('makes zeros, full, and empty tensors of any rank including 0-sized', () => {
    expect(Array.from(Tensor.zeros([3]).toArray())).toEqual([0, 0, 0]);
    expect(Array.from(Tensor.full([2, 2], 1.5).toArray())).toEqual([1.5, 1.5, 1.5, 1.5]);
    const e = Tensor.zeros([0, 5]);
    expect(e.size).toBe(0);
    expect(e.toArray().length).toBe(0);
  });

  it('randn is seeded, deterministic and standard normal', () => {
    const a = Tensor.randn([100_001], { seed: 42 }).toArray();
    const b = Tensor.randn([100_001], { seed: 42 }).toArray();
    const c = Tensor.randn([100_001], { seed: 43 }).toArray();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    let s = 0;
    let s2 = 0;
    for (const v of a) {
      s += v;
      s2 += v * v;
    }
    const mean = s / a.length;
    const sd = Math.sqrt(s2 / a.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(sd - 1)).toBeLessThan(0.01);
    const shifted = Tensor.randn([1000], { seed: 1, mean: 3, std: 0.5 }).toArray();
    expect(shifted.reduce((x, y) => x + y, 0) / 1000).toBeCloseTo(3, 1);
    expect(() => Tensor.randn([2], { seed: -1 })).toThrow(InvalidArgumentError);
    expect(() => Tensor.randn([2], { std: -1 })).toThrow(InvalidArgumentError);
  });

  it('rand stays inside [low, high)', () => {
    const u = Tensor.rand([50_000], { seed: 7, low: -2, high: 3 }).toArray();
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of u) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(-2);
    expect(hi).toBeLessThan(3);
    expect(hi - lo).toBeGreaterThan(4.9);
    expect(() => Tensor.rand([2], { low: 1, high: 1 })).toThrow(InvalidArgumentError);
  });

  it('dispose is idempotent and later use throws DisposedError', () => {
    const t = Tensor.zeros([4]);
    t.dispose();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(t.nbytes).toBe(0);
    expect(() => t.toArray()).toThrow(DisposedError);
    expect(() => t.dtype).toThrow(DisposedError);
    expect(String(t)).toBe('Tensor(disposed)');
  });

  it('supports `using` through Symbol.dispose', () => {
    let kept: Tensor | undefined;
    {
      using t = Tensor.zeros([2]);
      kept = t;
      expect(kept.disposed).toBe(false);
    }
    expect(kept.disposed).toBe(true);
  });

  it('reshape shares memory, clone copies it, set overwrites it', () => {
    const t = Tensor.from(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const r = t.reshape([3, 2]);
    expect(r.shape).toEqual([3, 2]);
    const c = t.clone();
    t.set(Float32Array.from([6, 5, 4, 3, 2, 1]));
    expect(Array.from(r.toArray())).toEqual([6, 5, 4, 3, 2, 1]);
    expect(Array.from(c.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => t.reshape([4, 2])).toThrow(ShapeError);
    expect(() => t.set(new Float32Array(5))).toThrow(ShapeError);
  });

  it('finalizers free unreferenced tensors: the native bytes and the resident memory go back down', () => {
    // A child with --expose-gc so collection is forced: 256 tensors of 1 MiB are made, dropped
    // and collected. A FinalizationRegistry counts the handles collected; the allocator's live
    // bytes must fall by the tensors' bytes, and once its cache of freed blocks is released the
    // resident set must fall too (zeros writes them, so they were resident).
    const script = `
      const addon = require(process.argv[1]);
      const settle = async () => { for (let i = 0; i < 6; i++) { global.gc(); await new Promise((r) => setImmediate(r)); } };
      let collected = 0;
      const registry = new FinalizationRegistry(() => collected++);
      (async () => {
        await settle();
        addon.releaseCachedMemory();
        const base = process.memoryUsage();
        let held = [];
        for (let i = 0; i < 256; i++) {
          held.push(addon.NativeTensor.zeros([256, 1024]));
          registry.register(held[i], i);
        }
        const peak = process.memoryUsage();
        const peakLive = addon.info().memory.allocatedBytes;
        held = null;
        await settle();
        const afterLive = addon.info().memory.allocatedBytes;
        addon.releaseCachedMemory();
        const after = process.memoryUsage();
        process.stdout.write(JSON.stringify({ base, peak, after, collected, peakLive, afterLive }));
      })();`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script, nativePath()!], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    type Usage = { rss: number };
    const out = JSON.parse(r.stdout) as { base: Usage; peak: Usage; after: Usage; collected: number; peakLive: number; afterLive: number };
    const MiB = 2 ** 20;
    expect(out.collected).toBe(256); // every handle was collected
    expect((out.peakLive - out.afterLive) / MiB).toBeGreaterThanOrEqual(256); // their native bytes were freed
    // The resident set is only meaningful without AddressSanitizer, whose quarantine keeps freed
    // memory resident by design (the sanitizer run preloads it: docs/ROBUSTNESS.md).
    if (process.env['LD_PRELOAD']?.includes('libasan')) return;
    expect((out.peak.rss - out.base.rss) / MiB).toBeGreaterThan(200); // the 256 MiB were resident
    expect((out.peak.rss - out.after.rss) / MiB).toBeGreaterThan(200); // and went back to the system
  });

  it('places tensors by { device, dtype } and converts with to(); bad placements are typed errors', () => {
    const t = Tensor.from([1.00390625, -2, 3.5], [3]);
    const same = t.to('cpu');
    expect(same).not.toBe(t); // always a copy
    same.set(Float32Array.from([0, 0, 0]));
    expect(Array.from(t.toArray())).toEqual([1.00390625, -2, 3.5]);
    const b = t.to('cpu', { dtype: 'bfloat16' });
    expect(b.dtype).toBe('bfloat16');
    expect(b.nbytes).toBe(6);
    expect(Array.from(b.toArray())).toEqual([1, -2, 3.5]); // host reads widen bfloat16 exactly
    expect(Array.from(b.to('cpu', { dtype: 'float32' }).toArray())).toEqual([1, -2, 3.5]); // rounded to bf16
    expect(Tensor.zeros([2, 2], { device: 'cpu' }).device).toBe('cpu');
    expect(Tensor.zeros([2], { dtype: 'bfloat16' }).dtype).toBe('bfloat16');
    expect(() => Tensor.zeros([2], { device: 'tpu' as never })).toThrow(/device: expected 'cpu' or 'cuda'/);
    expect(() => t.to('cpu', { dtype: 'float64' as never })).toThrow(InvalidArgumentError);
    t.dispose();
    expect(() => t.to('cpu')).toThrow(DisposedError);
  });
});
