/**
 * A K-FAC + LoRA training step of a tiny LLaMA (RMSNorm, RoPE, SwiGLU, GQA attention, tied
 * cross-entropy) on the CUDA emulation: every nn op (attention included) runs the CUDA kernels' bodies
 * and adapters on the host, the rest of the step (K-FAC, AdamW, clipping) the CPU kernels on the
 * same host memory. Its losses must follow the CPU's.
 *
 * Tolerance: the emulated kernels differ from the CPU ones only in float32 rounding — libm
 * expf/erff instead of the CPU's polynomial exp (a few ulp), tree instead of sequential sums in
 * double (≈1e-16 relative), GEMMs through the same CPU sgemm. Measured on this suite: losses agree
 * to ≤ 6e-9 relative and the adapters (max |Δ| / max |value| per tensor) to 1.1e-6 after three
 * steps. We allow 1e-6 on the losses and 2e-5 on the adapters (≥ 17× the measured noise). A
 * kernel error is far larger: with the SwiGLU gate derivative's (1 + x(1 − σ)) factor dropped the
 * adapters differ by 2.4e-3, with RMSNorm's dx scaled by 1.01 by 5.4e-3 (≥ 100× the bound); the
 * losses alone would not tell (3e-7 and 3.5e-6), so the adapters are what this test asserts on.
 * LoRA sits on v/o/up/down: q_proj's adapter gradient is ~1e-11 at this initialisation (noise
 * that K-FAC's preconditioning would scale up), which no tolerance could compare.
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createLlama } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import type { DeviceValue } from '../../lib/tensor/device-value.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';

type Model = Module & { forward(b: unknown): { loss?: number | null; lossValue?: DeviceValue | null }; backward(): void };

function batch(B: number, T: number, V: number, seed: number) {
  let s = seed;
  const ids = Int32Array.from({ length: B * T }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % V;
  });
  const labels = Int32Array.from(ids, (v, i) => (i % 5 === 0 ? -100 : v)); // some ignored positions
  return { inputIds: ids, shape: [B, T] as const, labels, attentionMask: Float32Array.from({ length: B * T }, (_, i) => (i === B * T - 1 ? 0 : 1)) };
}

function run(device: 'cpu' | 'cuda', steps: number, method: 'eigen' | 'ekfac' = 'eigen'): { losses: number[]; adapters: Map<string, Float32Array>; crossings: { uploads: number; downloads: number; uploadBytes: number } } {
  using m = createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5 }) as unknown as Model;
  if (device === 'cuda') m.to('cuda');
  applyLora(m, { targetModules: ['v_proj', 'o_proj', 'up_proj', 'down_proj'], r: 4, alpha: 8 });
  const layers = kfacLayersForLora(m).filter((l) => !l.name.includes('v_proj'));
  // λ = 1e-3 (not the default 1e-4): the bounds below were argued at this damping, and the damped
  // step's gain 1/λ scales how far the kernels' float32 rounding differences grow over the steps
  const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, damping: 1e-3, inverseEvery: 2, method });
  const b = batch(2, 12, 32, 3);
  const out: number[] = [];
  let before = native()._loopbackTransfers();
  for (let i = 0; i < steps; i++) {
    if (i === 1) before = native()._loopbackTransfers();
    m.zeroGrad();
    const f = m.forward(b);
    m.backward();
    // the loss stays on the device and is read with K-FAC's step record
    opt.step({ batchSize: 2, losses: [f.lossValue!] });
    out.push(f.loss!);
  }
  const now = native()._loopbackTransfers();
  opt.dispose();
  const adapters = new Map<string, Float32Array>();
  for (const p of m.parameters()) if (p.name.includes('lora_')) adapters.set(p.name, device === 'cpu' ? p.tensor.toArray() : p.tensor.to('cpu').toArray());
  return { losses: out, adapters, crossings: { uploads: now.uploads - before.uploads, downloads: now.downloads - before.downloads, uploadBytes: now.uploadBytes - before.uploadBytes } };
}

describe.skipIf(!emulationPossible())('training under the CUDA emulation', () => {
  beforeAll(() => native()._cudaEmulation());

  test('tiny LLaMA, K-FAC + LoRA: three steps follow the CPU: losses to 1e-6, adapters to 2e-5 relative', () => {
    const c = run('cpu', 3), e = run('cuda', 3);
    const cpu = c.losses, emu = e.losses;
    expect(cpu.every(Number.isFinite)).toBe(true);
    expect(cpu[2]).not.toBe(cpu[0]); // the steps moved the adapters
    const rel = emu.map((l, i) => Math.abs(l - cpu[i]!) / Math.abs(cpu[i]!));
    console.log(`emulated vs cpu loss, relative difference per step: ${rel.map((r) => r.toExponential(2)).join(', ')}`);
    for (const r of rel) expect(r).toBeLessThan(1e-6);
    // the adapters the steps wrote: max |Δ| over max |value|, per tensor
    expect(e.adapters.size).toBe(c.adapters.size);
    let worst = 0;
    for (const [name, a] of c.adapters) worst = Math.max(worst, maxRel(e.adapters.get(name)!, a));
    console.log(`emulated vs cpu adapters, worst relative difference: ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(2e-5);
    // What a step moves between host and device once the state exists (steps 2 and 3): the
    // attention mask, the token ids (embedding gather) and the targets (cross-entropy) up; the
    // loss stays on the device (summed there from the rows' losses) and rides in K-FAC's step
    // record (docs/KFAC.md#one-read-per-step): up, the pointer tables of its two sums (the
    // captured statistics, the gradients) and of the trust-ratio clip with its tensors' sizes;
    // down, the record once (twice on step 3, a refresh: once before the decompositions). The
    // untracked AdamW update's trust bound: its two sums each upload a table, into a record
    // downloaded once. Nothing else crosses.
    const B = 2, T = 12;
    expect({ uploads: e.crossings.uploads, downloads: e.crossings.downloads }).toEqual({ uploads: 2 * (3 + 4 + 2), downloads: 2 * (1 + 1) + 1 });
    expect(e.crossings.uploadBytes).toBeGreaterThan(2 * 3 * B * T * 4);
  });

  // EKFAC divides by second moments measured in the eigenbasis, some far below the products of
  // eigenvalues K-FAC divides by, so the nn kernels' rounding (above: ~1e-9 on the losses) grows
  // more in its steps: measured 8.85e-4 on the adapters after four steps — the same 8.85e-4 with
  // the CPU's EKFAC kernels put in the emulation's table, so it is not the EKFAC kernels' own error
  // (test/kfac/kfac-ekfac-ops.test.ts holds those to float64 at 1e-5). We allow 5e-3; eigen K-FAC
  // differs from EKFAC by 8e-2 here. On the loopback (the CPU kernels under the cuda id) the run is
  // the CPU's bit for bit.
  test('EKFAC (kfac.ekfacMoments and preconditionEkfac on the device): four steps follow the CPU and move nothing more across than K-FAC', () => {
    const c = run('cpu', 4, 'ekfac'), e = run('cuda', 4, 'ekfac'), k = run('cpu', 4, 'eigen');
    const rel = e.losses.map((l, i) => Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!));
    for (const r of rel) expect(r).toBeLessThan(1e-6);
    let worst = 0;
    let fromEigen = 0;
    for (const [name, a] of c.adapters) {
      worst = Math.max(worst, maxRel(e.adapters.get(name)!, a));
      fromEigen = Math.max(fromEigen, maxRel(k.adapters.get(name)!, a));
    }
    console.log(`EKFAC emulated vs cpu adapters: ${worst.toExponential(2)}; EKFAC vs eigen K-FAC on the cpu: ${fromEigen.toExponential(2)}`);
    expect(worst).toBeLessThan(5e-3);
    expect(fromEigen).toBeGreaterThan(2e-2); // the second moments changed the steps
    // as K-FAC's above (steps 2–4, step 3 a refresh); the small factors' batched solve and its
    // guarded copies move nothing
    expect({ uploads: e.crossings.uploads, downloads: e.crossings.downloads }).toEqual({ uploads: 3 * (3 + 4 + 2), downloads: 3 * (1 + 1) + 1 });
    native()._cpuLoopback();
    try {
      const l = run('cuda', 4, 'ekfac');
      expect(l.losses).toEqual(c.losses);
      for (const [name, a] of c.adapters) expect(l.adapters.get(name), name).toEqual(a);
    } finally {
      native()._cudaEmulation();
    }
  });
});
