/**
 * `kfac-peft train` and `compare` with every option at its default (K-FAC: lr 0.1, Nesterov
 * momentum of the gradients, damping from 1e-4 adapted, the default trust-ratio Newton clip κ 0.035), through the real binary, on a tiny LLaMA
 * (test/fixtures/models/llama-gqa) and a separable letters task: finite, no divergence, learns.
 * Before the default clip, this K-FAC run blew the loss up within a few steps.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { cli as runCli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-defaults-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[]) => runCli(tmp, args, 180_000);

let model = '';
let data = '';
beforeAll(() => {
  ({ model, data } = tinySetup(tmp, 640, 96, ['accuracy']));
});

const stepLosses = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; loss: number; optimizer?: { clipRate?: number; clipThreshold?: number } })
    .filter((e) => e.kind === 'step');

describe('every option at its default', () => {
  test('train (K-FAC is the default optimizer): finite, clipped by the default trust ratio, learns', () => {
    const base = cli(['eval', '--model', model, '--data', data, '--json']);
    expect(base.code, base.stderr).toBe(0);
    const before = (JSON.parse(base.stdout) as { metrics: { accuracy: number } }).metrics.accuracy;
    const out = join(tmp, 'train');
    const r = cli(['train', '--model', model, '--data', data, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as { steps: number; final: number; diverged: boolean; clipRate: number };
    expect(s.steps).toBe(40); // one epoch of 640 examples in batches of 16
    expect(s.diverged).toBe(false);
    expect(s.clipRate).toBeGreaterThan(0); // the clip is on and fired
    const steps = stepLosses(join(out, 'metrics.jsonl'));
    expect(steps.every((e) => Number.isFinite(e.loss) && Number.isFinite(e.optimizer?.clipThreshold ?? NaN))).toBe(true);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(steps.slice(-10).map((e) => e.loss))).toBeLessThan(0.8 * mean(steps.slice(0, 5).map((e) => e.loss)));
    expect(s.final).toBeGreaterThan(Math.max(0.75, before + 0.1));
  });

  test('compare --runs adamw,kfac: neither diverges and K-FAC ends at least as well as AdamW', () => {
    const out = join(tmp, 'compare');
    const r = cli(['compare', '--model', model, '--data', data, '--runs', 'adamw,kfac', '--out', out, '--quiet', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const c = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8')) as { rows: { optimizer: string; final: { mean: number }; diverged: number }[] };
    const row = (o: string) => c.rows.find((x) => x.optimizer === o)!;
    expect(row('kfac').diverged).toBe(0);
    expect(row('adamw').diverged).toBe(0);
    expect(Number.isFinite(row('kfac').final.mean)).toBe(true);
    expect(row('kfac').final.mean).toBeGreaterThanOrEqual(row('adamw').final.mean - 0.02);
  });
});
