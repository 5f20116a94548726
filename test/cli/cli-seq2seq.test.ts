/**
 * `kfac-peft train` / `eval` / `generate` on an encoder-decoder (the tiny T5 v1.1 fixture and its
 * Unigram tokenizer) with a source/target table: K-FAC + LoRA trains, the saved adapter
 * evaluates by exact match, and generate decodes a source.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { cli as runCli, ROOT } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-seq2seq-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[]) => runCli(tmp, args);
const MODEL = join(ROOT, 'test', 'fixtures', 'models', 't5-v1_1');

describe('kfac-peft on T5', () => {
  test('train (K-FAC, LoRA q,v) then eval the saved adapter by exact match; generate decodes', () => {
    const rows = (n: number, k: number) =>
      'source\ttarget\n' + Array.from({ length: n }, (_, i) => `sst2 sentence: ${['the best film', 'a waste of time', 'a good movie'][(i + k) % 3]}\t${(i + k) % 3 === 1 ? 'negative' : 'positive'}`).join('\n') + '\n';
    writeFileSync(join(tmp, 'train.tsv'), rows(16, 0));
    writeFileSync(join(tmp, 'dev.tsv'), rows(3, 0));
    const out = join(tmp, 'run');
    const r = cli(['train', '--model', MODEL, '--data', join(tmp, 'train.tsv'), '--dev', join(tmp, 'dev.tsv'), '--optimizer', 'kfac', '--steps', '4', '--batch-size', '8', '--max-length', '24', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { steps: number; monitor: string; final: number; diverged: boolean };
    expect(summary).toMatchObject({ steps: 4, monitor: 'exact_match', diverged: false });
    expect(summary.final).toBeGreaterThanOrEqual(0);
    const e = cli(['eval', '--model', MODEL, '--data', join(tmp, 'train.tsv'), '--dev', join(tmp, 'dev.tsv'), '--adapter', join(out, 'adapter'), '--json']);
    expect(e.code, e.stderr).toBe(0);
    const ev = JSON.parse(e.stdout) as { monitor: string; metrics: { exact_match: number }; loss: number };
    expect(ev.monitor).toBe('exact_match');
    expect(Number.isFinite(ev.loss)).toBe(true);
    const g = cli(['generate', '--model', MODEL, '--prompt', 'sst2 sentence: the best film', '--max-new-tokens', '5', '--num-beams', '2']);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stdout.length).toBeGreaterThan(0);
  }, 120_000);

  test('causal-LM text for an encoder-decoder is refused with a clear message', () => {
    writeFileSync(join(tmp, 'plain.tsv'), 'sentence\tlabel\nabc\t1\ndef\t0\n');
    const r = cli(['train', '--model', MODEL, '--data', join(tmp, 'plain.tsv'), '--steps', '1', '--out', join(tmp, 'bad')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/"source"/);
  });
});
