/**
 * `--peft adapter|prefix|prompt` through the real `kfac-peft` binary on the tiny LLaMA classification
 * task (test/support/tiny-cli.ts): each trains with K-FAC (Newton clip at its default) without
 * diverging, writes its folder (BOTTLENECK with the options given; PEFT PROMPT_TUNING and
 * PREFIX_TUNING, the projected prefix saved as its values), and
 * `eval --adapter` reads it back to the run's final dev accuracy.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { cli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-methods-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const { model, data } = tinySetup(tmp);

const cases: [string, string[], Record<string, unknown>][] = [
  ['adapter', ['--adapter-kind', 'houlsby', '--reduction-factor', '4'], { peft_type: 'BOTTLENECK', kind: 'houlsby', reduction_factor: 4 }],
  ['prompt', ['--num-virtual-tokens', '4'], { peft_type: 'PROMPT_TUNING', num_virtual_tokens: 4, task_type: 'SEQ_CLS' }],
  ['prefix', ['--num-virtual-tokens', '3', '--prefix-projection', 'on'], { peft_type: 'PREFIX_TUNING', num_virtual_tokens: 3, prefix_projection: true, task_type: 'SEQ_CLS' }],
];

describe('kfac-peft train --peft adapter|prefix|prompt', () => {
  for (const [method, opts, want] of cases)
    test(`${method} with K-FAC: trains, saves its folder, eval reproduces the final accuracy`, () => {
      const out = join(tmp, `run-${method}`);
      const r = cli(tmp, ['train', '--model', model, '--data', data, '--peft', method, ...opts, '--optimizer', 'kfac', '--steps', '12', '--batch-size', '16', '--max-length', '24', '--seed', '3', '--out', out, '--json', '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout) as { steps: number; diverged: boolean; final: number };
      expect(summary.steps).toBe(12);
      expect(summary.diverged).toBe(false);
      const cfg = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg).toMatchObject(want);
      const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; loss: number }).filter((e) => e.kind === 'step').map((e) => e.loss);
      expect(losses.length).toBe(12);
      expect(losses.every(Number.isFinite)).toBe(true);
      const e = cli(tmp, ['eval', '--model', model, '--data', data, '--adapter', join(out, 'adapter'), '--max-length', '24', '--seed', '3', '--json']);
      expect(e.code, e.stderr).toBe(0);
      const ev = JSON.parse(e.stdout) as { metrics: { accuracy: number } };
      expect(ev.metrics.accuracy).toBeCloseTo(summary.final, 6);
    });

  test('a bad --adapter-kind is a usage error', () => {
    const u = cli(tmp, ['train', '--model', model, '--data', data, '--peft', 'adapter', '--adapter-kind', 'serial', '--out', join(tmp, 'x')]);
    expect(u.code).not.toBe(0);
    expect(u.stderr).toMatch(/--adapter-kind/);
  });
});
