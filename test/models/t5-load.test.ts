/**
 * T5 folders in the other spellings a checkpoint may use: the embedding under the encoder's name
 * instead of `shared.weight`, with the decoder's copy beside it; and what is refused: an unknown
 * weight, a misshapen one, a missing one (LoadError naming the key), a bad feed_forward_proj.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, test } from 'vitest';

import { ConfigError, InvalidArgumentError } from '../../lib/errors.js';
import { SafetensorsFile, saveSafetensors } from '../../lib/io/safetensors.js';
import { LoadError, loadModel } from '../../lib/models/index.js';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models', 't5-v1_0');
const tmp = mkdtempSync(join(tmpdir(), 't5-load-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Tensors = Map<string, { data: Float32Array; shape: readonly number[] }>;

/** A copy of the v1.0 fixture whose tensors and config.json pass through `edit` and `config`. */
function variant(name: string, edit: (t: Tensors) => void, config?: (c: Record<string, unknown>) => void): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  const f = SafetensorsFile.open(join(SRC, 'model.safetensors'));
  const tensors: Tensors = new Map(f.names.map((n) => [n, { data: f.readFloat32(n), shape: f.info(n).shape }] as const));
  edit(tensors);
  saveSafetensors(join(dir, 'model.safetensors'), tensors);
  const cfg = JSON.parse(readFileSync(join(SRC, 'config.json'), 'utf8')) as Record<string, unknown>;
  config?.(cfg);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

function loadError(dir: string): LoadError {
  try {
    loadModel(dir).dispose();
  } catch (e) {
    expect(e).toBeInstanceOf(LoadError);
    return e as LoadError;
  }
  throw new Error('expected a LoadError');
}

describe('T5 checkpoint spellings', () => {
  const batch = { inputIds: Int32Array.from([5, 17, 42, 8]), shape: [1, 4] as [number, number], labels: Int32Array.from([12, 40, 1]) };

  test('the embedding under encoder.embed_tokens (no shared.weight), the decoder copy dropped: same logits', () => {
    const dir = variant('no-shared', (t) => {
      const s = t.get('shared.weight')!;
      t.delete('shared.weight');
      t.set('encoder.embed_tokens.weight', s);
      t.set('decoder.embed_tokens.weight', s);
    });
    using a = loadModel(SRC);
    using b = loadModel(dir);
    expect(b.loadReport.dropped).toEqual(['decoder.embed_tokens.weight']);
    expect(Array.from(b.forward(batch).logits.toArray())).toEqual(Array.from(a.forward(batch).logits.toArray()));
  });

  test('T5 loads in float32 on the CPU without checkpointing: other placements are typed errors naming the option', () => {
    for (const [opts, arg] of [[{ dtype: 'bfloat16' }, 'dtype'], [{ checkpointing: true }, 'checkpointing']] as const) {
      let err: unknown;
      try {
        loadModel(SRC, opts);
      } catch (e) {
        err = e;
      }
      expect(err, arg).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(arg);
    }
  });

  test('unknown, misshapen and missing weights are LoadErrors naming the key; nothing half-loads', () => {
    expect(loadError(variant('extra', (t) => t.set('encoder.block.0.layer.0.SelfAttention.extra.weight', { data: new Float32Array(4), shape: [2, 2] }))).key).toBe(
      'encoder.block.0.layer.0.SelfAttention.extra.weight',
    );
    const k = 'decoder.block.1.layer.1.EncDecAttention.k.weight';
    expect(loadError(variant('misshapen', (t) => t.set(k, { data: new Float32Array(30 * 24), shape: [30, 24] }))).key).toBe(k);
    expect(loadError(variant('missing', (t) => t.delete(k))).key).toBe(k);
    // A config far larger than its weights is refused before anything is built.
    expect(() => loadModel(variant('huge', () => undefined, (c) => (c['num_layers'] = 2 ** 30)))).toThrow(/checkpoint holds/);
  });

  test('an unknown feed_forward_proj in config.json is a ConfigError naming the field and the file', () => {
    const dir = variant('ffn', () => undefined, (c) => (c['feed_forward_proj'] = 'gated-swish-x'));
    let err: unknown;
    try {
      loadModel(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).argument).toBe('feed_forward_proj');
    expect((err as ConfigError).message).toContain('gated-swish-x');
    expect((err as ConfigError & { file?: string }).file).toBe(join(dir, 'config.json'));
  });
});
