/** The command line, run as a user would: through bin/kfac-peft.js on the compiled code. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { packageRoot } from '../../lib/native/loader.js';

const root = packageRoot();
const run = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'kfac-peft.js'), ...args], { encoding: 'utf8', env: { ...process.env, CI: 'true' } });

describe('kfac-peft CLI', () => {
  it('info prints version, backends, CPU features and threads', () => {
    const r = run('info');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/kfac-peft \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/backends\s+cpu/);
    expect(r.stdout).toMatch(/avx2 (yes|no)/);
    expect(r.stdout).toMatch(/threads\s+\d+/);
  });

  it('info --json is machine-readable', () => {
    const r = run('info', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { version: string; backends: string[]; cpu: { threads: number; kernel: string } };
    expect(j.backends).toContain('cpu');
    expect(j.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'generic']).toContain(j.cpu.kernel);
  });

  it('KFAC_NUM_THREADS overrides the thread count', () => {
    const r = spawnSync(process.execPath, [join(root, 'bin', 'kfac-peft.js'), 'info', '--json'], { encoding: 'utf8', env: { ...process.env, KFAC_NUM_THREADS: '3' } });
    expect((JSON.parse(r.stdout) as { cpu: { threads: number } }).cpu.threads).toBe(3);
  });

  it('bench gemm --json gives rows with timings', () => {
    const r = run('bench', 'gemm', '--sizes', '8,33', '--threads', '1', '--repeats', '1', '--no-peer', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { rows: { case: string; shape: string; ms: number; gflops: number }[] };
    expect(j.rows.map((x) => x.shape)).toEqual(['8x8x8', '8x8x8 new', '33x33x33', '33x33x33 new']);
    for (const row of j.rows) {
      // the rate is the timed work: 2·m·n·k flops in `ms` milliseconds
      const [m, n, k] = row.shape.split(' ')[0]!.split('x').map(Number) as [number, number, number];
      expect(row.ms).toBeGreaterThan(0);
      expect(Math.abs(row.gflops / ((2 * m * n * k) / (row.ms * 1e6)) - 1)).toBeLessThan(0.02);
    }
  });

  it('bench prints a table', () => {
    const r = run('bench', 'gemm', '--sizes', '16', '--threads', '1', '--repeats', '1', '--no-peer');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/GFLOP\/s/);
    expect(r.stdout).toMatch(/16x16x16/);
  });

  it('bench step times a LoRA step and profiles it per op family', () => {
    const r = run('bench', 'step', '--shape', 'stories260k', '--batch', '2', '--seq', '16', '--rounds', '1', '--steps', '1', '--threads', '1', '--profile', '--json');
    expect(r.status).toBe(0);
    const j = JSON.parse(r.stdout) as { peft: string; ours: { medianMs: number; loss: number; tokensPerSecond: number }; trainable: number; profile: { family: string; msPerStep: number }[] };
    expect(j.peft).toBe('lora');
    expect(j.ours.medianMs).toBeGreaterThan(0);
    expect(j.ours.tokensPerSecond).toBeGreaterThan(0);
    expect(Number.isFinite(j.ours.loss)).toBe(true);
    expect(j.trainable).toBeGreaterThan(0);
    expect(j.profile.map((p) => p.family)).toContain('gemm (linear, matmul)');
  });

  it.each([
    [['nope'], /unknown command/],
    [['bench', 'step', '--shape', 'bert-huge'], /--shape: one of/],
    [['bench', 'step', '--optimizer', 'lion'], /--optimizer: one of/],
    [['bench', 'step', '--peft', 'dora'], /--peft: one of lora\|adapter\|prefix\|prompt\|ia3\|bitfit, got "dora"/],
    [['bench', 'step', '--model', '/no/such/dir'], /does not exist/],
    [['bench', 'nope'], /unknown bench case/],
    [['bench', 'gemm', '--sizes', 'abc'], /expected positive integers/],
    [['bench', 'gemm', '--bogus'], /unknown option --bogus/],
    [['info', '--json=1'], /takes no value/],
    [['bench', 'gemm', '--sizes'], /needs a value/],
  ])('bad arguments %j exit 2 with a clear message', (args, msg) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
  });

  it('bench step --peft bitfit on a bias-less model is a one-line error, not a stack trace', () => {
    const r = run('bench', 'step', '--shape', 'stories260k', '--peft', 'bitfit', '--batch', '1', '--seq', '4', '--rounds', '1', '--steps', '1', '--threads', '1');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^kfac-peft: --peft bitfit on stories260k: the model \(LlamaModel\) has no bias parameters/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('help and --version', () => {
    expect(run('help').stdout).toMatch(/usage: kfac-peft/);
    expect(run('--version').stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
