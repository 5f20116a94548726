/**
 * Checkpoint folders (lib/train/checkpoints.ts): publishing by one rename (a failed write leaves
 * the old folder and no leftovers), pruning to keepLast, the choice of the newest checkpoint for
 * --resume, and the dropout generators' state round trip.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { loadModel } from '../../lib/models/index.js';
import { dropoutState, listCheckpoints, newestCheckpoint, publishFolder, restoreDropoutState, saveStepCheckpoint } from '../../lib/train/checkpoints.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-checkpoints-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const writeStep = (step: number) => (dir: string) => {
  mkdirSync(dir);
  writeFileSync(join(dir, 'optimizer.json'), JSON.stringify({ extra: { trainer: { step } } }));
};

describe('publishFolder', () => {
  test('replaces a folder whole; a write that throws leaves the old one and no hidden leftovers', () => {
    const target = join(tmp, 'pub', 'ckpt');
    publishFolder(target, (d) => (mkdirSync(d), writeFileSync(join(d, 'a'), 'one')));
    publishFolder(target, (d) => (mkdirSync(d), writeFileSync(join(d, 'b'), 'two')));
    expect(readdirSync(target)).toEqual(['b']);
    expect(() =>
      publishFolder(target, (d) => {
        mkdirSync(d);
        writeFileSync(join(d, 'c'), 'half');
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect(readFileSync(join(target, 'b'), 'utf8')).toBe('two');
    expect(readdirSync(join(tmp, 'pub'))).toEqual(['ckpt']);
  });
});

describe('periodic checkpoints', () => {
  test('keepLast prunes the oldest; leftovers of a crashed save are removed; --resume takes the newest', () => {
    const out = join(tmp, 'run');
    const root = join(out, 'checkpoints');
    mkdirSync(join(root, '.tmp-step-00000099-1-0'), { recursive: true }); // a save a crash interrupted
    for (const s of [4, 8, 12, 16, 20]) saveStepCheckpoint(root, s, writeStep(s), 2);
    expect(readdirSync(root).sort()).toEqual(['step-00000016', 'step-00000020']);
    expect(newestCheckpoint(out)).toMatchObject({ step: 20, kind: 'periodic' });
    // an interrupted checkpoint after the last periodic one is newer; the best one is never resumed from
    publishFolder(join(out, 'checkpoint-interrupted'), writeStep(23));
    publishFolder(join(out, 'checkpoint-best'), writeStep(30));
    expect(newestCheckpoint(out)).toMatchObject({ step: 23, kind: 'interrupted' });
    saveStepCheckpoint(root, 24, writeStep(24), 2);
    expect(newestCheckpoint(out)).toMatchObject({ step: 24, kind: 'periodic' });
    expect(listCheckpoints(out).map((c) => `${c.kind}:${c.step}`)).toEqual(['periodic:20', 'periodic:24', 'interrupted:23', 'best:30']);
    expect(newestCheckpoint(join(tmp, 'empty'))).toBeNull();
    expect(existsSync(join(root, '.tmp-step-00000099-1-0'))).toBe(false);
  });
});

test('dropout generators: the state after training forwards is recorded and restored', () => {
  using m = loadModel(join(import.meta.dirname, '..', 'fixtures', 'models', 'gpt2-lm'));
  const fresh = dropoutState(m);
  expect(Object.keys(fresh).length).toBeGreaterThan(2);
  m.train();
  const batch = { inputIds: Int32Array.from([1, 2, 3, 4]), shape: [1, 4] as [number, number] };
  const first = m.forward(batch).logits.toArray();
  const after = dropoutState(m);
  expect(after).not.toEqual(fresh);
  const second = m.forward(batch).logits.toArray();
  expect(Array.from(second)).not.toEqual(Array.from(first)); // new masks
  restoreDropoutState(m, after);
  expect(dropoutState(m)).toEqual(after);
  expect(Array.from(m.forward(batch).logits.toArray())).toEqual(Array.from(second)); // the same masks again
});
