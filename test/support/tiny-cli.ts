/**
 * A tiny run setup for command-line tests: the real `kfac-peft` binary, a tiny LLaMA
 * (test/fixtures/models/llama-gqa) with a character-level tokenizer.json, and a separable
 * two-class text task (class 1 draws letters from a–m, class 0 from n–z).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'kfac-peft.js');
export const ENV = { ...process.env, KFAC_NUM_THREADS: '1' };

export function cli(cwd: string, args: string[], timeout = 120_000): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: ENV, timeout });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** [PAD] [UNK] [BOS], space, a–z and '.'; BOS prepended. */
export function charTokenizer(): object {
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

/** Writes `<dir>/tiny-llama` (model + tokenizer) and `<dir>/letters` (train/dev/task.json); returns their paths. */
export function tinySetup(dir: string, trainRows = 160, devRows = 32, metrics: readonly string[] = ['accuracy']): { model: string; data: string } {
  const model = join(dir, 'tiny-llama');
  mkdirSync(model, { recursive: true });
  const fx = join(ROOT, 'test', 'fixtures', 'models', 'llama-gqa');
  copyFileSync(join(fx, 'config.json'), join(model, 'config.json'));
  copyFileSync(join(fx, 'model.safetensors'), join(model, 'model.safetensors'));
  writeFileSync(join(model, 'tokenizer.json'), JSON.stringify(charTokenizer()));
  writeFileSync(join(model, 'tokenizer_config.json'), JSON.stringify({ pad_token: '[PAD]' }));
  const data = join(dir, 'letters');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'train.tsv'), examples(trainRows, 1));
  writeFileSync(join(data, 'dev.tsv'), examples(devRows, 2));
  writeFileSync(join(data, 'task.json'), JSON.stringify({ name: 'letters', numLabels: 2, labels: ['n-z', 'a-m'], metrics }));
  return { model, data };
}
