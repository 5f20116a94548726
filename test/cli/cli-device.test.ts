/**
 * `--device`, `--dtype` and `--gradient-checkpointing` on the command line. Without a GPU:
 * `--device cuda` is the typed error that says why (exit 1, before any file is written),
 * `--device auto` trains on the CPU and says why once on stderr, and the memory flags train to
 * the same adapter as without checkpointing (the recomputation changes no value). `eval`,
 * `generate` and `compare` take `--device` the same way: cuda without a GPU is the same typed
 * error before anything is written, auto gives what the CPU gives and says why once. With a GPU
 * the device cases are skipped here (scripts/gpu-check.sh runs the device training).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { gpuStatus } from '../cuda/parity.mjs';
import { cli as runCli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-device-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[]) => runCli(tmp, args);
const { model, data } = tinySetup(tmp, 32, 16);
const base = ['train', '--model', model, '--data', data, '--steps', '2', '--batch-size', '8', '--max-length', '24', '--lora-r', '2', '--quiet'];
const noGpu = !gpuStatus().ok;

describe('train --device / --dtype / --gradient-checkpointing', () => {
  test.skipIf(!noGpu)('--device cuda without a usable GPU: a DeviceError saying why, nothing written', () => {
    const out = join(tmp, 'cuda');
    const r = cli([...base, '--device', 'cuda', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/device: cuda is not usable in this process: .+/);
    expect(r.stderr).toMatch(/hint: run `npx kfac-peft doctor`/);
    expect(existsSync(out)).toBe(false);
  });

  test.skipIf(!noGpu)('--device auto falls back to the CPU and prints the reason once', () => {
    const r = cli(['train', '--model', model, '--data', data, '--steps', '2', '--batch-size', '8', '--max-length', '24', '--lora-r', '2', '--device', 'auto', '--out', join(tmp, 'auto')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('device: '));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^device: cpu \(no usable GPU \(.+\)\)$/);
  });

  test('--dtype bfloat16 --gradient-checkpointing: the same adapter as --dtype bfloat16 alone', () => {
    const a = cli([...base, '--dtype', 'bfloat16', '--optimizer', 'kfac', '--out', join(tmp, 'bf16')]);
    const b = cli([...base, '--dtype', 'bfloat16', '--optimizer', 'kfac', '--gradient-checkpointing', '--out', join(tmp, 'bf16-ckpt')]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const w = (d: string) => readFileSync(join(tmp, d, 'adapter', 'adapter_model.safetensors'));
    expect(w('bf16-ckpt').equals(w('bf16'))).toBe(true);
    expect(JSON.parse(readFileSync(join(tmp, 'bf16-ckpt', 'config.json'), 'utf8'))).toMatchObject({ dtype: 'bfloat16', gradientCheckpointing: true });
  });

  test('bad values are usage errors naming the flag', () => {
    const r = cli([...base, '--device', 'gpu', '--out', join(tmp, 'bad')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--device: expected cpu \| cuda \| auto, got "gpu"/);
    const d = cli([...base, '--dtype', 'float16', '--out', join(tmp, 'bad2')]);
    expect(d.code).toBe(2);
    expect(d.stderr).toMatch(/--dtype: expected float32 \| bfloat16/);
  });
});

describe('eval, generate and compare take --device as train does', () => {
  const deviceLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('device: '));
  const evalArgs = ['eval', '--model', model, '--data', data, '--max-length', '24', '--json'];
  const genArgs = ['generate', '--model', model, '--prompt', 'abc', '--max-new-tokens', '6', '--json'];
  const cmpArgs = (out: string) => ['compare', '--model', model, '--data', data, '--runs', 'adamw,kfac', '--steps', '2', '--batch-size', '8', '--max-length', '24', '--lora-r', '2', '--out', join(tmp, out)];

  test.skipIf(!noGpu)('--device cuda without a usable GPU: the DeviceError saying why, exit 1, nothing written', () => {
    for (const args of [evalArgs, genArgs, cmpArgs('cmp-cuda')]) {
      const r = cli([...args, '--device', 'cuda']);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/device: cuda is not usable in this process: .+/);
      expect(r.stdout).toBe('');
    }
    expect(existsSync(join(tmp, 'cmp-cuda'))).toBe(false);
  });

  test.skipIf(!noGpu)('--device auto: the CPU result, and the reason printed once', () => {
    const e = cli([...evalArgs, '--device', 'auto']);
    const ec = cli([...evalArgs, '--device', 'cpu']);
    expect(e.code, e.stderr).toBe(0);
    expect(deviceLines(e.stderr)).toEqual([expect.stringMatching(/^device: cpu \(no usable GPU \(.+\)\)$/)]);
    expect(deviceLines(ec.stderr)).toEqual([]);
    const evalOut = (stdout: string) => {
      const { seconds: _seconds, ...rest } = JSON.parse(stdout) as Record<string, unknown>; // its time is not a result
      return rest;
    };
    expect(evalOut(e.stdout)).toEqual(evalOut(ec.stdout));

    const g = cli([...genArgs, '--device', 'auto']);
    const gc = cli([...genArgs, '--device', 'cpu']);
    expect(g.code, g.stderr).toBe(0);
    expect(deviceLines(g.stderr)).toHaveLength(1);
    const ids = (stdout: string) => (JSON.parse(stdout) as { ids?: number[]; generatedIds?: number[]; text?: string });
    expect(ids(g.stdout)).toEqual(ids(gc.stdout));

    const c = cli([...cmpArgs('cmp-auto'), '--device', 'auto']);
    expect(c.code, c.stderr).toBe(0);
    expect(deviceLines(c.stderr)).toHaveLength(1);
    const cc = cli([...cmpArgs('cmp-cpu'), '--device', 'cpu']);
    expect(cc.code, cc.stderr).toBe(0);
    for (const run of ['adamw_lr=0.001', 'kfac_lr=0.1']) {
      const w = (d: string) => readFileSync(join(tmp, d, 'runs', run, 'adapter', 'adapter_model.safetensors'));
      expect(w('cmp-auto').equals(w('cmp-cpu')), run).toBe(true);
    }
  });
});
