/**
 * `kfac-peft generate --adapter` with prompt or prefix tuning on a decoder: the virtual tokens
 * take positions of the context, so the default budget (no --max-new-tokens) is what they and the
 * prompt leave, and generation runs to it (it used to stream tokens and then fail); a budget over
 * it is a usage error before anything streams.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { generate, loadModel } from '../../lib/models/index.js';
import { applyPrefixTuning } from '../../lib/peft/prefix.js';
import { loadPrefixTuning, savePrefixTuning } from '../../lib/peft/prefix-io.js';
import { applyPromptTuning } from '../../lib/peft/prompt.js';
import { loadPromptTuning, savePromptTuning } from '../../lib/peft/prompt-io.js';
import { cli as runCli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-gen-context-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const { model } = tinySetup(tmp, 4, 2);
// no end-of-sequence token, so that generation runs to its budget
writeFileSync(join(model, 'config.json'), JSON.stringify({ ...(JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as object), eos_token_id: null }));
const N = 20; // virtual tokens, of the tiny LLaMA's 64 positions

describe.each(['prompt', 'prefix'] as const)('generate --adapter (%s tuning, 20 virtual tokens) on a 64-position LLaMA', (method) => {
  const adapter = join(tmp, method);
  {
    using m = loadModel(model);
    if (method === 'prompt') applyPromptTuning(m, { numVirtualTokens: N, seed: 3 });
    else applyPrefixTuning(m, { numVirtualTokens: N, seed: 3 });
    if (method === 'prompt') savePromptTuning(m, adapter);
    else savePrefixTuning(m, adapter);
  }
  const args = ['generate', '--model', model, '--adapter', adapter, '--prompt', 'the cat sat', '--json'];

  test('the default budget is what the prompt and the virtual tokens leave; generation runs to it', () => {
    const r = runCli(tmp, args);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { promptIds: number[]; ids: number[] };
    const budget = 64 - N - out.promptIds.length;
    using m = loadModel(model);
    if (method === 'prompt') loadPromptTuning(m, adapter);
    else loadPrefixTuning(m, adapter);
    expect(out.ids).toEqual(Array.from(generate(m, out.promptIds, { maxNewTokens: budget })));
    expect(out.ids.length, 'no end-of-sequence token: the whole budget').toBe(budget);
  }, 60_000);

  test('--max-new-tokens over that budget is a usage error naming it', () => {
    const r = runCli(tmp, [...args, '--max-new-tokens', String(64 - 12)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`--max-new-tokens 52: .*64 positions, ${N} of them taken by the adapter's virtual tokens; at most 32 new tokens fit`));
    expect(r.stdout).toBe('');
  }, 60_000);
});
