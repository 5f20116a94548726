/**
 * `--peft ia3|bitfit` through the real `kfac-peft` binary on the tiny LLaMA classification task
 * (test/tiny-cli.ts): IA3 with K-FAC (Newton clip at its default) trains, its loss falls and it
 * writes a PEFT IA3 adapter; BitFit on a model without biases exits non-zero with a clear message.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { cli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-peft-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const { model, data } = tinySetup(tmp);

describe('kfac-peft train --peft', () => {
  test('ia3 with K-FAC: the loss falls and adapter/ is a PEFT IA3 adapter', () => {
    const out = join(tmp, 'run-ia3');
    const r = cli(tmp, ['train', '--model', model, '--data', data, '--peft', 'ia3', '--optimizer', 'kfac', '--lr', '0.1', '--steps', '30', '--batch-size', '16', '--max-length', '24', '--seed', '3', '--out', out, '--json', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { steps: number; diverged: boolean; final: number };
    expect(summary.steps).toBe(30);
    expect(summary.diverged).toBe(false);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg['peft_type']).toBe('IA3');
    expect(cfg['target_modules']).toEqual(['k_proj', 'v_proj', 'down_proj']);
    expect(cfg['feedforward_modules']).toEqual(['down_proj']);
    expect(cfg['modules_to_save']).toEqual(['classifier', 'score']);
    const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; loss: number }).filter((e) => e.kind === 'step').map((e) => e.loss);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(mean(losses.slice(-8))).toBeLessThan(mean(losses.slice(0, 8)));
    // eval reads the IA3 adapter back
    const e = cli(tmp, ['eval', '--model', model, '--data', data, '--adapter', join(out, 'adapter'), '--max-length', '24', '--seed', '3', '--json']);
    expect(e.code, e.stderr).toBe(0);
    const ev = JSON.parse(e.stdout) as { metrics: { accuracy: number } };
    expect(ev.metrics.accuracy).toBeCloseTo(summary.final, 6); // the saved adapter (vectors and head) reproduces the run's final dev accuracy
  });

  test('bitfit on LLaMA (no biases) exits non-zero naming the problem; a bad --peft is a usage error', () => {
    const out = join(tmp, 'run-bitfit');
    const r = cli(tmp, ['train', '--model', model, '--data', data, '--peft', 'bitfit', '--steps', '2', '--out', out, '--quiet']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no bias/);
    expect(existsSync(join(out, 'adapter'))).toBe(false);
    const u = cli(tmp, ['train', '--model', model, '--data', data, '--peft', 'p-tuning', '--out', join(tmp, 'x')]);
    expect(u.code).not.toBe(0);
    expect(u.stderr).toMatch(/--peft/);
  });
});
