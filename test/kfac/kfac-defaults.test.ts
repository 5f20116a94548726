/**
 * `kfac-peft train` and `compare` with every option at its default (K-FAC: lr 0.1, damping 1e-3,
 * the default trust-ratio Newton clip), through the real binary, on a tiny LLaMA
 * (test/fixtures/models/llama-gqa) and a separable letters task: finite, no divergence, learns.
 * Before the default clip, this K-FAC run blew the loss up within a few steps.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'kfac-peft.js');
const tmp = mkdtempSync(join(tmpdir(), 'kfac-defaults-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, KFAC_NUM_THREADS: '1' }, timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

function charTokenizer(): object {
  const vocab: Record<string, number> = { '[PAD]': 0, '[UNK]': 1, '[BOS]': 2 };
  [...' abcdefghijklmnopqrstuvwxyz.'].forEach((c, i) => (vocab[c] = i + 3));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '[PAD]'), special(1, '[UNK]'), special(2, '[BOS]')],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[BOS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[BOS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '[BOS]': { id: '[BOS]', ids: [2], tokens: ['[BOS]'] } },
    },
    decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '[UNK]', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}

/** Seeded words: class 1 draws letters from a–m, class 0 from n–z. */
function examples(n: number, seed: number): string {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s / 2 ** 31);
  const rows = ['sentence\tlabel'];
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    const base = label ? 0 : 13;
    const words = Array.from({ length: 3 + Math.floor(rnd() * 3) }, () => Array.from({ length: 2 + Math.floor(rnd() * 4) }, () => String.fromCharCode(97 + base + Math.floor(rnd() * 13))).join(''));
    rows.push(`${words.join(' ')}\t${label}`);
  }
  return rows.join('\n') + '\n';
}

let model = '';
let data = '';
beforeAll(() => {
  model = join(tmp, 'tiny-llama');
  mkdirSync(model);
  const fx = join(ROOT, 'test', 'fixtures', 'models', 'llama-gqa');
  copyFileSync(join(fx, 'config.json'), join(model, 'config.json'));
  copyFileSync(join(fx, 'model.safetensors'), join(model, 'model.safetensors'));
  writeFileSync(join(model, 'tokenizer.json'), JSON.stringify(charTokenizer()));
  writeFileSync(join(model, 'tokenizer_config.json'), JSON.stringify({ pad_token: '[PAD]' }));
  data = join(tmp, 'letters');
  mkdirSync(data);
  writeFileSync(join(data, 'train.tsv'), examples(640, 1));
  writeFileSync(join(data, 'dev.tsv'), examples(96, 2));
  writeFileSync(join(data, 'task.json'), JSON.stringify({ name: 'letters', numLabels: 2, labels: ['n-z', 'a-m'], metrics: ['accuracy'] }));
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
