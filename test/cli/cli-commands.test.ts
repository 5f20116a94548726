/**
 * `generate`, `inspect`, help and version through the real binary:
 * - generate on stories260K (when the shared data is present) gives the documented greedy story;
 *   on a tiny LLaMA folder (always) its ids are the library's generate() ids, with and without a
 *   LoRA adapter; sampling is reproducible by seed;
 * - inspect reports a model folder's, an adapter's, a checkpoint's and a run folder's contents;
 * - every command answers --help and `help <command>`; `help bench` lists the bench cases;
 * - bad input (missing file, wrong kind of file, an adapter for another base model, a prompt
 *   longer than the context, a model with no LM head): one message naming the file, exit 1 or 2.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { generate } from '../../lib/models/generate.js';
import { createLlama, loadModel } from '../../lib/models/index.js';
import { applyLora, loadAdapter, saveAdapter } from '../../lib/peft/index.js';
import { Tokenizer } from '../../lib/io/tokenizer.js';
import { main } from '../../lib/cli/main.js';
import { sharedData, skipNote } from '../support/shared-data.js';
import { cli, ROOT, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-commands-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let model = '';
let data = '';
let adapter = '';
let otherAdapter = '';
let text = '';
const run = (...args: string[]) => cli(tmp, args);

/** main() in this process (no child process start-up): its exit code and what it wrote. */
async function inProcess(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write;
  const w2 = process.stderr.write;
  process.stdout.write = ((c: string | Uint8Array) => (out.push(String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => (err.push(String(c)), true)) as typeof process.stderr.write;
  try {
    const code = await main(args);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

beforeAll(() => {
  ({ model, data } = tinySetup(tmp));
  text = join(tmp, 'text.txt');
  writeFileSync(text, Array.from({ length: 20 }, () => 'the cat sat on the mat. '.repeat(5)).join('\n\n'));
  // an adapter with non-zero weights for the tiny LLaMA, and one for a LLaMA of another width
  using m = loadModel(model);
  const s = applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8, seed: 1 });
  for (const b of s.branches) b.loraB.weight.tensor.set(Float32Array.from({ length: b.loraB.weight.tensor.size }, (_, i) => Math.sin(i + 1) * 0.5));
  adapter = join(tmp, 'adapter');
  saveAdapter(m, adapter);
  using o = createLlama({ vocabSize: 64, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 2 });
  applyLora(o, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8, seed: 1 });
  otherAdapter = join(tmp, 'other-adapter');
  saveAdapter(o, otherAdapter);
});

interface GenJson {
  promptIds: number[];
  ids: number[];
  text: string;
}

describe('kfac-peft generate', () => {
  const llama2c = sharedData('llama2c');
  test.skipIf(!llama2c)('stories260K: greedy continuation of "Once upon a time" is the documented story' + skipNote(llama2c, 'llama2c'), () => {
    const dir = llama2c!;
    const ref = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'llama2c', 'stories260K-greedy.json'), 'utf8')) as { promptIds: number[]; generatedIds: number[]; text: string };
    const r = run('generate', '--model', join(dir, 'stories260K.bin'), '--prompt', 'Once upon a time', '--max-new-tokens', String(ref.generatedIds.length));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
    expect(r.stdout).toBe(`${ref.text}\n`);
    const j = JSON.parse(run('generate', '--model', join(dir, 'stories260K.bin'), '--prompt', 'Once upon a time', '--max-new-tokens', '16', '--json').stdout) as GenJson;
    expect(j.promptIds).toEqual(ref.promptIds);
    expect(j.ids).toEqual(ref.generatedIds.slice(0, 16));
  });

  test('a Hugging Face folder, with and without an adapter: the ids of the library’s generate()', () => {
    const tk = Tokenizer.fromFile(model);
    const prompt = 'the cat sat';
    const ids = tk.encode(prompt, { truncation: false }).ids;
    const expected = (withAdapter: boolean) => {
      using m = loadModel(model);
      if (withAdapter) loadAdapter(m, adapter);
      return Array.from(generate(m, ids, { maxNewTokens: 20, stopTokens: [2] }));
    };
    const plain = JSON.parse(run('generate', '--model', model, '--prompt', prompt, '--max-new-tokens', '20', '--json').stdout) as GenJson;
    expect(plain.promptIds).toEqual(ids);
    expect(plain.ids).toEqual(expected(false));
    // every end-of-sequence id of generation_config.json stops generation (Llama 3 lists several)
    const gc = join(model, 'generation_config.json');
    writeFileSync(gc, JSON.stringify({ eos_token_id: [63, plain.ids[1]] }));
    const stopped = JSON.parse(run('generate', '--model', model, '--prompt', prompt, '--max-new-tokens', '20', '--json').stdout) as GenJson;
    rmSync(gc);
    expect(stopped.ids).toEqual(plain.ids.slice(0, plain.ids.indexOf(plain.ids[1]!) + 1));
    const adapted = JSON.parse(run('generate', '--model', model, '--adapter', adapter, '--prompt', prompt, '--max-new-tokens', '20', '--json').stdout) as GenJson;
    expect(adapted.ids).toEqual(expected(true));
    expect(adapted.ids).not.toEqual(plain.ids);
    // streamed text: the prompt, then the decoded continuation
    const streamed = run('generate', '--model', model, '--adapter', adapter, '--prompt', prompt, '--max-new-tokens', '20');
    expect(streamed.code, streamed.stderr).toBe(0);
    const known = adapted.ids.filter((i) => i !== 2 && i < tk.vocabSize);
    expect(streamed.stdout).toBe(`${prompt}${tk.decode([...ids, ...known]).slice(tk.decode(ids).length)}\n`);
  });

  test('generate() reports each id as it is chosen (what the command streams)', () => {
    using m = loadModel(model);
    const seen: number[] = [];
    const out = generate(m, [2, 5, 6], { maxNewTokens: 12, temperature: 1, seed: 3, onToken: (id) => seen.push(id) });
    expect(out.length).toBeGreaterThan(0);
    expect(seen).toEqual(Array.from(out));
  });

  test('sampling: the same seed gives the same text, another seed another text', () => {
    const g = (seed: string) => (JSON.parse(run('generate', '--model', model, '--prompt', 'a', '--max-new-tokens', '30', '--temperature', '1.5', '--top-p', '0.95', '--seed', seed, '--json').stdout) as GenJson).ids;
    expect(g('1')).toEqual(g('1'));
    expect(g('1')).not.toEqual(g('2'));
  });
});

describe('kfac-peft inspect', () => {
  test('model folder, adapter, checkpoint and run folder', () => {
    const m = JSON.parse(run('inspect', model, '--json').stdout) as { kind: string; parameters: number; tensors: { shape: number[] }[]; architecture: { layers: number; context: number } };
    expect(m.kind).toBe('model');
    expect(m.architecture).toMatchObject({ layers: 2, context: 64 });
    expect(m.parameters).toBe(m.tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0));
    using loaded = loadModel(model);
    expect(m.parameters).toBe(loaded.parameters().reduce((s, p) => s + p.tensor.size, 0));
    const a = JSON.parse(run('inspect', adapter, '--json').stdout) as { kind: string; peft: { method: string; r: number; targets: string[] }; tensors: unknown[] };
    expect(a).toMatchObject({ kind: 'adapter', peft: { method: 'LORA', r: 4 } });
    expect([...a.peft.targets].sort()).toEqual(['q_proj', 'v_proj']);
    expect(a.tensors).toHaveLength(2 * 2 * 2);
    const out = join(tmp, 'run');
    const t = run('train', '--model', model, '--data', data, '--optimizer', 'kfac', '--steps', '6', '--batch-size', '8', '--max-length', '24', '--save-every', '3', '--out', out, '--quiet');
    expect(t.code, t.stderr).toBe(0);
    const c = JSON.parse(run('inspect', join(out, 'checkpoints', 'step-00000006'), '--json').stdout) as { kind: string; intact: boolean; optimizer: { kind: string; tensors: number }; trainer: { step: number; batchInEpoch: number } };
    expect(c).toMatchObject({ kind: 'checkpoint', intact: true, optimizer: { kind: 'kfac', step: 6 }, trainer: { step: 6, batchInEpoch: 6 } });
    expect(c.optimizer.tensors).toBeGreaterThan(0);
    const r = JSON.parse(run('inspect', out, '--json').stdout) as { kind: string; checkpoints: { step: number; kind: string }[]; adapter: string | null };
    expect(r.kind).toBe('run');
    expect(r.checkpoints.filter((x) => x.kind === 'periodic').map((x) => x.step)).toEqual([3, 6]);
    expect(r.adapter).toBe(join(out, 'adapter'));
    const text = run('inspect', model);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/model\.layers\.0\.self_attn\.q_proj\.weight\s+F32\s+\[32, 32\]/);
  });

  const llama2cDir = sharedData('llama2c');
  test.skipIf(!llama2cDir)('a llama2.c checkpoint and tokenizer' + skipNote(llama2cDir, 'llama2c'), () => {
    const dir = llama2cDir!;
    const m = JSON.parse(run('inspect', join(dir, 'stories260K.bin'), '--json').stdout) as { kind: string; architecture: { hiddenSize: number; vocabSize: number } };
    expect(m).toMatchObject({ kind: 'llama2c', architecture: { hiddenSize: 64, vocabSize: 512 } });
    expect(JSON.parse(run('inspect', join(dir, 'tok512.bin'), '--json').stdout)).toMatchObject({ kind: 'llama2c-tokenizer', vocabSize: 512 });
  });
});

describe('help and version', () => {
  const commands = ['info', 'demo', 'train', 'eval', 'generate', 'inspect', 'compare', 'doctor', 'bench'];
  test.each(commands)('%s: --help and help <command>', async (c) => {
    const a = await inProcess(c, '--help');
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(new RegExp(`^usage: kfac-peft ${c}`));
    expect((await inProcess('help', c)).stdout).toBe(a.stdout);
  });

  test('help bench lists every bench case with its description', async () => {
    const h = (await inProcess('help', 'bench')).stdout;
    const names = /usage: kfac-peft bench <([^>]+)\|all>/.exec(h)![1]!.split('|');
    expect(names.length).toBeGreaterThan(3);
    for (const n of names) expect(h).toMatch(new RegExp(`^  ${n}\\s+\\S.{10,}`, 'm'));
    const one = await inProcess('help', 'bench', names[0]!);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^usage: kfac-peft bench ${names[0]}`));
    expect(h).toContain(one.stdout.split('\n')[2]!.trim());
    expect((await inProcess('help', 'bench', 'nosuch')).code).toBe(2);
    const step = await inProcess('help', 'bench', 'step');
    expect(step.code).toBe(0);
    expect(step.stdout).toMatch(/^usage: kfac-peft bench step/);
    for (const o of ['--shape', '--peft', '--target-seq', '--optimizer', '--dtype', '--peer torch', '--profile', 't5-small', 'flan-t5-small']) expect(step.stdout).toContain(o);
    expect((await inProcess('bench', 'step', '--help')).stdout).toBe(step.stdout);
  });

  test('--version, help of an unknown command, the exit codes in the usage', () => {
    expect(run('--version').stdout.trim()).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
    const u = run('help', 'nosuch');
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/unknown command "nosuch"/);
    expect(run('help').stdout).toMatch(/exit codes: 0 success, 1 failure .* 2 usage error, 130 interrupted/);
    expect(run('train', '--help').stdout).toMatch(/--save-every N/);
  });
});

describe('bad input: one message naming the file, exit 1 or 2', () => {
  const cases: [string, () => string[], number, RegExp][] = [
    ['generate: missing model', () => ['generate', '--model', join(tmp, 'nope'), '--prompt', 'a'], 1, /nope: cannot open/],
    ['generate: a file that is no model', () => ['generate', '--model', join(ROOT, 'package.json'), '--prompt', 'a'], 1, /package\.json: not a model/],
    ['generate: an adapter for another base model', () => ['generate', '--model', model, '--adapter', otherAdapter, '--prompt', 'a'], 1, /--adapter .*other-adapter does not fit .*shape \[4, 16\].*\[4, 32\]/s],
    ['generate: missing adapter', () => ['generate', '--model', model, '--adapter', join(tmp, 'gone'), '--prompt', 'a'], 1, /gone/],
    ['generate: a prompt longer than the context', () => ['generate', '--model', model, '--prompt', 'a'.repeat(80)], 2, /the prompt is 81 tokens; the model .* has a context of 64 positions/],
    ['generate: more new tokens than the context leaves', () => ['generate', '--model', model, '--prompt', 'abc', '--max-new-tokens', '100'], 2, /at most 60 new tokens fit/],
    ['generate: a model without an LM head', () => ['generate', '--model', join(ROOT, 'test', 'fixtures', 'models', 'bert-cls'), '--prompt', 'a'], 2, /cannot generate text/],
    ['generate: a bad temperature', () => ['generate', '--model', model, '--prompt', 'a', '--temperature', '-1'], 2, /--temperature: expected/],
    ['generate: no prompt', () => ['generate', '--model', model], 2, /--prompt is required/],
    ['inspect: missing path', () => ['inspect', join(tmp, 'nope')], 1, /nope: cannot open/],
    ['inspect: a file of another kind', () => ['inspect', join(ROOT, 'package.json')], 1, /package\.json: not a model folder/],
    ['inspect: no path', () => ['inspect'], 2, /inspect takes one PATH/],
    ['eval: an adapter for another base model', () => ['eval', '--model', model, '--data', data, '--adapter', otherAdapter, '--max-length', '24'], 1, /--adapter .*other-adapter does not fit .*shape/s],
    ['eval: a file that is no model', () => ['eval', '--model', join(ROOT, 'package.json'), '--data', data], 1, /package\.json: not a model/],
    ['eval: LM blocks longer than the context', () => ['eval', '--model', model, '--data', text, '--max-length', '100'], 1, /--max-length 100: the model .* has 64 positions/],
  ];
  test('train: LM blocks longer than the context fail before anything is written', () => {
    const out = join(tmp, 'too-long');
    const r = run('train', '--model', model, '--data', text, '--max-length', '100', '--steps', '2', '--out', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--max-length 100: the model .* has 64 positions/);
    expect(existsSync(out)).toBe(false);
  });

  test.each(cases)('%s', async (_, args, code, message) => {
    const r = await inProcess(...args());
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });
});
