/**
 * loadModel's accounting of weights (missing, unexpected, misshapen, fresh heads, dropped
 * heads, bare checkpoints), configs it refuses, batch validation, module names for PEFT, and
 * generate()'s arguments.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, test } from 'vitest';

import { ConfigError, InvalidArgumentError, KfacError, ShapeError } from '../../lib/errors.js';
import { openSafetensors, saveSafetensors } from '../../lib/io/safetensors.js';
import { configFromHf, createBert, createGpt2, createLlama, generate, LoadError, loadModel } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { sharedData, skipNote } from '../support/shared-data.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');
const tmp = mkdtempSync(join(tmpdir(), 'kfac-models-api-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture folder whose weights are rewritten by `edit` (name → values, shape). */
function variant(fixture: string, name: string, edit: (w: Map<string, { data: Float32Array; shape: readonly number[] }>) => void): string {
  const dir = join(tmp, name);
  const src = openSafetensors(join(FIXTURES, fixture));
  const w = new Map(src.names.map((n) => [n, { data: src.readFloat32(n), shape: src.info(n).shape }]));
  edit(w);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(FIXTURES, fixture, 'config.json'), join(dir, 'config.json'));
  saveSafetensors(join(dir, 'model.safetensors'), w);
  return dir;
}

const caught = (f: () => unknown): KfacError => {
  try {
    f();
  } catch (e) {
    if (e instanceof KfacError) return e;
    throw e;
  }
  throw new Error('expected a throw');
};

describe('loadModel accounts for every weight', () => {
  test('a missing weight is a LoadError naming it', () => {
    const dir = variant('llama-gqa', 'missing', (w) => w.delete('model.layers.1.mlp.up_proj.weight'));
    const e = caught(() => loadModel(dir));
    expect(e).toBeInstanceOf(LoadError);
    expect(e.code).toBe('ERR_LOAD');
    expect((e as LoadError).key).toBe('model.layers.1.mlp.up_proj.weight');
  });

  test('an unexpected weight is a LoadError naming it', () => {
    const dir = variant('gpt2-lm', 'unexpected', (w) => w.set('transformer.h.0.attn.extra.weight', { data: new Float32Array(4), shape: [2, 2] }));
    const e = caught(() => loadModel(dir));
    expect(e).toBeInstanceOf(LoadError);
    expect(e.message).toContain('transformer.h.0.attn.extra.weight');
  });

  test('a misshapen weight is a LoadError with both shapes', () => {
    const dir = variant('bert-cls', 'misshapen', (w) => w.set('bert.pooler.dense.bias', { data: new Float32Array(31), shape: [31] }));
    const e = caught(() => loadModel(dir));
    expect(e).toBeInstanceOf(LoadError);
    expect(e.message).toContain('[31]');
    expect(e.message).toContain('[32]');
  });

  test('a classification head on a causal LM checkpoint is fresh (seeded), its LM head dropped', () => {
    const dir = join(FIXTURES, 'llama-gqa');
    using a = loadModel(dir, { task: 'sequence-classification', numLabels: 3, seed: 4 });
    using b = loadModel(dir, { task: 'sequence-classification', numLabels: 3, seed: 4 });
    using c = loadModel(dir, { task: 'sequence-classification', numLabels: 3, seed: 5 });
    expect(a.loadReport.fresh).toEqual(['score.weight']);
    expect(a.loadReport.dropped).toEqual(['lm_head.weight']);
    const w = (m: typeof a): number[] => Array.from(m.parameters().find((p) => p.name === 'score.weight')!.tensor.toArray());
    expect(w(a)).toEqual(w(b));
    expect(w(a)).not.toEqual(w(c));
    expect(a.numLabels).toBe(3);
  });

  test('a head of another size asks for numLabels', () => {
    const e = caught(() => loadModel(join(FIXTURES, 'bert-cls'), { numLabels: 5 }));
    expect(e).toBeInstanceOf(LoadError);
    expect(e.message).toContain('numLabels');
  });

  test('a checkpoint saved without the base-model prefix, with buffers and legacy LayerNorm names, loads', () => {
    const dir = variant('bert-cls', 'bare', (w) => {
      for (const [k, v] of [...w]) {
        if (!k.startsWith('bert.')) continue;
        w.delete(k);
        w.set(k.slice(5).replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta'), v);
      }
      w.set('embeddings.position_ids', { data: new Float32Array(32), shape: [1, 32] });
      w.set('cls.predictions.bias', { data: new Float32Array(50), shape: [50] });
    });
    using m = loadModel(dir);
    expect([...m.loadReport.dropped].sort()).toEqual(['cls.predictions.bias', 'embeddings.position_ids']);
    expect(m.loadReport.fresh).toEqual([]);
    using ref = loadModel(join(FIXTURES, 'bert-cls'));
    const batch = { inputIds: Int32Array.of(2, 3, 4, 5), shape: [1, 4] as const };
    expect(Array.from(m.logits(batch))).toEqual(Array.from(ref.logits(batch)));
  });

  test('a sharded checkpoint (model.safetensors.index.json) loads like the single file', () => {
    const dir = join(tmp, 'sharded');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FIXTURES, 'gpt2-lm', 'config.json'), join(dir, 'config.json'));
    const src = openSafetensors(join(FIXTURES, 'gpt2-lm'));
    const shards = [new Map<string, { data: Float32Array; shape: readonly number[] }>(), new Map<string, { data: Float32Array; shape: readonly number[] }>()];
    const weightMap: Record<string, string> = {};
    src.names.forEach((n, i) => {
      shards[i % 2]!.set(n, { data: src.readFloat32(n), shape: src.info(n).shape });
      weightMap[n] = `model-0000${(i % 2) + 1}-of-00002.safetensors`;
    });
    shards.forEach((w, i) => saveSafetensors(join(dir, `model-0000${i + 1}-of-00002.safetensors`), w));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    using a = loadModel(dir);
    using b = loadModel(join(FIXTURES, 'gpt2-lm'));
    const batch = { inputIds: Int32Array.of(5, 6, 7), shape: [1, 3] as const };
    expect(Array.from(a.logits(batch))).toEqual(Array.from(b.logits(batch)));
  });

  test('refused configs are ConfigErrors', () => {
    const cfg = JSON.parse(readFileSync(join(FIXTURES, 'llama-gqa', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(() => configFromHf({ ...cfg, rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 10000 } })).toThrow(ConfigError);
    expect(() => configFromHf({ ...cfg, hidden_act: 'gelu' })).toThrow(ConfigError);
    expect(() => configFromHf({ ...cfg, model_type: 't5' })).toThrow(ConfigError);
    const g = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-lm', 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(() => configFromHf({ ...g, scale_attn_by_inverse_layer_idx: true })).toThrow(ConfigError);
    expect(() => configFromHf({ ...g, activation_function: 'relu' })).toThrow(ConfigError);
  });

  test('a missing path is a typed error', () => {
    expect(() => loadModel(join(tmp, 'nope'))).toThrow(KfacError);
  });
});

describe('batches are validated before native code runs', () => {
  const m = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, maxPositions: 8 });
  afterAll(() => m.dispose());
  test.each([
    ['ids out of range', { inputIds: Int32Array.of(1, 20), shape: [1, 2] }, InvalidArgumentError],
    ['ids of the wrong count', { inputIds: Int32Array.of(1, 2, 3), shape: [1, 2] }, ShapeError],
    ['plain arrays of ids', { inputIds: [1, 2], shape: [1, 2] }, InvalidArgumentError],
    ['too many positions', { inputIds: new Int32Array(9), shape: [1, 9] }, InvalidArgumentError],
    ['a mask that is not 0/1', { inputIds: Int32Array.of(1, 2), shape: [1, 2], attentionMask: [1, 0.5] }, InvalidArgumentError],
    ['labels out of range', { inputIds: Int32Array.of(1, 2), shape: [1, 2], labels: Int32Array.of(1, 25) }, InvalidArgumentError],
    ['labels of the wrong type', { inputIds: Int32Array.of(1, 2), shape: [1, 2], labels: Float32Array.of(1, 2) }, InvalidArgumentError],
  ] as const)('%s', (_, batch, Err) => {
    expect(() => m.forward(batch as never)).toThrow(Err);
  });

  test('backward before any forward, and with a wrong dLogits shape', () => {
    using fresh = createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 1, numHeads: 2, maxPositions: 8 });
    expect(() => fresh.backward()).toThrow(InvalidArgumentError);
    fresh.forward({ inputIds: Int32Array.of(1, 2), shape: [1, 2] });
    expect(() => fresh.backward()).toThrow(InvalidArgumentError); // no labels: no dLogits
  });

  test('encoders refuse the causal-lm task and token types out of range', () => {
    expect(() => createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 }, { task: 'causal-lm' })).toThrow(InvalidArgumentError);
    using b = createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 });
    expect(() => b.forward({ inputIds: Int32Array.of(1, 2), shape: [1, 2], tokenTypeIds: Int32Array.of(0, 2) })).toThrow(InvalidArgumentError);
  });
});

describe('module names for parameter-efficient methods', () => {
  test('Linear layers are found by Hugging Face names', () => {
    using l = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2 });
    const lin = l.namedModules().filter(([, m]) => m instanceof Linear).map(([n]) => n);
    expect(lin.filter((n) => /\.(q_proj|v_proj)$/.test(n))).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    expect(lin).toContain('lm_head');
    using g = createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 1, numHeads: 2, maxPositions: 8 });
    const c = g.namedModules().find(([n]) => n === 'transformer.h.0.attn.c_attn')![1] as Linear;
    expect(c.layout).toBe('conv1d');
    expect([...c.weight.tensor.shape]).toEqual([8, 24]);
    using b = createBert({ modelType: 'distilbert', vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 });
    expect(b.namedModules().map(([n]) => n)).toContain('distilbert.transformer.layer.0.attention.q_lin');
  });

  test('random initialisation is reproducible from the seed', () => {
    const cfg = { vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 };
    using a = createLlama(cfg, { seed: 1 });
    using b = createLlama(cfg, { seed: 1 });
    using c = createLlama(cfg, { seed: 2 });
    const w = (m: typeof a): number[] => Array.from(m.parameters()[2]!.tensor.toArray());
    expect(w(a)).toEqual(w(b));
    expect(w(a)).not.toEqual(w(c));
  });
});

describe('generate', () => {
  test('greedy decoding with the KV cache equals argmax of full forwards', () => {
    using m = createGpt2({ vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 4, maxPositions: 32 }, { seed: 3, initStd: 0.3 });
    const prompt = [3, 7, 1];
    const got = Array.from(generate(m, prompt, { maxNewTokens: 10 }));
    const seq = [...prompt];
    m.eval();
    for (let i = 0; i < 10; i++) {
      const l = m.logits({ inputIds: Int32Array.from(seq), shape: [1, seq.length] });
      const row = l.subarray((seq.length - 1) * 30);
      seq.push(row.indexOf(Math.max(...row)));
    }
    expect(got).toEqual(seq.slice(prompt.length));
  });

  test('stops at a stop token, and checks its arguments', () => {
    using m = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, maxPositions: 16 }, { seed: 1, initStd: 0.5 });
    const all = Array.from(generate(m, [1, 2], { maxNewTokens: 8 }));
    const stop = all[3]!;
    const cut = Array.from(generate(m, [1, 2], { maxNewTokens: 8, stopTokens: [stop] }));
    expect(cut).toEqual(all.slice(0, all.indexOf(stop) + 1));
    expect(() => generate(m, [1, 2], { maxNewTokens: 15 })).toThrow(InvalidArgumentError);
    expect(() => generate(m, [], { maxNewTokens: 1 })).toThrow(InvalidArgumentError);
    expect(() => generate(m, [1], { maxNewTokens: 1, greedy: false })).toThrow(InvalidArgumentError);
    expect(() => generate(m, [1], { maxNewTokens: 1, temperature: 1, topP: 0 })).toThrow(InvalidArgumentError);
    using b = createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 });
    expect(() => generate(b, [1], { maxNewTokens: 1 })).toThrow(InvalidArgumentError);
  });
});

const PEFT_DIR = sharedData('peft');
describe.skipIf(PEFT_DIR === undefined)(`the real PEFT adapters in the shared data's peft/ name modules of these models${skipNote(PEFT_DIR, 'peft')}`, () => {
  test.each([
    ['gpt2-lora', () => createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 12, numHeads: 2, maxPositions: 8 }, { task: 'sequence-classification' })],
    ['distilbert-lora-imdb', () => createBert({ modelType: 'distilbert', vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 6, numHeads: 2 })],
  ] as const)('%s', (name, make) => {
    using m = make();
    const modules = new Set(m.namedModules().map(([n]) => n));
    const params = new Set(m.parameterNames());
    const keys = openSafetensors(join(sharedData('peft')!, name, 'adapter_model.safetensors')).names;
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      const bare = k.replace(/^base_model\.model\./, '');
      const lora = /^(.*)\.lora_[AB]\.weight$/.exec(bare);
      if (lora) {
        expect(modules.has(lora[1]!), `${k}: module ${lora[1]}`).toBe(true);
        expect(m.namedModules().find(([n]) => n === lora[1])![1]).toBeInstanceOf(Linear);
      } else expect(params.has(bare), `${k}: parameter ${bare}`).toBe(true);
    }
  });
});
