/**
 * The GPU check's training comparison (test/cuda/train-check.mjs, run by scripts/gpu-check.sh
 * on a device) checked here without a GPU, as a child process like the check runs it: on the
 * CPU loopback its device side must give the CPU's losses exactly (the script compares what it
 * says it compares); on the CUDA emulation the float32 run stays within its tolerance, and the
 * bf16 run (bf16 weights on both sides, bf16 activations on the device side) within the bf16
 * tolerance argued in the script while really differing from the float32-activation CPU run;
 * bf16 activations on the loopback are refused as the device run failing to start (exit 3).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { describe, expect, test } from 'vitest';

import { sharedData, skipNote } from '../support/shared-data.js';
import { emulationPossible } from '../support/emulation.js';
import { ROOT } from '../support/tiny-cli.js';

const STORIES = sharedData('llama2c/stories260K.bin');

interface Report {
  ok: boolean;
  steps: number;
  bf16: boolean;
  cpu: number[];
  cuda?: number[];
  maxRel?: number;
  tolerance?: { step0: number; later: number; of: string };
  error?: string;
}

function check(...args: string[]): { code: number | null; report: Report } {
  const r = spawnSync(process.execPath, [join(ROOT, 'test', 'cuda', 'train-check.mjs'), STORIES!, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, report: JSON.parse(r.stdout.trim().split('\n').pop()!) as Report };
}

describe.skipIf(!STORIES || !emulationPossible())(`train-check.mjs without a GPU${skipNote(STORIES, 'llama2c/stories260K.bin')}`, () => {
  test('the loopback gives the CPU losses exactly; bf16 activations there cannot start (exit 3)', () => {
    const a = check('--steps', '4', '--loopback');
    expect(a.code).toBe(0);
    expect(a.report.cuda).toEqual(a.report.cpu);
    const b = check('--steps', '2', '--loopback', '--bf16');
    expect(b.code).toBe(3);
    expect(b.report.ok).toBe(false);
    expect(b.report.error).toMatch(/bfloat16 activations only on a device whose kernels store them/);
  });

  test('the emulation: float32 within 1e-4 / 1e-2 of each step, bf16 within 2⁻⁷ / 3e-2 of the first loss, over 50 steps', () => {
    const f = check('--steps', '50', '--emulation');
    expect(f.code, JSON.stringify(f.report).slice(0, 400)).toBe(0);
    expect(f.report.tolerance).toEqual({ step0: 1e-4, later: 1e-2, of: "each step's CPU loss" });
    expect(f.report.maxRel!).toBeLessThan(1e-4);
    const h = check('--steps', '50', '--emulation', '--bf16');
    expect(h.code, JSON.stringify(h.report).slice(0, 400)).toBe(0);
    expect(h.report.tolerance).toEqual({ step0: 2 ** -7, later: 3e-2, of: 'the first CPU loss' });
    // the activations really were bf16: the device's losses are not the float32 CPU run's
    expect(h.report.maxRel!).toBeGreaterThan(1e-4);
    // and the run learned: the loss fell from about 0.42 to below 0.1 on both sides
    expect(h.report.cpu[0]!).toBeGreaterThan(0.3);
    expect(h.report.cpu.at(-1)!).toBeLessThan(0.1);
    expect(h.report.cuda!.at(-1)!).toBeLessThan(0.1);
  });
});
