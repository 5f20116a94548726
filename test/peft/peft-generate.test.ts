/**
 * Generation with a prompt or a prefix applied (decoder-only models): lib/models/generate.ts
 * gives the ids that PEFT's generate() gives for the fixture adapters
 * (tools/make_peft_prompt_prefix_fixtures.py --generate: greedy, 6 new tokens), and the adapter
 * matters (the base model alone continues differently).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

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
