/**
 * The checks an optimizer state passes before an optimizer's loadStateDict sees it
 * (lib/peft/state-check.ts): a hand-edited optimizer.json or a corrupted optimizer.safetensors
 * whose SHA-256 record was updated is a FormatError naming the file and the field, and the
 * "files" record names only plain files beside optimizer.json.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';

import { afterAll, describe, expect, it } from 'vitest';

import { FileError, FormatError, optim } from '../../lib/index.js';
import { createLlama } from '../../lib/models/index.js';
import { SafetensorsFile, serializeSafetensors } from '../../lib/io/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { applyLora, kfacLayersForLora, loadOptimizerState, saveOptimizerState, untrackedParameters } from '../../lib/peft/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'state-check-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('optimizer state checks', () => {
  const tiny = () => createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, numKvHeads: 2 }, { seed: 5 });
  const lora = { targetModules: ['q_proj'], r: 2, alpha: 4, dropout: 0, seed: 3 };
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 7 + 1) % 32);

  /** A saved AdamW state after one step, and a fresh optimizer to load it into. */
  function saved(name: string): { dir: string; fresh: () => { opt: optim.AdamW; dispose: () => void } } {
    const m = tiny();
    applyLora(m, lora);
    const opt = new optim.AdamW(m.parameters().filter((p) => p.trainable), { lr: 1e-2 });
    m.zeroGrad();
    m.forward({ inputIds: ids, shape: [2, 8], labels: ids });
    m.backward();
    opt.step();
    const dir = join(tmp, name);
    saveOptimizerState(opt, dir);
    m.dispose();
    return {
      dir,
      fresh: () => {
        const f = tiny();
        applyLora(f, lora);
        return { opt: new optim.AdamW(f.parameters().filter((p) => p.trainable), { lr: 1e-2 }), dispose: () => f.dispose() };
      },
    };
  }

  function editMeta(dir: string, edit: (m: Record<string, any>) => void): void {
    const p = join(dir, 'optimizer.json');
    const m = JSON.parse(readFileSync(p, 'utf8'));
    edit(m);
    writeFileSync(p, JSON.stringify(m));
  }

  it.each([
    ['a negative step', (m: Record<string, any>) => (m.state.step = -1), /state\.step: expected a non-negative integer/],
    ['a fractional per-parameter step', (m: Record<string, any>) => (Object.values(m.state.perParam)[0] as Record<string, unknown>)['step'] = 1.5, /perParam.*\.step/],
    ['no perParam', (m: Record<string, any>) => delete m.state.perParam, /state\.perParam: expected an object/],
    ['a state that is a string', (m: Record<string, any>) => (m.state = 'adamw'), /state: expected an object/],
  ])('refuses %s in optimizer.json (FormatError naming it)', (_, edit, message) => {
    const s = saved(`edit-${Math.random().toString(36).slice(2)}`);
    editMeta(s.dir, edit);
    const f = s.fresh();
    try {
      const e = (() => {
        try {
          loadOptimizerState(f.opt, s.dir);
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(FormatError);
      expect((e as FormatError).file).toBe(join(s.dir, 'optimizer.json'));
      expect((e as Error).message).toMatch(message);
    } finally {
      f.dispose();
    }
  });

  it('refuses a non-finite value in optimizer.safetensors even when its hash is updated', () => {
    const s = saved('nan');
    const p = join(s.dir, 'optimizer.safetensors');
    const bytes = readFileSync(p);
    bytes.writeFloatLE(NaN, bytes.length - 4); // the last value of the last tensor
    writeFileSync(p, bytes);
    editMeta(s.dir, (m) => (m.files['optimizer.safetensors'] = createHash('sha256').update(bytes).digest('hex')));
    const f = s.fresh();
    try {
      expect(() => loadOptimizerState(f.opt, s.dir)).toThrow(/holds a non-finite value/);
    } finally {
      f.dispose();
    }
  });

  it('reads only plain files beside optimizer.json (no path out of the folder, no device)', () => {
    const s = saved('paths');
    const other = join(tmp, 'outside');
    cpSync(s.dir, other, { recursive: true });
    for (const name of ['../outside/optimizer.safetensors', '/dev/zero']) {
      editMeta(s.dir, (m) => (m.files = { [name]: 'x'.repeat(64), 'optimizer.safetensors': m.files['optimizer.safetensors'] }));
      const f = s.fresh();
      try {
        expect(() => loadOptimizerState(f.opt, s.dir)).toThrow(/"files" must map file names in the folder/);
      } finally {
        f.dispose();
      }
    }
    // a name of the right form that is a folder, not a file
    mkdirSync(join(s.dir, 'sub'));
    editMeta(s.dir, (m) => (m.files = { sub: 'x' }));
    const f = s.fresh();
    try {
      const e = (() => {
        try {
          loadOptimizerState(f.opt, s.dir);
        } catch (err) {
          return err;
        }
      })();
      expect(e).toBeInstanceOf(FileError);
      expect((e as Error).message).toMatch(/not a regular file/);
    } finally {
      f.dispose();
    }
  });

  it.each(['eigen', 'inverse'] as const)('K-FAC (%s): an eigenbasis or inverse shaped unlike its factor is refused; the saved state loads', (method) => {
    const make = () => {
      const m = tiny();
      applyLora(m, lora);
      const layers = kfacLayersForLora(m);
      return { m, opt: new KFAC(layers, untrackedParameters(m, layers), { lr: 0.1, damping: 1e-2, inverseEvery: 1, method }) };
    };
    const a = make();
    for (let i = 0; i < 2; i++) {
      a.m.zeroGrad();
      a.m.forward({ inputIds: ids, shape: [2, 8], labels: ids });
      a.m.backward();
      a.opt.step({ batchSize: 2 });
    }
    const dir = join(tmp, `kfac-${method}`);
    saveOptimizerState(a.opt, dir);
    a.m.dispose();
    const b = make();
    try {
      loadOptimizerState(b.opt, dir); // the untouched state passes the checks
      const p = join(dir, 'optimizer.safetensors');
      const file = SafetensorsFile.open(p);
      const victim = file.names.find((n) => (method === 'eigen' ? /\/Q$/ : /\/Ainv$/).test(n))!;
      expect(victim).toBeDefined();
      const tensors = Object.fromEntries(file.names.map((n) => [n, { data: file.readFloat32(n), shape: [...file.info(n).shape] }]));
      const n = tensors[victim]!.shape[0]!;
      tensors[victim] = { data: new Float32Array((n + 1) * (n + 1)), shape: [n + 1, n + 1] };
      const bytes = serializeSafetensors(tensors);
      writeFileSync(p, bytes);
      editMeta(dir, (m) => (m.files['optimizer.safetensors'] = createHash('sha256').update(bytes).digest('hex')));
      expect(() => loadOptimizerState(b.opt, dir)).toThrow(new RegExp(`${victim.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" has shape \\[${n + 1}, ${n + 1}\\], its factor needs \\[${n}, ${n}\\]`));
    } finally {
      b.m.dispose();
    }
  });
});
