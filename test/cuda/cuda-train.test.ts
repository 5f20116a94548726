/**
 * The run path on the device (CPU loopback without a GPU): `executeRun` with `device: 'cuda'`
 * loads the model there, and the adapters, the optimizer state and the batches follow, so the
 * run computes what the CPU run computes, step for step (identical losses, evaluation and saved
 * adapter). What crosses between host and device in the steady state is counted per step:
 *  - copies (the loopback's transfer counter): one upload per step, the batch's padding mask;
 *    one download per step: AdamW's loss, or K-FAC's step record (the loss copied into it);
 *  - host synchronisations: every op whose result comes back to JS as a number computed from
 *    device data (sums and norms, the decompositions' residuals, the cross-entropy when its
 *    loss is not left on the device), and every download, waits for the device. AdamW makes
 *    exactly one per step, the loss. K-FAC makes one on a step without decompositions, whatever
 *    the number of tracked tensors (asserted exactly): its step record (the loss, the captured
 *    statistics' all-finite flag, the gradient norm and the default trust-ratio clip's outcome,
 *    written where the tensors live, and the small factors' batched solves' flags). A
 *    decomposition step adds one read per large factor and one read of the record before it.
 *    Adaptive damping's probe step adds the extra forward's mask upload and one read (the probe's
 *    record, the extra forward's loss copied into it).
 * Gradient checkpointing on the device gives the same losses as without it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { native } from '../../lib/native/loader.js';
import type { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { applyRunPeft, buildOptimizer, executeRun, loadRunModel, prepareRun, type RunConfig } from '../../lib/train/run.js';
import type { TrainerEvent } from '../../lib/train/trainer.js';
import { completeRun } from '../../lib/cli/run-flags.js';
import { tinySetup } from '../support/tiny-cli.js';
import { enableLoopback, gpuStatus } from './parity.mjs';

const gpu = gpuStatus();
if (!gpu.ok) enableLoopback();
const loop = !gpu.ok;
const tmp = mkdtempSync(join(tmpdir(), 'kfac-devrun-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const setup = tinySetup(tmp, 48, 16);

/** Addon functions whose result is a number read from (possibly device) data: each one is a host synchronisation. */
const SYNC_OPS = ['sum', 'sumSquares', 'sumSquaresMany', 'norm', 'dot', 'crossEntropy', 'clipNewtonStep', 'piDamping', 'eigh', 'eighRefresh', 'eighBatched', 'dampedInverse', 'kronQuadraticMany', 'dotMany'] as const;

interface Counted {
  losses: number[];
  evalLoss: number;
  adapter: Buffer;
  /** Per step after the first: [uploads, downloads, syncs (number-returning ops and downloads)]. */
  perStep: [number, number, number][];
}

// K-FAC runs refresh every 3 steps (an option AdamW does not read, so it is not given to it)
const config = (over: Partial<RunConfig>) =>
  completeRun({ model: setup.model, data: setup.data, steps: 6, batchSize: 8, maxLength: 24, loraR: 2, ...((over.optimizer ?? 'kfac') === 'kfac' ? { inverseEvery: 3 } : {}), seed: 1, ...over });

/** The dimensions of the run's K-FAC factors (shared ones once) and its smallFactorDim. */
function factorDims(c: RunConfig): { all: number[]; max: number } {
  const model = loadRunModel(prepareRun(c));
  applyRunPeft(model, c);
  const opt = buildOptimizer(c, model, 6);
  try {
    const pre = (opt.inner as KFAC).preconditioner;
    const factors = new Set(pre.blocks.flatMap((b) => [b.a, b.g]));
    return { all: [...factors].map((f) => f.dim), max: pre.smallFactorDim };
  } finally {
    opt.inner.dispose();
    model.dispose();
  }
}

async function run(name: string, over: Partial<RunConfig>): Promise<Counted> {
  const config_ = config(over);
  const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  let syncs = 0;
  const saved = new Map<string, (...a: unknown[]) => unknown>();
  for (const op of SYNC_OPS) {
    const f = addon[op];
    if (typeof f !== 'function') continue;
    saved.set(op, f);
    addon[op] = (...a: unknown[]) => {
      // the cross-entropy waits only when its loss comes back as a number (no lossTo)
      if (op !== 'crossEntropy' || a[4] === null || a[4] === undefined) syncs++;
      return f.apply(addon, a);
    };
  }
  const marks: { t: ReturnType<typeof native>['_loopbackTransfers'] extends () => infer R ? R : never; syncs: number }[] = [];
  const out = join(tmp, name);
  try {
    const r = await executeRun(prepareRun(config_), out, {
      handleSigint: false,
      onEvent: (e: TrainerEvent) => {
        if (e.kind === 'step') marks.push({ t: loop ? native()._loopbackTransfers() : { uploads: 0, downloads: 0, uploadBytes: 0, downloadBytes: 0 }, syncs });
      },
    });
    const steps = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'step' }> => e.kind === 'step');
    const ev = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'eval' }> => e.kind === 'eval').at(-1)!;
    const perStep: [number, number, number][] = [];
    for (let i = 1; i < marks.length; i++) {
      const down = marks[i]!.t.downloads - marks[i - 1]!.t.downloads;
      perStep.push([marks[i]!.t.uploads - marks[i - 1]!.t.uploads, down, marks[i]!.syncs - marks[i - 1]!.syncs + down]);
    }
    return { losses: steps.map((s) => s.loss), evalLoss: ev.loss, adapter: readFileSync(join(out, 'adapter', 'adapter_model.safetensors')), perStep };
  } finally {
    for (const [op, f] of saved) addon[op] = f;
  }
}

describe('a run on the device', () => {
  for (const optimizer of ['adamw', 'kfac'] as const)
    test(`${optimizer}: the CPU run's losses, evaluation and adapter; copies and host synchronisations per step`, async () => {
      // the transfer counts are those of the plain K-FAC step: adaptive damping's probe (every 5th
      // step, an extra forward and the quadratic model's reductions) is checked separately below
      const over = optimizer === 'kfac' ? ({ optimizer, adaptiveDamping: 'off' } as const) : { optimizer };
      const cpu = await run(`${optimizer}-cpu`, over);
      const dev = await run(`${optimizer}-cuda`, { ...over, device: 'cuda' });
      expect(dev.losses).toEqual(cpu.losses);
      expect(dev.losses.length).toBe(6);
      expect(dev.evalLoss).toBe(cpu.evalLoss);
      expect(dev.adapter.equals(cpu.adapter)).toBe(true);
      if (loop)
        dev.perStep.forEach(([up, down], i) => {
          expect(up).toBe(1); // the padding mask
          // AdamW: the loss; K-FAC: the step record, read once more before the decompositions of step 4
          expect(down).toBe(optimizer === 'adamw' ? 1 : i === 2 ? 2 : 1);
        });
      // LoRA r=2 on q_proj and v_proj of 2 layers + the classification head: 8 adapter tensors + score
      const syncs = dev.perStep.map((s) => s[2]);
      if (optimizer === 'adamw') expect(syncs).toEqual([1, 1, 1, 1, 1]);
      else {
        // steps 2..6 (indices 0..4 here); the decompositions of step 4 (inverseEvery 3, steps counted from 0) add one read per
        // large factor. Between them, EKFAC (the default) decomposes the small factors (dimension ≤ 64) at every step, all
        // factors of one dimension in one batched solve whose flag is in the step record: no read of its own (this tiny
        // model's hidden size is small too)
        const dims = factorDims(config(over));
        const small = new Set(dims.all.filter((d) => d <= dims.max));
        const large = dims.all.filter((d) => d > dims.max).length;
        expect(small.size).toBeGreaterThan(0);
        if (loop) {
          for (const [i, n] of syncs.entries()) if (i !== 2) expect(n, `step ${i + 2}`).toBe(1);
          // the refresh reads the record first and each large factor's decomposition (here every factor is small: none)
          expect(syncs[2]).toBe(2 + large);
        }
      }
    });

  test('kfac with the other clips (a norm threshold, global and per tensor; none; gradient clipping before preconditioning): the CPU run, and still one wait per step', async () => {
    const variants = [
      ['maxnorm-global', { newtonClip: 0.5, newtonClipMode: 'global' }],
      ['maxnorm-per-tensor', { newtonClip: 0.5, newtonClipMode: 'per-tensor' }],
      ['no-clip', { newtonClip: 'off', lr: 0.01 }],
      ['grad-clip', { gradClip: 0.1 }],
    ] as const;
    for (const [name, clip] of variants) {
      const over = { optimizer: 'kfac', adaptiveDamping: 'off', ...clip } as const;
      const cpu = await run(`${name}-cpu`, over);
      const dev = await run(`${name}-cuda`, { ...over, device: 'cuda' });
      expect(dev.losses, name).toEqual(cpu.losses);
      expect(dev.adapter.equals(cpu.adapter), name).toBe(true);
      // the clip is queued where the steps live and its outcome read with the step record (no
      // clip: the steps' norms for the telemetry, and their finiteness), as the default's
      const dims = factorDims(config(over));
      const large = dims.all.filter((d) => d > dims.max).length;
      if (loop) expect(dev.perStep.map((s) => s[2]), name).toEqual([1, 1, 2 + large, 1, 1]);
    }
  });

  test('kfac with adaptive damping (the default): the CPU run\'s losses and adapter, the probe steps included', async () => {
    const cpu = await run('kfac-ad-cpu', { optimizer: 'kfac' });
    const dev = await run('kfac-ad-cuda', { optimizer: 'kfac', device: 'cuda' });
    expect(dev.losses).toEqual(cpu.losses);
    expect(dev.adapter.equals(cpu.adapter)).toBe(true);
    if (loop) {
      // the probe step (step 6) uploads the padding mask twice (its extra forward) and downloads
      // the step record and the probe's record: ⟨δ, ∇⟩ of every parameter, every ‖δ‖², every
      // block's curvature and the extra forward's loss are written where the tensors live and
      // read once (the step record twice at the refresh of step 4)
      expect(dev.perStep.map((s) => s[1])).toEqual([1, 1, 2, 1, 2]);
      expect(dev.perStep.map((s) => s[0])).toEqual([1, 1, 1, 1, 2]);
    }
    // the probe step waits once more than the step before it, whatever the number of layers:
    // its record, the extra forward's loss in it (⟨δ, ∇⟩ of every parameter, every ‖δ‖², every
    // block's curvature; it read a number per parameter and per block before the multi-tensor
    // reductions, then three reductions, then the record and the loss apart)
    const syncs = dev.perStep.map((s) => s[2]);
    if (loop) expect(syncs[4]).toBe(syncs[3]! + 1);
  });

  test('gradient checkpointing on the device: the same losses as without it (K-FAC captures block by block)', async () => {
    const plain = await run('ckpt-off', { optimizer: 'kfac', device: 'cuda' });
    const ckpt = await run('ckpt-on', { optimizer: 'kfac', device: 'cuda', gradientCheckpointing: true });
    expect(ckpt.losses).toEqual(plain.losses);
    expect(ckpt.adapter.equals(plain.adapter)).toBe(true);
  });
});
