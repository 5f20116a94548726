/**
 * Weight-name normalisation.
 *
 * Expected values: the weightNames section of test/fixtures/io/configs/expected.json, the
 * state_dict names of tiny transformers models (AutoModel, and the LM-head model of the same
 * config) written by tools/make_io_fixtures_configs.py; plus the llama2.c checkpoint of the
 * shared data for the tied-embedding alias.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { FormatError, KfacError } from '../../lib/index.js';
import {
  baseModelWeightName,
  CanonicalWeights,
  canonicalNameMap,
  canonicalWeightName,
  type ModelFamily,
  openLlama2c,
  openPretrained,
  saveSafetensors,
  SafetensorsFile,
  serializeSafetensors,
  tiedWeightNames,
} from '../../lib/io/index.js';
import { sharedData, skipNote } from '../support/shared-data.js';

const weightNames = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'io', 'configs', 'expected.json'), 'utf8')) as {
    weightNames: Record<ModelFamily, { base: string[]; task: string[]; taskClass: string }>;
  }
).weightNames;

describe('canonical weight names against transformers state_dict names', () => {
  it.each(Object.entries(weightNames) as [ModelFamily, { base: string[]; task: string[]; taskClass: string }][])('%s', (family, { base, task }) => {
    const taskSet = new Set(task);
    // a bare base model's names become the task model's names (BERT's MLM model has no pooler)
    for (const n of base) {
      const c = canonicalWeightName(n, family);
      if (!n.startsWith('pooler.')) expect(taskSet.has(c), `${n} → ${c}`).toBe(true);
      expect(baseModelWeightName(c, family)).toBe(n);
    }
    // task names are already canonical; heads stay heads
    for (const n of task) {
      expect(canonicalWeightName(n, family)).toBe(n);
      if (baseModelWeightName(n, family) === null) expect(base.includes(n)).toBe(false);
    }
    const [head, emb] = tiedWeightNames(family);
    expect(taskSet.has(head)).toBe(true);
    expect(taskSet.has(emb)).toBe(true);
  });

  it('renames legacy LayerNorm gamma/beta and refuses names that collide', () => {
    expect(canonicalWeightName('embeddings.LayerNorm.gamma', 'bert')).toBe('bert.embeddings.LayerNorm.weight');
    expect(canonicalWeightName('bert.encoder.layer.0.output.LayerNorm.beta', 'bert')).toBe('bert.encoder.layer.0.output.LayerNorm.bias');
    expect(canonicalWeightName('h.0.attn.c_attn.weight', 'gpt2')).toBe('transformer.h.0.attn.c_attn.weight');
    expect(canonicalWeightName('layers.3.mlp.up_proj.weight', 'qwen2')).toBe('model.layers.3.mlp.up_proj.weight');
    expect(canonicalWeightName('classifier.weight', 'distilbert')).toBe('classifier.weight');
    expect(() => canonicalNameMap(['embeddings.LayerNorm.gamma', 'bert.embeddings.LayerNorm.weight'], 'bert', { source: 'x.safetensors' })).toThrow(FormatError);
    expect(() => canonicalWeightName('a', 't5' as never)).toThrow(KfacError);
  });

  it('serves a checkpoint under canonical names with the tied head aliased', () => {
    const bytes = serializeSafetensors({
      'wte.weight': { data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] },
      'h.0.ln_1.gamma': { data: Float32Array.from([5, 6]), shape: [2] },
    });
    const w = new CanonicalWeights(SafetensorsFile.fromBytes(bytes), { family: 'gpt2', tieWordEmbeddings: true });
    expect([...w.names].sort()).toEqual(['lm_head.weight', 'transformer.h.0.ln_1.weight', 'transformer.wte.weight']);
    expect(Array.from(w.readFloat32('lm_head.weight'))).toEqual([1, 2, 3, 4]);
    expect(w.originalName('transformer.h.0.ln_1.weight')).toBe('h.0.ln_1.gamma');
    const untied = new CanonicalWeights(SafetensorsFile.fromBytes(bytes), { family: 'gpt2', tieWordEmbeddings: false });
    expect(untied.has('lm_head.weight')).toBe(false);
  });
});

const LLAMA2C = sharedData('llama2c/stories260K.bin');
describe.skipIf(LLAMA2C === undefined)(`llama2.c weights are already canonical LLaMA names${skipNote(LLAMA2C, 'llama2c/stories260K.bin')}`, () => {
  it('maps every name to itself and aliases the shared classifier', () => {
    const ck = openLlama2c(LLAMA2C!);
    for (const n of ck.names) expect(canonicalWeightName(n, 'llama')).toBe(n);
    const w = new CanonicalWeights(ck, ck.config);
    expect(w.originalName('lm_head.weight')).toBe('model.embed_tokens.weight');
    expect(Array.from(w.readFloat32('lm_head.weight').subarray(0, 8))).toEqual(Array.from(ck.readFloat32('model.embed_tokens.weight').subarray(0, 8)));
  });
});

describe('openPretrained', () => {
  it('opens a folder with config.json, unprefixed legacy-named weights and a tokenizer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kfac-io-pre-'));
    try {
      copyFileSync(join(import.meta.dirname, '..', 'fixtures', 'io', 'configs', 'v4', 'bert-base-uncased.json'), join(dir, 'config.json'));
      saveSafetensors(join(dir, 'model.safetensors'), {
        'embeddings.word_embeddings.weight': { data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] },
        'embeddings.LayerNorm.gamma': { data: Float32Array.from([1, 1]), shape: [2] },
      });
      copyFileSync(join(import.meta.dirname, '..', 'fixtures', 'io', 'tokenizer', 'wordlevel-roberta.json'), join(dir, 'tokenizer.json'));
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ pad_token: '<pad>' }));
      const m = openPretrained(dir);
      expect(m.config.family).toBe('bert');
      expect([...m.weights.names].sort()).toEqual(['bert.embeddings.LayerNorm.weight', 'bert.embeddings.word_embeddings.weight', 'cls.predictions.decoder.weight']);
      expect(m.tokenizer?.padTokenId).toBe(1);
      rmSync(join(dir, 'model.safetensors'));
      expect(() => openPretrained(dir)).toThrow(/neither model\.safetensors/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

