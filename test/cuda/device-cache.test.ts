/**
 * The caching device allocator (native/core/device_cache.h) on the host-backed cuda device: the
 * same allocator code that serves cudaMalloc/cudaFree on a GPU, here over counted host blocks
 * (native/core/emulated_memory.h) that can be given a limit. Checks: no two live tensors overlap
 * on random alloc/free sequences (sentinel patterns) and the statistics follow a model of the
 * blocks; a freed segment merges back whole; an allocation that fails empties the cache and is
 * retried once, and then is a typed OutOfMemoryError naming the bytes; repeated K-FAC steps of a
 * tiny LLaMA stop asking the device for memory; caching off is one raw allocation per tensor.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, test } from 'vitest';

import * as cuda from '../../lib/cuda/index.js';
import { OutOfMemoryError } from '../../lib/errors.js';
import * as linalg from '../../lib/linalg/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { captureBlockwise, checkDeviceFits, createLlama } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { emulationPossible } from '../support/emulation.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MiB = 2 ** 20;
const round = (bytes: number): number => Math.max(512, Math.ceil(bytes / 512) * 512);
const stats = () => cuda.memory()!;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Model = Module & { forward(b: unknown): { loss?: number | null }; backward(): void };

/**
 * `steps` K-FAC + LoRA steps of a tiny LLaMA on the cuda device, with gradient checkpointing (each
 * block's activations are freed after the forward and allocated again in the backward: the
 * steady-state allocations of a step); losses and the allocator's counts after each step.
 */
function train(steps: number): { losses: number[]; raw: number[]; allocations: number[] } {
  using m = createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5, checkpointing: true }) as unknown as Model;
  m.to('cuda');
  applyLora(m, { targetModules: ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'], r: 4, alpha: 8 });
  const layers = kfacLayersForLora(m);
  const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2 });
  captureBlockwise(m as never, opt);
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 7 + 3) % 32);
  const b = { inputIds: ids, shape: [2, 12] as const, labels: ids };
  const out = { losses: [] as number[], raw: [] as number[], allocations: [] as number[] };
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    out.losses.push(m.forward(b).loss!);
    m.backward();
    opt.step({ batchSize: 2 });
    const s = stats();
    out.raw.push(s.rawAllocations);
    out.allocations.push(s.allocations);
  }
  opt.dispose();
  return out;
}

describe.skipIf(!emulationPossible())('caching device allocator (host-backed cuda device)', () => {
  beforeAll(() => native()._cudaEmulation());

  test('random alloc/free: live tensors never overlap, statistics follow the blocks, freed segments merge back whole', () => {
    const s0 = stats();
    expect(s0.caching).toBe(true);
    expect(s0.allocated).toBe(0); // a fresh process: nothing on the device yet
    const next = rng(12345);
    const live = new Map<number, { t: Tensor; n: number }>();
    let id = 0, maxAllocated = 0, allocs = 0;
    const sizeOf = (): number => {
      const r = next();
      if (r < 0.7) return 1 + Math.floor(next() * 3000); // small pool (≤ 12 KB)
      if (r < 0.95) return 1 + Math.floor(next() * 400_000); // up to 1.6 MB: both pools
      return 2_600_000 + Math.floor(next() * 1_000_000); // 10-14 MB: own large segments
    };
    const check = (): void => {
      for (const [k, { t, n }] of live) {
        const a = t.to('cpu').toArray();
        expect(a.length).toBe(n);
        let bad = -1;
        for (let i = 0; i < n; i++) if (a[i] !== k) { bad = i; break; }
        expect(bad, `tensor ${k} (${n} floats) was overwritten at ${bad}`).toBe(-1);
      }
      const s = stats();
      let rounded = 0, asked = 0, large = 0;
      for (const { n } of live.values()) {
        rounded += round(4 * n);
        asked += 4 * n;
        if (round(4 * n) > MiB) large++;
      }
      // a block is its rounded request, except that a large-pool block keeps a rest of ≤ 1 MiB unsplit
      expect(s.allocated).toBeGreaterThanOrEqual(rounded);
      expect(s.allocated - rounded).toBeLessThanOrEqual(large * MiB);
      expect(s.requested).toBe(asked);
      expect(s.liveBlocks).toBe(live.size);
      expect(s.cached).toBe(s.reserved - s.allocated);
      expect(s.reserved).toBeGreaterThanOrEqual(s.allocated);
      expect(s.peak).toBeGreaterThanOrEqual(maxAllocated);
      expect(s.peakReserved).toBeGreaterThanOrEqual(s.reserved);
      expect(native()._emulatedMemory().liveBytes).toBe(s.reserved); // the raw allocator holds exactly the segments
    };
    for (let step = 0; step < 400; step++) {
      if (live.size > 0 && next() < 0.45) {
        const keys = [...live.keys()];
        const k = keys[Math.floor(next() * keys.length)]!;
        live.get(k)!.t.dispose();
        live.delete(k);
      } else {
        const n = sizeOf();
        const k = ++id;
        live.set(k, { t: Tensor.full([n], k, { device: 'cuda' }), n });
        allocs++;
        let a = 0;
        for (const v of live.values()) a += round(4 * v.n);
        maxAllocated = Math.max(maxAllocated, a);
      }
      if (step % 100 === 99) check();
    }
    check();
    const s1 = stats();
    expect(s1.allocations - s0.allocations).toBeGreaterThanOrEqual(allocs);
    expect(s1.cacheHits).toBeGreaterThan(allocs / 2); // most requests were served from the cache
    expect(s1.rawAllocations).toBeLessThan(allocs / 4);
    for (const { t } of live.values()) t.dispose();
    live.clear();
    const s2 = stats();
    expect(s2.allocated).toBe(0);
    expect(s2.cached).toBe(s2.reserved);
    // every block merged back into whole segments: emptying the cache gives every byte back
    expect(cuda.emptyCache()).toBe(s2.reserved);
    expect(stats().reserved).toBe(0);
    expect(native()._emulatedMemory().liveBytes).toBe(0);
  });

  test('a failed device allocation empties the cache and retries once; then OutOfMemoryError names bytes, free, reserved and cached', () => {
    cuda.emptyCache();
    const base = native()._emulatedMemory().liveBytes;
    native()._emulatedMemory(base + 24 * MiB);
    try {
      const x = Tensor.zeros([4 * MiB], { device: 'cuda' }); // 16 MiB: a segment of its own
      x.dispose(); // cached, not given back
      expect(stats().cached).toBeGreaterThanOrEqual(16 * MiB);
      const before = stats();
      const y = Tensor.zeros([5 * MiB], { device: 'cuda' }); // 20 MiB: fits only once the 16 MiB are given back
      const after = stats();
      expect(after.retries - before.retries).toBe(1);
      expect(after.rawFrees - before.rawFrees).toBe(1);
      expect(y.to('cpu').toArray()[5 * MiB - 1]).toBe(0);
      let err: unknown = null;
      try {
        Tensor.zeros([2 * MiB], { device: 'cuda' }); // 8 MiB → a 20 MiB segment: past the limit, nothing to give back
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(OutOfMemoryError);
      const msg = (err as Error).message;
      expect(msg).toContain(`asked for ${8 * MiB} bytes`);
      expect(msg).toMatch(/\d+ of \d+ bytes free on the device/);
      expect(msg).toContain(`${stats().reserved} bytes reserved`);
      expect(msg).toMatch(/\d+ allocated and \d+ cached/);
      expect(stats().ooms - after.ooms).toBe(1);
      expect(stats().retries).toBe(after.retries); // nothing was cached: no second retry
      // an op that allocates inside its call says which op was allocating (its JS name)
      {
        using a = Tensor.zeros([2048, 1], { device: 'cuda' });
        using b = Tensor.zeros([1, 1024], { device: 'cuda' });
        let opErr: unknown = null;
        try {
          linalg.matmul(a, b); // its 8 MiB result: past the limit
        } catch (e) {
          opErr = e;
        }
        expect(opErr).toBeInstanceOf(OutOfMemoryError);
        expect((opErr as Error).message).toMatch(new RegExp(`^matmul: .*out of memory: asked for ${8 * MiB} bytes`));
      }
      y.dispose();
      // the device works again once memory is back
      using z = Tensor.full([2 * MiB], 3, { device: 'cuda' });
      expect(z.to('cpu').toArray()[7]).toBe(3);
    } finally {
      native()._emulatedMemory(0);
    }
  });

  test('repeated K-FAC steps of a tiny LLaMA stop asking the device for memory; caching off asks on every tensor and gives the same losses', () => {
    cuda.emptyCache();
    const on = train(7);
    const perStep = on.allocations[6]! - on.allocations[5]!;
    expect(perStep).toBeGreaterThan(20); // a checkpointed step allocates and frees its blocks' activations
    // after the first steps (one of each kind: with and without a decomposition) nothing new is asked
    expect(on.raw[6]).toBe(on.raw[3]);
    const was = native()._setDeviceCaching(false);
    expect(was).toBe(true);
    try {
      cuda.emptyCache();
      const off = train(7);
      const offPerStep = off.allocations[6]! - off.allocations[5]!;
      console.log(`tensor allocations per checkpointed step: ${perStep}; raw device allocations per step: caching on ${on.raw[6]! - on.raw[5]!}, off ${off.raw[6]! - off.raw[5]!}`);
      expect(off.raw[6]! - off.raw[5]!).toBe(offPerStep); // one raw allocation per tensor
      expect(stats().caching).toBe(false);
      expect(off.losses).toEqual(on.losses); // the same kernels on the same values, bit for bit
    } finally {
      native()._setDeviceCaching(true);
    }
    expect(stats().caching).toBe(true);
  });

  test('the loading pre-check counts cached bytes as available (they are given back before an allocation fails)', () => {
    expect(() => checkDeviceFits('loading m', 100, { free: 50, total: 200, cached: 60 })).not.toThrow();
    expect(() => checkDeviceFits('loading m', 100, { free: 50, total: 200, cached: 10 })).toThrow(OutOfMemoryError);
    expect(() => checkDeviceFits('loading m', 100, { free: 50, total: 200, cached: 10 })).toThrow(/50 bytes .* are free, and 10 bytes .* cached for reuse/);
  });

  test('threads sharing one allocator never get overlapping blocks, and every byte comes back', () => {
    const r = native()._deviceCacheThreads(4, 2000);
    expect(r.overwritten).toBe(0);
    expect(r.allocations).toBeGreaterThan(4 * 600);
    expect(r.allocated).toBe(0);
    expect(r.released).toBe(r.reserved); // all blocks merged back into whole segments
  });

  test('free blocks are kept per stream: a block freed on one stream is reused on that stream only', () => {
    for (const bytes of [1000, 3 * MiB]) {
      expect(native()._deviceCacheStreams(bytes)).toEqual({ otherStreamReused: false, sameStreamReused: true, rawAllocations: 2 });
    }
  });

  test('KFAC_CUDA_CACHING=0 turns caching off for the process: the plain path', () => {
    const script = `
      import { native } from './dist/native/loader.js';
      import * as cuda from './dist/cuda/index.js';
      import { Tensor } from './dist/tensor/tensor.js';
      native()._cudaEmulation();
      const a = Tensor.zeros([1000], { device: 'cuda' });
      a.dispose();
      const b = Tensor.zeros([1000], { device: 'cuda' });
      const m = cuda.memory();
      console.log(JSON.stringify({ caching: m.caching, raw: m.rawAllocations, frees: m.rawFrees, reserved: m.reserved, allocated: m.allocated }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, KFAC_CUDA_CACHING: '0' } });
    expect(r.stderr).toBe('');
    const o = JSON.parse(r.stdout.trim()) as { caching: boolean; raw: number; frees: number; reserved: number; allocated: number };
    // two tensors, two raw allocations of exactly their bytes, the first given back at once
    expect(o).toEqual({ caching: false, raw: 2, frees: 1, reserved: 4000, allocated: 4000 });
  });
});
