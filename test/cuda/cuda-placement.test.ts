/**
 * Everything runs where its tensors are (docs/OPS.md#state-placement). A K-FAC + LoRA training
 * step (Newton-step clipping at its default, AdamW for the untracked adapters) runs through the
 * same code on the CPU and on the second device: without a GPU that is the CPU loopback (the CPU
 * kernels, nn kernels included, registered under the cuda id), so both runs compute the same
 * float32 operations in the same order and their losses and adapter weights must be identical,
 * bit for bit. The loopback counts host↔device copies: after the first step (which allocates
 * the state) each step uploads its attention mask and downloads K-FAC's two records, and every state tensor (factors, eigenbases, Newton step,
 * SGD momentum, AdamW moments) and every parameter and gradient lives on 'cuda'.
 * On a real GPU every nn op has a cuda kernel: there the device's forward loss must equal the CPU's
 * to float32 summation-order differences.
 */
import { describe, expect, test } from 'vitest';

import { DeviceError, ShapeError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createLlama, loadModel } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import type { DeviceValue } from '../../lib/tensor/device-value.js';
import { Shampoo } from '../../lib/optim/shampoo.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { enableLoopback, gpuStatus } from './parity.mjs';
import { sharedData, skipNote } from '../support/shared-data.js';

const gpu = gpuStatus();
if (!gpu.ok) enableLoopback();
const STORIES = sharedData('llama2c/stories260K.bin');

type Model = Module & { forward(b: unknown): { loss?: number | null; lossValue?: DeviceValue | null }; backward(): void; parameters(): ReturnType<Module['parameters']> };

interface Run {
  losses: number[];
  adapters: Record<string, Float32Array>;
  /** Host↔device copies made by steps 2… (after the state exists). */
  laterTransfers: { uploads: number; downloads: number; uploadBytes: number };
  devices: Set<string>;
}

function batch(B: number, T: number, V: number, seed: number) {
  let s = seed;
  const ids = Int32Array.from({ length: B * T }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % V;
  });
  // one padded position (the mask is uploaded to the device each step, like the ids are read)
  const attentionMask = Float32Array.from({ length: B * T }, (_, i) => (i === B * T - 1 ? 0 : 1));
  return { inputIds: ids, shape: [B, T] as const, labels: ids, attentionMask };
}

const values = (t: Tensor): Float32Array => {
  if (t.device === 'cpu') return t.toArray();
  using h = t.to('cpu');
  return h.toArray();
};

/** `steps` K-FAC + LoRA steps of `make()` on `device`; LoRA on q_proj (K-FAC) and v_proj (AdamW, untracked). */
function train(make: () => Model, device: 'cpu' | 'cuda', vocab: number, steps: number): Run {
  using m = make();
  if (device === 'cuda') m.to('cuda');
  applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
  const layers = kfacLayersForLora(m).filter((l) => l.name.includes('q_proj'));
  const untracked = untrackedParameters(m, layers);
  expect(untracked.length).toBeGreaterThan(0);
  const opt = new KFAC(layers, untracked, { lr: 0.05, momentum: 0.9, inverseEvery: 2 });
  const b = batch(2, 12, vocab, 3);
  const losses: number[] = [];
  let after1 = { uploads: 0, downloads: 0, uploadBytes: 0 };
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    const out = m.forward(b);
    m.backward();
    // the loss stays on the device and rides in K-FAC's step record (no read of its own)
    opt.step({ batchSize: 2, losses: [out.lossValue!] });
    expect(out.lossValue!.pending).toBe(false);
    losses.push(out.loss!);
    if (i === 0 && device === 'cuda' && !gpu.ok) after1 = native()._loopbackTransfers();
  }
  const now = device === 'cuda' && !gpu.ok ? native()._loopbackTransfers() : after1;
  const devices = new Set<string>();
  for (const p of m.parameters()) {
    devices.add(p.tensor.device);
    if (p.grad) devices.add(p.grad.device);
  }
  for (const t of Object.values(opt.stateDict().tensors)) {
    devices.add(t.device);
    t.dispose();
  }
  const adapters: Record<string, Float32Array> = {};
  for (const p of m.parameters()) if (p.name.includes('lora_')) adapters[p.name] = values(p.tensor);
  opt.dispose();
  return { losses, adapters, laterTransfers: { uploads: now.uploads - after1.uploads, downloads: now.downloads - after1.downloads, uploadBytes: now.uploadBytes - after1.uploadBytes }, devices };
}

function sameStep(make: () => Model, vocab: number, steps: number) {
  const cpu = train(make, 'cpu', vocab, steps);
  const dev = train(make, 'cuda', vocab, steps);
  expect(cpu.devices).toEqual(new Set(['cpu']));
  expect(dev.devices).toEqual(new Set(['cuda']));
  expect(cpu.losses.every(Number.isFinite)).toBe(true);
  // the adapters moved: the steps did something to compare
  expect(cpu.losses.at(-1)).not.toBe(cpu.losses[0]);
  expect(dev.losses).toEqual(cpu.losses);
  expect(Object.keys(dev.adapters).sort()).toEqual(Object.keys(cpu.adapters).sort());
  expect(Object.keys(cpu.adapters).length).toBeGreaterThan(0);
  for (const k of Object.keys(cpu.adapters)) expect(dev.adapters[k], k).toEqual(cpu.adapters[k]);
  // after the first step: exactly one upload per step, the [B, T] attention mask (the input),
  // and two downloads, K-FAC's step record (the loss in it) and the record of the untracked
  // (AdamW) update's trust bound; a refresh step
  // (inverseEvery 2: steps counted from 0) reads the step record once more
  const refreshes = Array.from({ length: steps - 1 }, (_, i) => i + 1).filter((s) => s % 2 === 0).length;
  expect(dev.laterTransfers).toEqual({ uploads: steps - 1, downloads: 2 * (steps - 1) + refreshes, uploadBytes: (steps - 1) * 2 * 12 * 4 });
  return { cpu, dev };
}

const tiny = (): Model => createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5 }) as unknown as Model;

describe.skipIf(gpu.ok)('one code path for both devices (CPU loopback as the second device)', () => {
  test('model.to moves every parameter and buffer and back, values unchanged', () => {
    using m = tiny();
    const before = Object.fromEntries(m.parameters().map((p) => [p.name, p.tensor.toArray()]));
    m.to('cuda');
    expect(m.device).toBe('cuda');
    expect(m.parameters().every((p) => p.tensor.device === 'cuda')).toBe(true);
    m.to('cpu');
    for (const p of m.parameters()) expect(p.tensor.toArray(), p.name).toEqual(before[p.name]);
  });

  test('tiny LLaMA: K-FAC + LoRA steps give identical losses and adapters on cpu and cuda, with two downloads per step (the records)', () => {
    sameStep(tiny, 32, 4);
  });

  test.skipIf(STORIES === undefined)(`stories260K: the same K-FAC + LoRA steps on cpu and cuda${skipNote(STORIES, 'llama2c/stories260K.bin')}`, () => {
    const { cpu } = sameStep(() => loadModel(STORIES!) as unknown as Model, 512, 3);
    expect(cpu.losses.length).toBe(3);
  });

  test('t.set on a device tensor is one upload of exactly its values; a wrong size is a ShapeError', () => {
    using t = Tensor.zeros([2, 3], { device: 'cuda' });
    const before = native()._loopbackTransfers();
    t.set(Float32Array.from([1, 2, 3, 4, 5, 6]));
    const after = native()._loopbackTransfers();
    expect([after.uploads - before.uploads, after.uploadBytes - before.uploadBytes, after.downloads - before.downloads]).toEqual([1, 24, 0]);
    expect(Array.from(values(t))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => t.set(new Float32Array(5))).toThrow(ShapeError);
  });

  test('Shampoo/SOAP keep host state: a cuda parameter is a DeviceError naming it', () => {
    using w = Tensor.zeros([3, 2], { device: 'cuda' });
    using g = Tensor.zeros([3, 2], { device: 'cuda' });
    const opt = new Shampoo([{ name: 'w', tensor: w, grad: g }], { lr: 0.1 });
    expect(() => opt.step()).toThrow(DeviceError);
    expect(() => opt.step()).toThrow(/w: Shampoo\/SOAP/);
  });
});

describe.skipIf(!gpu.ok)('on a real GPU the nn ops run on the device', () => {
  // Tolerance as test/cuda/train-check.mjs's step 0: the devices differ only by float32 rounding
  // in other summation orders (cuBLAS vs the CPU GEMM, tiled attention), ≲ 3e-5 relative: 1e-4.
  test('the tiny LLaMA forward on cuda gives the CPU loss', () => {
    using c = tiny();
    const want = c.forward(batch(2, 4, 32, 1)).loss!;
    using m = tiny();
    m.to('cuda');
    const got = m.forward(batch(2, 4, 32, 1)).loss!;
    expect(Number.isFinite(got)).toBe(true);
    expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-4 * Math.abs(want));
  });
});
