/**
 * T5 loaded straight to the device (`loadModel(path, { device: 'cuda' })`), under the CUDA
 * emulation: every weight is made on the device and filled one checkpoint tensor at a time, the
 * values equal a CPU load bit for bit, the device pre-check refuses a checkpoint larger than the
 * free device memory before anything is allocated, and K-FAC + LoRA steps on the loaded model
 * follow the CPU's.
 *
 * Tolerance: as test/cuda/cuda-emulation-train.test.ts argues (the emulated kernels differ from
 * the CPU's only in float32 rounding: libm exp, tree sums in double): losses to 1e-6 relative,
 * the adapters (max |Δ| / max |value| per tensor) to 2e-5 after two steps.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, test } from 'vitest';

import { emptyCache } from '../../lib/cuda/index.js';
import { OutOfMemoryError } from '../../lib/errors.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { loadModel, type T5Model } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'models', 't5-v1_1');
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { inputIds: number[][]; attentionMask: number[][]; labels: number[][] };
const host = (t: Tensor): Float32Array => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());

type Loaded = T5Model & Disposable;

describe.skipIf(!emulationPossible())('T5 loaded straight to the device (CUDA emulation)', () => {
  beforeAll(() => native()._cudaEmulation());

  test('every weight on the device, equal to a CPU load, uploaded tensor by tensor', () => {
    using cpu = loadModel(DIR) as unknown as Loaded;
    const before = native()._loopbackTransfers();
    using dev = loadModel(DIR, { device: 'cuda' }) as unknown as Loaded;
    const after = native()._loopbackTransfers();
    const cp = new Map(cpu.parameters().map((p) => [p.name, p.tensor]));
    let bytes = 0;
    for (const p of dev.parameters()) {
      expect(p.tensor.device, p.name).toBe('cuda');
      expect(Buffer.from(host(p.tensor).buffer).equals(Buffer.from(cp.get(p.name)!.toArray().buffer)), p.name).toBe(true);
      bytes += p.tensor.nbytes;
    }
    expect(dev.parameters().length).toBe(cp.size);
    // at least one upload per loaded tensor, and every weight byte crossed
    const loaded = (dev as unknown as { loadReport: { loaded: string[] } }).loadReport.loaded.length;
    expect(after.uploads - before.uploads).toBeGreaterThanOrEqual(loaded);
    expect(after.uploadBytes - before.uploadBytes).toBeGreaterThanOrEqual(bytes);
  });

  test('a checkpoint larger than the free device memory: OutOfMemoryError before anything is allocated', () => {
    emptyCache(); // what the previous test left cached would count as available
    const m0 = native()._emulatedMemory();
    native()._emulatedMemory(m0.liveBytes + 64 * 1024);
    try {
      const raw = native()._emulatedMemory().allocations;
      let err: unknown = null;
      try {
        loadModel(DIR, { device: 'cuda' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(OutOfMemoryError);
      expect((err as Error).message).toMatch(/loading .*t5-v1_1 needs at least \d+ bytes .* of device memory; \d+ bytes .* are free/);
      expect((err as OutOfMemoryError).hint).toMatch(/gradient-checkpointing/);
      expect(native()._emulatedMemory().allocations).toBe(raw);
    } finally {
      native()._emulatedMemory(0);
    }
  });

  test('K-FAC + LoRA on the loaded T5: two steps follow the CPU (losses 1e-6, adapters 2e-5)', () => {
    const run = (device: 'cpu' | 'cuda') => {
      using m = loadModel(DIR, { device }) as unknown as Loaded;
      applyLora(m, { targetModules: ['q', 'v', 'wo'], r: 2, alpha: 4, seed: 1 });
      const layers = kfacLayersForLora(m);
      // λ = 1e-3, the damping these bounds were set at (the gain 1/λ scales the kernels' rounding differences)
      const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, damping: 1e-3, inverseEvery: 1 });
      const batch = { inputIds: Int32Array.from(exp.inputIds.flat()), shape: [2, 7] as [number, number], attentionMask: Float32Array.from(exp.attentionMask.flat()), labels: Int32Array.from(exp.labels.flat()) };
      const losses: number[] = [];
      for (let i = 0; i < 2; i++) {
        m.zeroGrad();
        losses.push(m.forward(batch).loss!);
        m.backward();
        opt.step({ batchSize: 2 });
      }
      opt.dispose();
      const adapters = new Map(m.parameters().filter((p) => p.name.includes('lora_')).map((p) => [p.name, host(p.tensor)]));
      return { losses, adapters };
    };
    const c = run('cpu'), e = run('cuda');
    expect(c.losses.every(Number.isFinite)).toBe(true);
    for (let i = 0; i < 2; i++) expect(Math.abs(e.losses[i]! - c.losses[i]!) / Math.abs(c.losses[i]!)).toBeLessThan(1e-6);
    expect(c.adapters.size).toBeGreaterThan(0);
    let worst = 0, moved = 0;
    for (const [name, a] of c.adapters) {
      worst = Math.max(worst, maxRel(e.adapters.get(name)!, a));
      if (name.includes('lora_B')) moved = Math.max(moved, Math.max(...Array.from(a, Math.abs)));
    }
    expect(moved).toBeGreaterThan(0); // the steps moved the adapters (B starts at zero)
    expect(worst).toBeLessThan(2e-5);
  });
});
