/**
 * `kfac-peft generate --adapter` with prompt and prefix tuning on T5: a prompt trained by
 * `train --peft prompt` (K-FAC) and PEFT's prefix fixture load from their folders, and the
 * command prints the ids that the library's generateSeq2Seq gives with the same adapter —
 * which differ from the base model's. And T5 sampling from the command line: seeded, the same
 * ids as the library's.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { generateSeq2Seq, loadModel, type T5Model } from '../../lib/models/index.js';
import { loadPrefixTuning } from '../../lib/peft/prefix-io.js';
import { loadPromptTuning } from '../../lib/peft/prompt-io.js';
import { cli as runCli, ROOT } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-gen-adapter-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[]) => runCli(tmp, args);
const MODELS = join(ROOT, 'test', 'fixtures', 'models');

type Out = { promptIds: number[]; ids: number[] };

function expectSame(model: string, adapter: string, beams: number): void {
  const args = ['generate', '--model', model, '--prompt', 'sst2 sentence: a good movie', '--max-new-tokens', '5', '--num-beams', String(beams), '--json'];
  const g = cli([...args, '--adapter', adapter]);
  expect(g.code, g.stderr).toBe(0);
  const out = JSON.parse(g.stdout) as Out;
  using m = loadModel(model) as unknown as T5Model & Disposable;
  const type = (JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as { peft_type: string }).peft_type;
  if (type === 'PROMPT_TUNING') loadPromptTuning(m, adapter);
  else loadPrefixTuning(m, adapter);
  expect(out.ids).toEqual(Array.from(generateSeq2Seq(m, out.promptIds, { maxNewTokens: 5, numBeams: beams })));
  const plain = cli(args);
  expect(plain.code, plain.stderr).toBe(0);
  expect((JSON.parse(plain.stdout) as Out).ids, 'the adapter changes the output').not.toEqual(out.ids);
}

describe('kfac-peft generate --adapter on T5', () => {
  test('a prompt trained by train --peft prompt (K-FAC)', () => {
    const f = join(tmp, 'train.tsv');
    writeFileSync(f, 'source\ttarget\n' + Array.from({ length: 16 }, (_, i) => `sst2 sentence: ${['the best film', 'a waste of time'][i % 2]}\t${i % 2 ? 'negative' : 'positive'}`).join('\n') + '\n');
    const out = join(tmp, 'run');
    const model = join(MODELS, 't5-v1_1');
    const r = cli(['train', '--model', model, '--data', f, '--peft', 'prompt', '--num-virtual-tokens', '4', '--optimizer', 'kfac', '--steps', '3', '--batch-size', '8', '--max-length', '24', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg).toMatchObject({ peft_type: 'PROMPT_TUNING', task_type: 'SEQ_2_SEQ_LM', num_transformer_submodules: 2, num_virtual_tokens: 4 });
    expectSame(model, join(out, 'adapter'), 1);
  }, 120_000);

  test("PEFT's prefix fixture, beam search", () => {
    expectSame(join(MODELS, 't5-v1_0'), join(ROOT, 'test', 'fixtures', 'peft', 'prefix-t5-v1_0'), 2);
  }, 120_000);
});

test('kfac-peft generate on T5 samples with --temperature, --top-k, --seed as the library does', () => {
  const model = join(MODELS, 't5-v1_1');
  const args = ['generate', '--model', model, '--prompt', 'sst2 sentence: a good movie', '--max-new-tokens', '6', '--temperature', '1.5', '--top-k', '20', '--seed', '4', '--json'];
  const a = cli(args);
  expect(a.code, a.stderr).toBe(0);
  const out = JSON.parse(a.stdout) as Out;
  using m = loadModel(model) as unknown as T5Model & Disposable;
  expect(out.ids).toEqual(Array.from(generateSeq2Seq(m, out.promptIds, { maxNewTokens: 6, temperature: 1.5, topK: 20, seed: 4 })));
  expect(cli([...args.slice(0, -1), '--num-beams', '2']).code, 'sampling with beams is a usage error').not.toBe(0);
}, 60_000);
