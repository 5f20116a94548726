/**
 * Optimizer state files and checkpoints: AdamW and SGD states round trip exactly; a KFAC + LoRA
 * run (with branch dropout) resumed from a checkpoint reproduces the uninterrupted run bit for
 * bit on the CPU; a save that fails (a serializer that throws, a folder in the way of a file)
 * leaves the previous checkpoint's files byte-identical and no temporary files behind; files of
 * two different saves are refused.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { FileError, FormatError, InvalidArgumentError, optim } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createLlama, type LlamaModel } from '../../lib/models/index.js';
import {
  applyLora,
  kfacLayersForLora,
  loadCheckpoint,
  loadOptimizerState,
  type LoraConfig,
  saveCheckpoint,
  saveOptimizerState,
  untrackedParameters,
  writeFilesAtomic,
} from '../../lib/peft/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'peft-ckpt-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const loraCfg: LoraConfig = { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8, dropout: 0.1, seed: 3 };
const tiny = (): LlamaModel => createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5 });
const batch = (() => {
  const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 11 + 3) % 32);
  return { inputIds: ids, shape: [3, 8] as const, labels: ids };
})();

function kfacFor(m: LlamaModel): KFAC {
  const layers = kfacLayersForLora(m);
  return new KFAC(layers, untrackedParameters(m, layers), { lr: 0.1, damping: 1e-2, inverseEvery: 2, newtonClip: { maxNorm: 1 } });
}

function train(m: LlamaModel, opt: { step(ctx?: { batchSize: number }): unknown }, steps: number): number[] {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    losses.push(m.forward(batch).loss!);
    m.backward();
    opt.step({ batchSize: 3 });
  }
  return losses;
}

const loraValues = (m: LlamaModel) => m.parameters().filter((p) => p.trainable).map((p) => [p.name, Buffer.from(p.tensor.toArray().buffer)] as const);
const snapshotDir = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f))]));

describe('optimizer state files', () => {
  it.each(['adamw', 'sgd'] as const)('%s: state saved and loaded exactly; the next steps agree bit for bit', (kind) => {
    const make = (m: LlamaModel) => {
      const params = m.parameters().filter((p) => p.trainable);
      return kind === 'adamw' ? new optim.AdamW(params, { lr: 1e-2 }) : new optim.SGD(params, { lr: 1e-2, momentum: 0.9 });
    };
    using a = tiny();
    applyLora(a, { ...loraCfg, dropout: 0 });
    const oa = make(a);
    train(a, oa, 3);
    const dir = join(tmp, `opt-${kind}`);
    saveOptimizerState(oa, dir);
    expect(readdirSync(dir).sort()).toEqual(['optimizer.json', 'optimizer.safetensors']);
    const meta = JSON.parse(readFileSync(join(dir, 'optimizer.json'), 'utf8'));
    expect(meta).toMatchObject({ format: 'kfac-peft-optimizer', version: 1, kind, state: { step: 3 } });
    // A copy of the model at this point, with a fresh optimizer that loads the state.
    using b = tiny();
    applyLora(b, { ...loraCfg, dropout: 0 });
    for (const [i, p] of b.parameters().entries()) p.tensor.set(a.parameters()[i]!.tensor.toArray());
    const ob = make(b);
    loadOptimizerState(ob, dir);
    expect(ob.stepCount).toBe(3);
    const sa = oa.stateDict();
    const sb = ob.stateDict();
    expect(Object.keys(sb.tensors).sort()).toEqual(Object.keys(sa.tensors).sort());
    for (const k of Object.keys(sa.tensors)) expect(sb.tensors[k]!.toArray(), k).toEqual(sa.tensors[k]!.toArray());
    expect(sb.perParam).toEqual(sa.perParam);
    expect(train(b, ob, 2)).toEqual(train(a, oa, 2));
    expect(loraValues(b)).toEqual(loraValues(a));
    for (const s of [sa, sb]) for (const t of Object.values(s.tensors)) t.dispose();
    oa.dispose();
    ob.dispose();
  });
});

describe('checkpoints', () => {
  it('a resumed KFAC + LoRA run (branch dropout on) reproduces the uninterrupted one bit for bit', () => {
    using full = tiny();
    applyLora(full, loraCfg);
    const of = kfacFor(full);
    const want = train(full, of, 6);

    const dir = join(tmp, 'resume');
    {
      using first = tiny();
      applyLora(first, loraCfg);
      const o1 = kfacFor(first);
      const l1 = train(first, o1, 3);
      expect(l1).toEqual(want.slice(0, 3));
      saveCheckpoint(dir, { model: first, optimizer: o1, extra: { step: 3 } });
      o1.dispose();
    }
    expect(readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.json', 'optimizer.safetensors']);
    using second = tiny();
    applyLora(second, { ...loraCfg, seed: 99 }); // other initial values: all come from the checkpoint
    const o2 = kfacFor(second);
    expect(loadCheckpoint(dir, { model: second, optimizer: o2 })).toEqual({ step: 3 });
    expect(o2.stepCount).toBe(3);
    const l2 = train(second, o2, 3);
    expect(l2).toEqual(want.slice(3));
    expect(loraValues(second)).toEqual(loraValues(full));
    of.dispose();
    o2.dispose();
  });

  it('a failed save leaves the previous checkpoint intact: a throwing serializer, a folder in the way', () => {
    using m = tiny();
    applyLora(m, loraCfg);
    const opt = kfacFor(m);
    train(m, opt, 2);
    const dir = join(tmp, 'intact');
    saveCheckpoint(dir, { model: m, optimizer: opt, extra: { step: 2 } });
    const before = snapshotDir(dir);
    train(m, opt, 1); // the state now differs from the files
    // The optimizer.json serializer throws (a BigInt is not JSON).
    expect(() => saveCheckpoint(dir, { model: m, optimizer: opt, extra: { step: 3n } })).toThrow(TypeError);
    expect(snapshotDir(dir)).toEqual(before);
    // A file whose bytes function throws: nothing of the set is written.
    expect(() =>
      writeFilesAtomic(dir, [
        { name: 'optimizer.json', bytes: new Uint8Array([1]) },
        {
          name: 'adapter_model.safetensors',
          bytes: () => {
            throw new Error('serializer failed');
          },
        },
      ]),
    ).toThrow('serializer failed');
    expect(snapshotDir(dir)).toEqual(before);
    // A folder where one of the new files should go: refused before anything is renamed, so the
    // optimizer files saved there before are untouched.
    const dir2 = join(tmp, 'in-the-way');
    saveOptimizerState(opt, dir2);
    mkdirSync(join(dir2, 'adapter_model.safetensors'));
    const before2 = Object.fromEntries(['optimizer.json', 'optimizer.safetensors'].map((f) => [f, readFileSync(join(dir2, f))]));
    train(m, opt, 1);
    expect(() => saveCheckpoint(dir2, { model: m, optimizer: opt })).toThrow(FileError);
    expect(readdirSync(dir2).sort()).toEqual(['adapter_model.safetensors', 'optimizer.json', 'optimizer.safetensors']);
    for (const f of ['optimizer.json', 'optimizer.safetensors']) expect(readFileSync(join(dir2, f)), f).toEqual(before2[f]);
    // The good checkpoint still loads.
    using fresh = tiny();
    applyLora(fresh, loraCfg);
    const of = kfacFor(fresh);
    expect(loadCheckpoint(dir, { model: fresh, optimizer: of })).toEqual({ step: 2 });
    expect(of.stepCount).toBe(2);
    of.dispose();
    opt.dispose();
  });

  it('files of two different saves are refused (SHA-256 recorded in optimizer.json)', () => {
    using m = tiny();
    applyLora(m, loraCfg);
    const opt = kfacFor(m);
    train(m, opt, 1);
    const a = join(tmp, 'mix-a');
    const b = join(tmp, 'mix-b');
    saveCheckpoint(a, { model: m, optimizer: opt });
    train(m, opt, 1);
    saveCheckpoint(b, { model: m, optimizer: opt });
    copyFileSync(join(b, 'optimizer.safetensors'), join(a, 'optimizer.safetensors'));
    using fresh = tiny();
    applyLora(fresh, loraCfg);
    const of = kfacFor(fresh);
    expect(() => loadCheckpoint(a, { model: fresh, optimizer: of })).toThrow(FormatError);
    expect(() => loadOptimizerState(of, a)).toThrow(FormatError);
    copyFileSync(join(b, 'optimizer.json'), join(a, 'optimizer.json'));
    expect(() => loadCheckpoint(a, { model: fresh, optimizer: of })).toThrow(FormatError); // adapter still from save a
    expect(() => loadOptimizerState(of, join(tmp, 'no-such'))).toThrow(FileError);
    // Another optimizer's state is refused by kind.
    const adam = new optim.AdamW(fresh.parameters().filter((p) => p.trainable));
    expect(() => loadOptimizerState(adam, b)).toThrow(InvalidArgumentError);
    adam.dispose();
    of.dispose();
    opt.dispose();
  });
});
