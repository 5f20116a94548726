/**
 * `activations: 'bfloat16'` is a storage of the LLaMA, GPT-2 and BERT families (on cuda). T5 keeps
 * float32 activations, so asking it for bf16 is a ConfigError naming `activations` rather than a
 * model that silently runs in float32.
 */
import { describe, expect, test } from 'vitest';

import { ConfigError } from '../../lib/errors.js';
import { gpt2Config } from '../../lib/models/config.js';
import { t5Config } from '../../lib/models/t5-config.js';
import { createBert, createGpt2, createLlama, createModel, createT5 } from '../../lib/models/index.js';

const gpt2 = { vocabSize: 20, hiddenSize: 8, numLayers: 1, numHeads: 2, maxPositions: 16 };
const bert = { vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 };
const t5 = { vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, numBuckets: 4, maxDistance: 8 };

describe('activations: bfloat16 outside the LLaMA, GPT-2 and BERT families', () => {
  test.each([
    ['createT5', () => createT5(t5, { activations: 'bfloat16' })],
    ['createModel (T5 config)', () => createModel(t5Config(t5), { activations: 'bfloat16' })],
  ])('%s: a ConfigError naming activations', (_name, make) => {
    let err: unknown;
    try {
      make();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).argument).toBe('activations');
    expect((err as Error).message).toMatch(/activations.*bfloat16.*LLaMA, GPT-2 and BERT/);
  });

  test("'float32' (or leaving it out) builds every family; LLaMA, GPT-2 and BERT take 'bfloat16'", () => {
    createGpt2(gpt2, { activations: 'float32' }).dispose();
    createBert(bert, {}).dispose();
    createT5(t5, { activations: 'float32' }).dispose();
    using m = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 }, { activations: 'bfloat16' });
    expect(m.embed_tokens.activations).toBe('bfloat16');
    using g = createModel(gpt2Config(gpt2), { activations: 'bfloat16' }) as ReturnType<typeof createGpt2>;
    expect([g.wte.activations, g.wpe.activations]).toEqual(['bfloat16', 'bfloat16']);
    using b = createBert({ ...bert, typeVocabSize: 2 }, { activations: 'bfloat16' });
    expect([b.word_embeddings, b.position_embeddings, b.token_type_embeddings!].map((e) => e.activations)).toEqual(['bfloat16', 'bfloat16', 'bfloat16']);
  });
});
