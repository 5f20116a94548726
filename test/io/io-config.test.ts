/**
 * config.json normalisation.
 *
 * Expected values: test/fixtures/io/configs/expected.json, written by
 * tools/make_io_fixtures_configs.py from what transformers (AutoConfig) reads out of each config:
 * v4/ holds public Hub configs in the transformers v4 spelling, v5/ configs saved by
 * transformers 5 itself (rope_parameters, dtype).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, FileError, FormatError } from '../../lib/index.js';
import { loadModelConfig, parseModelConfig } from '../../lib/io/index.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'io', 'configs');
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { configs: Record<string, Record<string, unknown>> };
const raw = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(DIR, name), 'utf8')) as Record<string, unknown>;

describe('config.json as transformers reads it', () => {
  const files = ['v4', 'v5'].flatMap((v) => readdirSync(join(DIR, v)).map((f) => `${v}/${f}`));
  it('covers every family in both spellings', () => {
    expect(files.length).toBe(Object.keys(expected.configs).length);
    for (const v of ['v4', 'v5'])
      for (const fam of ['bert', 'roberta', 'distilbert', 'llama', 'mistral', 'qwen2', 'gpt2'])
        expect(files.some((f) => f.startsWith(v) && expected.configs[f]!['family'] === fam)).toBe(true);
  });

  it.each(files)('%s', (f) => {
    const want = expected.configs[f]!;
    const c = loadModelConfig(join(DIR, f));
    const got: Record<string, unknown> = {
      family: c.family,
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      numLayers: c.numLayers,
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: c.headDim,
      intermediateSize: c.intermediateSize,
      maxPositionEmbeddings: c.maxPositionEmbeddings,
      hiddenAct: c.hiddenAct,
      normEps: c.normEps,
      tieWordEmbeddings: c.tieWordEmbeddings,
      typeVocabSize: c.typeVocabSize,
      dtype: c.dtype ?? null,
    };
    if (c.rope) {
      got['ropeTheta'] = c.rope.theta;
      got['ropeType'] = c.rope.type;
    }
    if (want['slidingWindow'] !== undefined) got['slidingWindow'] = c.slidingWindow;
    expect(got).toEqual(want);
  });

  it('fills in the family-specific structure', () => {
    const bert = loadModelConfig(join(DIR, 'v4', 'bert-base-uncased.json'));
    expect(bert).toMatchObject({ norm: 'layernorm', positions: 'absolute', positionOffset: 0, rope: undefined, qkvBias: true, mlpBias: true, padTokenId: 0 });
    expect(loadModelConfig(join(DIR, 'v4', 'roberta-base.json'))).toMatchObject({ positionOffset: 2, padTokenId: 1, eosTokenIds: [2] });
    expect(loadModelConfig(join(DIR, 'v4', 'distilbert-sst2.json')).labels).toEqual(['NEGATIVE', 'POSITIVE']);
    expect(loadModelConfig(join(DIR, 'v5', 'distilbert.json')).positions).toBe('sinusoidal');
    const llama3 = loadModelConfig(join(DIR, 'v4', 'llama-3.2-1b.json'));
    expect(llama3).toMatchObject({ norm: 'rmsnorm', positions: 'rope', qkvBias: false, attentionOutputBias: false, mlpBias: false, bosTokenId: 128000 });
    expect(llama3.rope).toEqual({ theta: 500000, style: 'half', type: 'llama3', parameters: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192 } });
    expect(loadModelConfig(join(DIR, 'v4', 'qwen2-0.5b.json'))).toMatchObject({ qkvBias: true, attentionOutputBias: false, slidingWindow: undefined });
    expect(loadModelConfig(join(DIR, 'v4', 'gpt2.json'))).toMatchObject({ qkvBias: true, norm: 'layernorm', positions: 'absolute' });
  });
});

describe('unknown or inconsistent configs', () => {
  const llama = raw('v4/llama-2-7b.json');
  const gpt2 = raw('v4/gpt2.json');
  it.each([
    ['an unknown model_type', { model_type: 't5' }, /"t5" is not supported/],
    ['no model_type', { hidden_size: 8 }, /model_type/],
    ['heads that do not divide the width', { ...llama, num_attention_heads: 30 }, /not a multiple/],
    ['kv heads that do not divide the heads', { ...llama, num_key_value_heads: 5 }, /key\/value heads/],
    ['rope_theta and rope_parameters that disagree', { ...llama, rope_theta: 10000, rope_parameters: { rope_type: 'default', rope_theta: 500000 } }, /disagree/],
    ['torch_dtype and dtype that disagree', { ...llama, dtype: 'bfloat16' }, /disagree/],
    ['n_embd and hidden_size that disagree', { ...gpt2, hidden_size: 1024 }, /disagree/],
    ['a non-positive size', { ...llama, vocab_size: 0 }, /vocab_size/],
    ['a size that is not an integer', { ...llama, hidden_size: '4096' }, /hidden_size/],
    ['a zero epsilon', { ...llama, rms_norm_eps: 0 }, /rms_norm_eps/],
    ['an unknown dtype', { ...llama, torch_dtype: 'int4' }, /dtype/],
    ['a non-boolean tie flag', { ...llama, tie_word_embeddings: 'yes' }, /tie_word_embeddings/],
    ['a pad token outside the vocabulary', { ...llama, pad_token_id: 32000 }, /pad_token_id/],
    ['relative position embeddings', { ...raw('v4/bert-base-uncased.json'), position_embedding_type: 'relative_key' }, /position_embedding_type/],
    ['not an object', [1, 2], /config object/],
  ])('%s', (_label, cfg, pattern) => {
    expect(() => parseModelConfig(cfg, 'x/config.json')).toThrow(ConfigError);
    expect(() => parseModelConfig(cfg, 'x/config.json')).toThrow(pattern);
    try {
      parseModelConfig(cfg, 'x/config.json');
    } catch (e) {
      expect((e as ConfigError).code).toBe('ERR_CONFIG');
      expect((e as ConfigError).message).toContain('x/config.json');
    }
  });

  it('accepts agreeing spellings side by side', () => {
    expect(parseModelConfig({ ...llama, dtype: 'float16', rope_theta: 10000, rope_parameters: { rope_type: 'default', rope_theta: 10000 } }).rope?.theta).toBe(10000);
  });

  it('reports missing and malformed files', () => {
    expect(() => loadModelConfig('/nonexistent/config.json')).toThrow(FileError);
    expect(() => loadModelConfig(join(DIR, '..', 'safetensors', 'reference_f32.safetensors'))).toThrow(FormatError);
    expect(() => loadModelConfig(join(DIR, 'v5'))).toThrow(/v5\/config\.json/); // a folder without config.json
  });
});
