/**
 * Three readings of BENCHMARKS.md's "K-FAC at its defaults", on fake runs written the way `compare`
 * and `train --save-every` write them: bench/e2e/defaults-table.mjs --train-window N (the
 * seed-averaged training loss in windows, and the first window at the baseline's lowest),
 * defaults-table.mjs --bootstrap (the seed-averaged steps ratio over seeds drawn again) and
 * bench/e2e/adapter-travel.mjs (the rms of the adapter's tensor groups at each checkpoint, and of
 * their change).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { saveSafetensors } from '../../lib/io/safetensors.js';
import { ROOT } from '../support/tiny-cli.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'kfac-readings-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function script(name: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'e2e', name), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A finished run of `compare` at `seed`: its losses per step and its evaluations [step, accuracy] (default one at the end). */
function writeRun(folder: string, optimizer: string, lr: number, seed: number, losses: number[], evals: [number, number][] = [[losses.length, 0.5]]): void {
  const name = `${optimizer} lr=${lr}`;
  const d = join(folder, 'runs', `${name.replace(/ /g, '_')}-seed${seed}`);
  mkdirSync(d, { recursive: true });
  const lines = losses.map((loss, i) => JSON.stringify({ kind: 'step', step: i + 1, epoch: 0, loss, ms: 10, elapsedMs: 10 * (i + 1) }));
  for (const [step, accuracy] of evals) lines.push(JSON.stringify({ kind: 'eval', step, loss: 1, metrics: { accuracy }, best: true, elapsedMs: 10 * step }));
  writeFileSync(join(d, 'metrics.jsonl'), lines.join('\n') + '\n');
  writeFileSync(join(d, 'config.json'), JSON.stringify({ optimizer, lr, seed }));
  writeFileSync(join(d, 'run.json'), JSON.stringify({ name, steps: losses.length, monitor: 'accuracy', final: 0.5, best: null, msPerStep: 10, diverged: false, interrupted: false, stoppedEarly: false }));
}

describe('bench/e2e/defaults-table.mjs --train-window', () => {
  it('averages each run over windows, then over the seeds shared with the baseline, and reads the first window at the baseline\'s lowest', () => {
    const a = tmp();
    const b = tmp();
    // AdamW, windows of 2 (seeds 0, 1): (3, 2, 1.5) and (3, 2.4, 1.5) → 3, 2.2, 1.5: lowest 1.5 at step 6
    writeRun(a, 'adamw', 0.001, 0, [3, 3, 2, 2, 1.5, 1.5]);
    writeRun(a, 'adamw', 0.001, 1, [3, 3, 2.4, 2.4, 1.5, 1.5]);
    // K-FAC: windows 2.5, 1.25, 1 (seed 0) and 2.5, 1.75, 1 (seed 1) → 2.5, 1.5, 1: reaches 1.5 at step 4
    writeRun(b, 'kfac', 0.1, 0, [3, 2, 1, 1.5, 1, 1]);
    writeRun(b, 'kfac', 0.1, 1, [3, 2, 2, 1.5, 1, 1]);
    // a seed the baseline does not have is left out of the reading (its windows would lower K-FAC's mean)
    writeRun(b, 'kfac', 0.1, 7, [0, 0, 0, 0, 0, 0]);
    const r = script('defaults-table.mjs', '--train-window', '2', a, b);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Training loss in windows of 2 steps');
    expect(r.stdout).toContain('| adamw lr=0.001 (baseline) | 1.5 (6) | 6 (1×) |');
    expect(r.stdout).toContain('| kfac lr=0.1 | 1 (6) | 4 (0.67×) |');
    // the windows themselves, and the seed-averaged eval curve, over the shared seeds only
    expect(r.stdout).toContain('- kfac lr=0.1: 2:2.5 4:1.5 6:1\n');
    expect(r.stdout).toContain('- adamw lr=0.001: 2:3 4:2.2 6:1.5\n');
    expect(r.stdout).toContain('- kfac lr=0.1: 6:0.5\n');
  });

  it('a window that is not a positive integer is refused', () => {
    const a = tmp();
    writeRun(a, 'adamw', 0.001, 0, [1, 1]);
    for (const w of ['0', '1.5', 'x']) {
      const r = script('defaults-table.mjs', '--train-window', w, a);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/--train-window: expected a positive integer/);
    }
  });
});

describe('bench/e2e/defaults-table.mjs --bootstrap', () => {
  it('draws the seeds again, the same draw for both configurations, and reads the seed-averaged steps ratio on each', () => {
    const a = tmp();
    const losses = [1, 1];
    // seed 1 alone: K-FAC reaches AdamW's 0.8 at step 1 of 2 (0.5×); seed 2 alone, and the two
    // together (AdamW's mean 0.5, 0.7; K-FAC's 0.6, 0.65), never: 0.5× with probability 1/4
    writeRun(a, 'adamw', 0.001, 1, losses, [[1, 0.5], [2, 0.8]]);
    writeRun(a, 'adamw', 0.001, 2, losses, [[1, 0.5], [2, 0.6]]);
    writeRun(a, 'kfac', 0.1, 1, losses, [[1, 0.8], [2, 0.8]]);
    writeRun(a, 'kfac', 0.1, 2, losses, [[1, 0.4], [2, 0.5]]);
    const r = script('defaults-table.mjs', '--bootstrap', a);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('| kfac lr=0.1 | 2 | every one (3 multisets) | never | never | 0.5× – never | 0.25 |');
    expect(r.stdout).not.toMatch(/^\| adamw lr=0.001 \| 2 \|/m); // the baseline has no row of its own
  });
});

describe('bench/e2e/adapter-travel.mjs', () => {
  it('prints the rms of LoRA A, LoRA B and the other tensors at each checkpoint, and of their change', () => {
    const run = tmp();
    const save = (step: number, a: number[], b: number[], head: number[]) => {
      const d = join(run, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
      mkdirSync(d, { recursive: true });
      saveSafetensors(join(d, 'adapter_model.safetensors'), {
        'base_model.model.layers.0.q_proj.lora_A.weight': { data: Float32Array.from(a), shape: [1, a.length] },
        'base_model.model.layers.0.q_proj.lora_B.weight': { data: Float32Array.from(b), shape: [b.length, 1] },
        'base_model.model.score.weight': { data: Float32Array.from(head), shape: [1, head.length] },
      });
    };
    save(32, [3, 4], [0, 0], [1, 1, 1, 1]);
    save(64, [0, 4], [2, 2], [1, 1, 1, 3]);
    // a folder that is not a step checkpoint is ignored
    mkdirSync(join(run, 'checkpoints', 'step-00000096.tmp'));
    const r = script('adapter-travel.mjs', run);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // rms [3, 4] = √12.5 = 3.54; change [-3, 0] → √4.5 = 2.12; head [1, 1, 1, 3] → √3 = 1.73, change 2/√4 = 1
    expect(r.stdout).toContain('| 32 | 3.54e+0 (–) | 0.00e+0 (–) | 1.00e+0 (–) |');
    expect(r.stdout).toContain('| 64 | 2.83e+0 (2.12e+0) | 2.00e+0 (2.00e+0) | 1.73e+0 (1.00e+0) |');
    expect(r.stdout.match(/^\| \d+ \|/gm)).toHaveLength(2);
  });

  it('a run folder without checkpoints is refused, naming the option that writes them', () => {
    const r = script('adapter-travel.mjs', tmp());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--save-every/);
  });
});
