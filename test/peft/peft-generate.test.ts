/**
 * Generation with a prompt or a prefix applied (decoder-only models): lib/models/generate.ts
 * gives the ids that PEFT's generate() gives for the fixture adapters
 * (tools/make_peft_prompt_prefix_fixtures.py --generate: greedy, 6 new tokens), and the adapter
 * matters (the base model alone continues differently). The virtual tokens or the prefix take
 * positions of the context: a budget that does not fit is refused before anything streams.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { InvalidArgumentError } from '../../lib/errors.js';
import { generate, loadModel } from '../../lib/models/index.js';
import { loadPrefixTuning } from '../../lib/peft/prefix-io.js';
import { removePrefixTuning } from '../../lib/peft/prefix.js';
import { loadPromptTuning } from '../../lib/peft/prompt-io.js';
import { removePromptTuning } from '../../lib/peft/prompt.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'peft');
const MODELS = join(import.meta.dirname, '..', 'fixtures', 'models');

const CASES = [
  ['prompt-llama', 'llama-gqa'],
  ['prompt-gpt2', 'gpt2-lm'],
  ['prefix-llama', 'llama-gqa'],
  ['prefix-gpt2', 'gpt2-lm'],
] as const;

describe.each(CASES)("%s: generate() gives PEFT's ids", (name, base) => {
  it('greedy, 6 new tokens, each row', () => {
    const exp = JSON.parse(readFileSync(join(FIX, name, 'generate.json'), 'utf8')) as { rows: { prompt: number[]; newTokens: number[] }[] };
    using model = loadModel(join(MODELS, base));
    const prompt = name.startsWith('prompt');
    if (prompt) loadPromptTuning(model, join(FIX, name));
    else loadPrefixTuning(model, join(FIX, name));
    const got = exp.rows.map((r) => Array.from(generate(model, r.prompt, { maxNewTokens: r.newTokens.length })));
    expect(got).toEqual(exp.rows.map((r) => r.newTokens));
    if (prompt) removePromptTuning(model);
    else removePrefixTuning(model);
    const plain = exp.rows.map((r) => Array.from(generate(model, r.prompt, { maxNewTokens: r.newTokens.length })));
    expect(plain, 'the base model alone continues differently').not.toEqual(got);
  });
});

describe.each(CASES)('%s: the virtual tokens count against the context', (name, base) => {
  it('the last budget that fits generates every token; one more is a typed error before any token', () => {
    using model = loadModel(join(MODELS, base));
    const ctx = model.config.maxPositions;
    const dir = join(FIX, name);
    const n = (JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { num_virtual_tokens: number }).num_virtual_tokens;
    if (name.startsWith('prompt')) loadPromptTuning(model, dir);
    else loadPrefixTuning(model, dir);
    const prompt = [3, 5, 7, 9, 11];
    const fit = ctx - n - prompt.length;
    const streamed: number[] = [];
    expect(generate(model, prompt, { maxNewTokens: fit, onToken: (id) => streamed.push(id) }).length).toBe(fit);
    expect(streamed.length).toBe(fit);
    // one more (the convention of the base model: prompt + new tokens ≤ positions), and the old
    // command-line default (the context less the prompt), which streamed tokens and then failed
    for (const maxNewTokens of [fit + 1, ctx - prompt.length]) {
      streamed.length = 0;
      let err: unknown;
      try {
        generate(model, prompt, { maxNewTokens, onToken: (id) => streamed.push(id) });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe('maxNewTokens');
      expect((err as Error).message).toMatch(new RegExp(`at most ${fit} .*${ctx} positions, ${n} of them taken by the adapter`));
      expect(streamed, 'nothing streamed before the error').toEqual([]);
    }
    // a prompt that leaves no room names the prompt
    expect(() => generate(model, new Array<number>(ctx - n).fill(3), { maxNewTokens: 1 })).toThrow(/promptIds/);
  });
});
