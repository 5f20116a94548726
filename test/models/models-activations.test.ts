/**
 * `activations: 'bfloat16'` is a storage every model family takes (it runs on cuda, docs/CUDA.md;
 * on the CPU the first op refuses it). Another value is a typed error naming `activations`, so a
 * model never silently runs in a storage other than the one asked for.
 */
import { describe, expect, test } from 'vitest';

import { InvalidArgumentError } from '../../lib/errors.js';
import { gpt2Config } from '../../lib/models/config.js';
import { createBert, createGpt2, createLlama, createModel, createT5 } from '../../lib/models/index.js';
import { t5Config } from '../../lib/models/t5-config.js';

const gpt2 = { vocabSize: 20, hiddenSize: 8, numLayers: 1, numHeads: 2, maxPositions: 16 };
const bert = { vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 };
const t5 = { vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, numBuckets: 4, maxDistance: 8 };
const llama = { vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 };

describe('activations', () => {
  test("'float32' (or leaving it out) and 'bfloat16' build every family, and the model keeps the storage", () => {
    createGpt2(gpt2, { activations: 'float32' }).dispose();
    createBert(bert, {}).dispose();
    createT5(t5, { activations: 'float32' }).dispose();
    using m = createLlama(llama, { activations: 'bfloat16' });
    expect(m.embed_tokens.activations).toBe('bfloat16');
    using g = createModel(gpt2Config(gpt2), { activations: 'bfloat16' }) as ReturnType<typeof createGpt2>;
    expect([g.wte.activations, g.wpe.activations]).toEqual(['bfloat16', 'bfloat16']);
    using b = createBert({ ...bert, typeVocabSize: 2 }, { activations: 'bfloat16' });
    expect([b.word_embeddings, b.position_embeddings, b.token_type_embeddings!].map((e) => e.activations)).toEqual(['bfloat16', 'bfloat16', 'bfloat16']);
    using t = createModel(t5Config(t5), { activations: 'bfloat16' }) as ReturnType<typeof createT5>;
    expect(t.activations).toBe('bfloat16');
  });

  test.each([
    ['createLlama', () => createLlama(llama, { activations: 'float16' as never })],
    ['createGpt2', () => createGpt2(gpt2, { activations: 'float16' as never })],
    ['createBert', () => createBert(bert, { activations: 'float16' as never })],
    ['createT5', () => createT5(t5, { activations: 'float16' as never })],
  ])("%s: another storage ('float16') is an InvalidArgumentError naming activations", (_name, make) => {
    let err: unknown;
    try {
      make();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).argument).toBe('activations');
  });
});
