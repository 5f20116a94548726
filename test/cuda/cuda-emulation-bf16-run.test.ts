/**
 * A whole run with bf16 activations (`activations: 'bfloat16'`, the CLI's `--activations
 * bfloat16`) under the CUDA emulation: `executeRun` with `device: 'cuda'` loads the tiny LLaMA
 * classifier there with bf16 activations and trains it with K-FAC at its defaults (EKFAC, the
 * Newton clip, adaptive damping with its probe steps), evaluates and saves the adapter. Its
 * losses track the float32 CPU run's within the bound of cuda-emulation-bf16-train.test.ts (2u
 * relative per step, u = 2⁻⁸) and differ from them (the activations really were bf16). On the CPU
 * the option is refused before any weight is read, naming it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { InvalidArgumentError } from '../../lib/errors.js';
import { native } from '../../lib/native/loader.js';
import { completeRun } from '../../lib/cli/run-flags.js';
import { executeRun, prepareRun, type RunConfig } from '../../lib/train/run.js';
import type { TrainerEvent } from '../../lib/train/trainer.js';
import { emulationPossible } from '../support/emulation.js';
import { tinySetup } from '../support/tiny-cli.js';

const U = 2 ** -8;
const tmp = mkdtempSync(join(tmpdir(), 'kfac-bf16run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const setup = tinySetup(tmp, 48, 16);
const config = (over: Partial<RunConfig>) => completeRun({ model: setup.model, data: setup.data, steps: 6, batchSize: 8, maxLength: 24, loraR: 2, inverseEvery: 3, seed: 1, optimizer: 'kfac', ...over });

async function losses(name: string, over: Partial<RunConfig>): Promise<{ losses: number[]; evalLoss: number }> {
  const r = await executeRun(prepareRun(config(over)), join(tmp, name), { handleSigint: false });
  const steps = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'step' }> => e.kind === 'step');
  const ev = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'eval' }> => e.kind === 'eval').at(-1)!;
  return { losses: steps.map((s) => s.loss), evalLoss: ev.loss };
}

describe.skipIf(!emulationPossible())('a run with bf16 activations (CUDA emulation)', () => {
  beforeAll(() => native()._cudaEmulation());

  test('K-FAC at its defaults, probe steps included: the float32 CPU run within 2u per step', async () => {
    const cpu = await losses('f32-cpu', {});
    const bf = await losses('bf16-cuda', { device: 'cuda', activations: 'bfloat16' });
    expect(bf.losses.length).toBe(6);
    const rel = bf.losses.map((l, i) => Math.abs(l - cpu.losses[i]!) / Math.abs(cpu.losses[i]!));
    for (const r of rel) expect(r).toBeLessThan(2 * U);
    expect(Math.abs(bf.evalLoss - cpu.evalLoss) / Math.abs(cpu.evalLoss)).toBeLessThan(2 * U);
    expect(rel.some((r) => r > 0)).toBe(true);
  });

  test('on the CPU the option is an InvalidArgumentError naming activations', async () => {
    await expect(losses('bf16-cpu', { activations: 'bfloat16' })).rejects.toSatisfy((e: unknown) => e instanceof InvalidArgumentError && (e as InvalidArgumentError).argument === 'activations');
  });
});
