/**
 * The Hugging Face PEFT adapter format. The two real adapters in ../shared/data/peft (GPT-2
 * c_attn with fan_in_fan_out, DistilBERT q_lin/v_lin with heads saved) load into randomly
 * initialised base models of their dimensions with every key and shape accounted for; saving
 * them gives the original adapter_model.safetensors byte for byte; save → load → save is
 * byte-identical for both files; the adapted forward is the same merged and unmerged. Typed
 * errors for mismatched ranks, missing or foreign keys, unsupported configs.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { ConfigError, FileError, ShapeError } from '../../lib/index.js';
import { SafetensorsFile, saveSafetensors } from '../../lib/io/safetensors.js';
import { createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import type { TransformerModel } from '../../lib/models/index.js';
import { applyLora, countParameters, loadAdapter, loraState, mergeLora, saveAdapter, unmergeLora } from '../../lib/peft/index.js';
import { input } from '../support/nn-helpers.js';
import { sharedData, skipNote } from '../support/shared-data.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-adapter-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const bytes = (p: string) => readFileSync(p);

function expectSameFile(a: string, b: string): void {
  const x = bytes(a);
  const y = bytes(b);
  expect(x.length, `${a} vs ${b}: size`).toBe(y.length);
  expect(Buffer.compare(x, y), `${a} vs ${b}: bytes`).toBe(0);
}

/** Loads a real adapter, checks every key and value, the byte-identical round trips, and merged vs unmerged forward. */
function checkRealAdapter(
  dir: string,
  make: () => TransformerModel,
  want: { layers: string[]; loraShapes: [number[], number[]]; heads: Record<string, number[]>; scale: number; trainable: number; total: number },
): void {
  const file = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  using model = make();
  const report = loadAdapter(model, dir);
  const st = report.state;
  expect(st.branches.map((b) => b.path)).toEqual(want.layers);
  expect(st.config.scale).toBe(want.scale);
  expect(countParameters(model)).toMatchObject({ trainable: want.trainable, total: want.total });
  // Every key of the file went somewhere, with its shape and values.
  expect([...report.keys].sort()).toEqual([...file.names].sort());
  const wantKeys = [...want.layers.flatMap((l) => [`base_model.model.${l}.lora_A.weight`, `base_model.model.${l}.lora_B.weight`]), ...Object.keys(want.heads).map((h) => `base_model.model.${h}`)];
  expect([...file.names].sort()).toEqual(wantKeys.sort());
  const params = new Map(model.parameters().map((p) => [p.name, p]));
  for (const key of file.names) {
    const name = key.slice('base_model.model.'.length);
    const p = params.get(name)!;
    expect(p, key).toBeDefined();
    expect(p.trainable, key).toBe(true);
    const shape = name.endsWith('lora_A.weight') ? want.loraShapes[0] : name.endsWith('lora_B.weight') ? want.loraShapes[1] : want.heads[name];
    expect([...p.tensor.shape], key).toEqual(shape);
    expect([...file.info(key).shape], key).toEqual(shape);
    expect(Buffer.compare(Buffer.from(p.tensor.toArray().buffer), Buffer.from(file.readFloat32(key).buffer)), key).toBe(0);
  }
  // Nothing else trains.
  const trainable = model.parameters().filter((p) => p.trainable).map((p) => `base_model.model.${p.name}`);
  expect(trainable.sort()).toEqual([...file.names].sort());

  // Saving gives the original weights file byte for byte; save → load → save is byte-identical.
  const out1 = join(tmp, `${want.layers[0]}-1`);
  saveAdapter(model, out1);
  expectSameFile(join(out1, 'adapter_model.safetensors'), join(dir, 'adapter_model.safetensors'));
  expect(JSON.parse(readFileSync(join(out1, 'adapter_config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
  {
    using again = make();
    loadAdapter(again, out1);
    const out2 = join(tmp, `${want.layers[0]}-2`);
    saveAdapter(again, out2);
    expectSameFile(join(out2, 'adapter_model.safetensors'), join(out1, 'adapter_model.safetensors'));
    expectSameFile(join(out2, 'adapter_config.json'), join(out1, 'adapter_config.json'));
  }

  // The real LoRA weights, merged into the random base, give the same outputs.
  model.eval();
  const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 13 + 1) % model.config.vocabSize);
  const batch = { inputIds: ids, shape: [2, 5] as const };
  const un = model.logits(batch);
  mergeLora(model);
  const me = model.logits(batch);
  unmergeLora(model);
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < un.length; i++) {
    scale = Math.max(scale, Math.abs(un[i]!));
    worst = Math.max(worst, Math.abs(un[i]! - me[i]!));
  }
  expect(worst).toBeLessThan(1e-4 * Math.max(1, scale));
}

describe('real PEFT adapters', () => {
  const gpt2Dir = sharedData('peft/gpt2-lora');
  const distilDir = sharedData('peft/distilbert-lora-imdb');

  it.skipIf(!gpt2Dir)(`gpt2-lora (c_attn, r = 8, fan_in_fan_out) loads into a random full-size GPT-2 small, every key and shape accounted for; round trips byte for byte${skipNote(gpt2Dir, 'peft/gpt2-lora')}`, () => {
    const dir = gpt2Dir!;
    checkRealAdapter(dir, () => createGpt2({ vocabSize: 50257, hiddenSize: 768, numLayers: 12, numHeads: 12, maxPositions: 1024 }, { task: 'sequence-classification', numLabels: 6, seed: 1 }), {
      layers: Array.from({ length: 12 }, (_, i) => `transformer.h.${i}.attn.c_attn`),
      loraShapes: [
        [8, 768],
        [2304, 8],
      ],
      heads: { 'score.weight': [6, 768] },
      scale: 1,
      // PEFT's figures: 294,912 LoRA parameters for gpt2 c_attn r = 8; GPT-2 small has 124,439,808.
      trainable: 294_912 + 6 * 768,
      total: 124_439_808 + 294_912 + 6 * 768,
    });
  });

  it.skipIf(!distilDir)(`distilbert-lora-imdb (q_lin, v_lin, r = 8, classifier saved) loads into a random full-size DistilBERT base, every key and shape accounted for; round trips byte for byte${skipNote(distilDir, 'peft/distilbert-lora-imdb')}`, () => {
    const dir = distilDir!;
    checkRealAdapter(dir, () => createBert({ modelType: 'distilbert', vocabSize: 30522, hiddenSize: 768, intermediateSize: 3072, numLayers: 6, numHeads: 12, maxPositions: 512 }, { numLabels: 2, seed: 2 }), {
      layers: Array.from({ length: 6 }, (_, i) => [`distilbert.transformer.layer.${i}.attention.q_lin`, `distilbert.transformer.layer.${i}.attention.v_lin`]).flat(),
      loraShapes: [
        [8, 768],
        [768, 8],
      ],
      heads: { 'pre_classifier.weight': [768, 768], 'pre_classifier.bias': [768], 'classifier.weight': [2, 768], 'classifier.bias': [2] },
      scale: 2,
      // PEFT prints "trainable params: 739,586 || all params: 67,694,596" for this setup; its total
      // counts the heads twice (the original and the modules_to_save copy: 592,130 parameters), and
      // DistilBertForSequenceClassification has 66,955,010.
      trainable: 739_586,
      total: 67_694_596 - 592_130,
    });
  });
});

describe('adapter files', () => {
  const small = () => createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2 }, { task: 'sequence-classification', numLabels: 3, seed: 4 });

  it('a fresh adapter: PEFT config fields and key names; save → load → save is byte-identical; values restored', () => {
    using m = small();
    const st = applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 2, alpha: 4, dropout: 0.05, useRslora: true, seed: 9 });
    for (const b of st.branches) b.loraB.weight.tensor.set(input(b.loraB.weight.tensor.size, 40).f32);
    const d1 = join(tmp, 'fresh-1');
    saveAdapter(m, d1);
    const cfg = JSON.parse(readFileSync(join(d1, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 4, lora_dropout: 0.05, use_rslora: true, target_modules: ['q_proj', 'v_proj'], modules_to_save: ['classifier', 'score'], task_type: 'SEQ_CLS', fan_in_fan_out: false, bias: 'none' });
    expect(Object.keys(cfg)).toEqual(Object.keys(cfg).sort());
    const names = SafetensorsFile.open(join(d1, 'adapter_model.safetensors')).names;
    expect([...names].sort()).toEqual(
      [
        'base_model.model.score.weight',
        ...[0, 1].flatMap((i) => ['q_proj', 'v_proj'].flatMap((p) => ['lora_A', 'lora_B'].map((w) => `base_model.model.model.layers.${i}.self_attn.${p}.${w}.weight`))),
      ].sort(),
    );
    using m2 = small();
    loadAdapter(m2, d1);
    const s2 = loraState(m2)!;
    expect(s2.config.scale).toBeCloseTo(4 / Math.sqrt(2), 14);
    for (const [i, b] of s2.branches.entries()) {
      expect(b.loraA.weight.tensor.toArray()).toEqual(st.branches[i]!.loraA.weight.tensor.toArray());
      expect(b.loraB.weight.tensor.toArray()).toEqual(st.branches[i]!.loraB.weight.tensor.toArray());
    }
    const d2 = join(tmp, 'fresh-2');
    saveAdapter(m2, d2);
    expectSameFile(join(d2, 'adapter_model.safetensors'), join(d1, 'adapter_model.safetensors'));
    expectSameFile(join(d2, 'adapter_config.json'), join(d1, 'adapter_config.json'));
    // The key forms of a live PeftModel's state dict (adapter name, modules_to_save wrapper) read the same.
    const dl = join(tmp, 'live-keys');
    saveAdapter(m, dl);
    const src = SafetensorsFile.open(join(d1, 'adapter_model.safetensors'));
    const renamed = new Map(
      src.names.map((k) => [k.replace(/\.(lora_[AB])\.weight$/, '.$1.default.weight').replace(/^base_model\.model\.score\./, 'base_model.model.score.modules_to_save.default.'), src.tensor(k)]),
    );
    expect([...renamed.keys()]).toContain('base_model.model.score.modules_to_save.default.weight');
    saveSafetensors(join(dl, 'adapter_model.safetensors'), renamed);
    for (const t of renamed.values()) t.dispose();
    using ml = small();
    loadAdapter(ml, dl);
    const dl2 = join(tmp, 'live-keys-2');
    saveAdapter(ml, dl2);
    expectSameFile(join(dl2, 'adapter_model.safetensors'), join(d1, 'adapter_model.safetensors'));
    // A model with a matching LoRA already applied loads the same values.
    using m3 = small();
    applyLora(m3, { targetModules: ['q_proj', 'v_proj'], r: 2, alpha: 4, useRslora: true });
    loadAdapter(m3, d1);
    expect(loraState(m3)!.branches[3]!.loraB.weight.tensor.toArray()).toEqual(st.branches[3]!.loraB.weight.tensor.toArray());
  });

  it('mismatches and unsupported configs are typed errors, and nothing is half-loaded', () => {
    using m = small();
    applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 2, alpha: 4 });
    const d = join(tmp, 'bad-base');
    saveAdapter(m, d);
    // A model with another rank.
    using r4 = small();
    applyLora(r4, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
    expect(() => loadAdapter(r4, d)).toThrow(ConfigError);
    // An adapter for layers the model lacks.
    using other = small();
    applyLora(other, { targetModules: ['q_proj'], r: 2, alpha: 4 });
    expect(() => loadAdapter(other, d)).toThrow(ConfigError);
    // Missing layers in the file.
    using more = small();
    applyLora(more, { targetModules: ['q_proj', 'k_proj', 'v_proj'], r: 2, alpha: 4 });
    expect(() => loadAdapter(more, d)).toThrow(/missing/);
    // A head of another shape.
    using wide = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2 }, { task: 'sequence-classification', numLabels: 5, seed: 4 });
    const before = wide.parameters().map((p) => p.tensor.toArray());
    expect(() => loadAdapter(wide, d)).toThrow(ShapeError);
    expect(wide.parameters().map((p) => p.tensor.toArray())).toEqual(before);
    expect(loraState(wide)).toBeUndefined(); // the LoRA applied for the load was taken off again
    expect(wide.parameters().every((p) => p.trainable)).toBe(true);
    // A base weight is not part of an adapter.
    const dbw = join(tmp, 'bad-base-weight');
    saveAdapter(m, dbw);
    {
      const src = SafetensorsFile.open(join(d, 'adapter_model.safetensors'));
      const tensors = new Map(src.names.map((k) => [k, src.tensor(k)]));
      tensors.set('base_model.model.model.norm.weight', m.parameters().find((p) => p.name === 'model.norm.weight')!.tensor.clone());
      saveSafetensors(join(dbw, 'adapter_model.safetensors'), tensors);
      for (const t of tensors.values()) t.dispose();
      using fresh = small();
      expect(() => loadAdapter(fresh, dbw)).toThrow(/neither a LoRA weight nor in a module to save/);
    }
    // Unsupported configs.
    const cfg = JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8'));
    for (const [k, v] of [
      ['use_dora', true],
      ['peft_type', 'IA3'],
      ['bias', 'all'],
      ['rank_pattern', { q_proj: 4 }],
    ] as const) {
      const dd = join(tmp, `bad-${k}`);
      saveAdapter(m, dd);
      writeFileSync(join(dd, 'adapter_config.json'), JSON.stringify({ ...cfg, [k]: v }));
      using fresh = small();
      expect(() => loadAdapter(fresh, dd), k).toThrow(ConfigError);
    }
    // A folder without an adapter.
    using fresh = small();
    expect(() => loadAdapter(fresh, join(tmp, 'nothing-here'))).toThrow(FileError);
  });
});
