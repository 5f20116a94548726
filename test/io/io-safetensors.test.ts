/**
 * safetensors reader and writer.
 *
 * Expected values: the files under test/fixtures/io/safetensors were written by the reference
 * `safetensors` library (and `huggingface_hub` for the sharded checkpoint) through
 * tools/make_io_fixtures_safetensors.py; tensor values follow a formula recomputed here, and the
 * float16/bfloat16 → float32 values in expected.json are torch's own conversions. The files in
 * malformed/ are written by the same script, which records the reference reader's verdict on each;
 * the real PEFT adapters of ../shared/data/peft are compared with what the reference reader returns.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { DTypeError, FormatError, KfacError, Tensor } from '../../lib/index.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, loadSafetensors, MAX_HEADER_BYTES, openSafetensors, SafetensorsFile, saveSafetensors, serializeSafetensors, ShardedSafetensors } from '../../lib/io/index.js';
import { rng } from '../support/helpers.js';
import { sharedData, skipNote } from '../support/shared-data.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'io', 'safetensors');
const expected = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as {
  specs: { name: string; shape: number[] }[];
  special: number[];
  converted: Record<'F16' | 'BF16', Record<string, (number | string)[]>>;
  sharded_files: string[];
  malformed: Record<string, string | null>;
  adapters: Record<string, { metadata: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; first: number[]; sum: number }> }>;
};

/** The formula of the fixture script, in float64 then rounded to float32. */
function values(k: number, n: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (((i * 37 + k * 11) % 101) - 50) / 7.3;
  if (k === 0) expected.special.slice(0, n).forEach((s, i) => (v[i] = s));
  return v;
}
const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const referenceTensors = (): Map<string, { data: Float32Array; shape: number[] }> =>
  new Map(expected.specs.map((s, k) => [s.name, { data: values(k, size(s.shape)), shape: s.shape }]));

const tmp = mkdtempSync(join(tmpdir(), 'kfac-io-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file from a header (object or raw text) and a data section. */
function fileWith(header: unknown, data: Uint8Array | number, rawHeader?: string): string {
  const text = rawHeader ?? JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  const p = join(tmp, `f${Math.random().toString(36).slice(2)}.safetensors`);
  writeFileSync(p, out);
  return p;
}

function formatError(fn: () => unknown, pattern?: RegExp): FormatError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FormatError);
  const fe = err as FormatError;
  expect(fe.code).toBe('ERR_FORMAT');
  if (pattern) expect(fe.message).toMatch(pattern);
  return fe;
}

describe('safetensors reader on files written by the reference library', () => {
  it('reads names, shapes, metadata and float32 values', () => {
    const f = SafetensorsFile.open(join(FIX, 'reference_f32.safetensors'));
    expect(f.metadata).toEqual({ format: 'pt' });
    expect([...f.names].sort()).toEqual(expected.specs.map((s) => s.name).sort());
    const ref = referenceTensors();
    for (const [name, want] of ref) {
      expect(f.info(name).shape).toEqual(want.shape);
      expect(f.info(name).dtype).toBe('F32');
      expect(Array.from(f.readFloat32(name))).toEqual(Array.from(want.data));
    }
    // -0 survives bit for bit
    expect(Object.is(f.readFloat32(expected.specs[0]!.name)[1], -0)).toBe(true);
    using t = f.tensor('layer.10.w');
    expect(t).toBeInstanceOf(Tensor);
    expect(t.shape).toEqual([4, 2, 3]);
    using s = f.tensor('scalar');
    expect(s.shape).toEqual([]);
    using e = f.tensor('empty');
    expect(e.shape).toEqual([0, 3]);
  });

  it.each(['F16', 'BF16'] as const)('converts %s to float32 exactly as torch does', (dt) => {
    const f = SafetensorsFile.open(join(FIX, `reference_${dt.toLowerCase()}.safetensors`));
    for (const s of expected.specs) {
      expect(f.info(s.name).dtype).toBe(dt);
      const got = Array.from(f.readFloat32(s.name));
      const want = expected.converted[dt][s.name]!.map(Number); // "Infinity" strings stand for ±Inf
      expect(got.length).toBe(want.length);
      got.forEach((g, i) => expect(Object.is(g, want[i]) || g === want[i]).toBe(true));
    }
  });

  it('opens files with other dtypes and names the tensor that cannot be converted', () => {
    const f = SafetensorsFile.open(join(FIX, 'mixed_dtypes.safetensors'));
    expect(f.info('embeddings.position_ids')).toMatchObject({ dtype: 'I64', shape: [1, 6] });
    expect(() => f.readFloat32('embeddings.position_ids')).toThrow(DTypeError);
    expect(() => f.readFloat32('mask')).toThrow(/mask.*BOOL/);
    expect(Array.from(f.readFloat32('embeddings.weight'))).toEqual(Array.from(values(0, 15)));
    expect(() => f.info('nope')).toThrow(KfacError);
  });

  it('reads a sharded checkpoint through model.safetensors.index.json', () => {
    const src = openSafetensors(join(FIX, 'sharded'));
    expect(src).toBeInstanceOf(ShardedSafetensors);
    expect((src as ShardedSafetensors).shards.length).toBe(expected.sharded_files.filter((f) => f.endsWith('.safetensors')).length);
    expect(src.names).toEqual([0, 1, 2, 3, 4].map((i) => `model.layers.${i}.w`));
    for (let i = 0; i < 5; i++) expect(Array.from(src.readFloat32(`model.layers.${i}.w`))).toEqual(Array.from(values(i, 64)));
    const all = loadSafetensors(join(FIX, 'sharded', 'model.safetensors.index.json'));
    expect(all.get('model.layers.3.w')?.shape).toEqual([8, 8]);
    for (const t of all.values()) t.dispose();
  });

  it('refuses index files that point outside their folder or at missing weights', () => {
    const dir = mkdtempSync(join(tmp, 'idx-'));
    const shard = readFileSync(join(FIX, 'sharded', 'model-00001-of-00003.safetensors'));
    writeFileSync(join(dir, 'a.safetensors'), shard);
    const idx = (map: Record<string, string>): string => {
      const p = join(dir, 'model.safetensors.index.json');
      writeFileSync(p, JSON.stringify({ metadata: {}, weight_map: map }));
      return p;
    };
    formatError(() => ShardedSafetensors.open(idx({ 'model.layers.0.w': '../a.safetensors' })), /same folder/);
    formatError(() => ShardedSafetensors.open(idx({ 'model.layers.9.w': 'a.safetensors' })), /does not hold it/);
    expect(() => ShardedSafetensors.open(idx({ 'model.layers.0.w': 'missing.safetensors' }))).toThrow(/missing\.safetensors/);
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{not json');
    formatError(() => openSafetensors(dir), /not valid JSON/);
  });
});

describe('16-bit float conversions', () => {
  it('round-trip every float16 and bfloat16 bit pattern through float32', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    for (const [to32, from32, isNaN16] of [
      [f16ToF32, f32ToF16, (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0],
      [bf16ToF32, f32ToBf16, (h: number) => (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0],
    ] as const) {
      const back = from32(to32(all));
      for (let h = 0; h < 65536; h++) {
        if (isNaN16(h)) expect(isNaN16(back[h]!)).toBe(true);
        else if (back[h] !== h) expect(back[h]).toBe(h);
      }
    }
  });
});

describe('safetensors writer', () => {
  it.each(['F32', 'F16', 'BF16'] as const)('writes %s files byte-identical to the reference library', (dt) => {
    const want = readFileSync(join(FIX, `reference_${dt.toLowerCase()}.safetensors`));
    // insertion order differs from the file's: the writer sorts by name like the reference
    const tensors = referenceTensors();
    const reversed = new Map([...tensors.entries()].reverse());
    const got = serializeSafetensors(reversed, { dtype: dt });
    expect(Buffer.from(got).equals(want)).toBe(true);
  });

  it('writes Tensors, round-trips through a file, and keeps extra metadata after format', () => {
    const p = join(tmp, 'round.safetensors');
    using a = Tensor.from([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    saveSafetensors(p, { 'lora_A.weight': a, b: { data: Float32Array.from([7]), shape: [] } }, { metadata: { note: 'x' } });
    const f = SafetensorsFile.open(p);
    expect(f.metadata).toEqual({ format: 'pt', note: 'x' });
    expect(Array.from(f.readFloat32('lora_A.weight'))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(f.info('b').shape).toEqual([]);
    const bytes = readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(bytes.subarray(8, 8 + n).toString()).toMatch(/^\{"__metadata__":\{"format":"pt","note":"x"\},"b":/);
  });

  it('validates its input', () => {
    expect(() => serializeSafetensors({ a: { data: new Float32Array(3), shape: [2, 2] } })).toThrow(KfacError);
    expect(() => serializeSafetensors({ a: [1, 2] as never })).toThrow(KfacError);
    expect(() => serializeSafetensors({ __metadata__: { data: new Float32Array(1), shape: [1] } })).toThrow(KfacError);
    expect(() => serializeSafetensors({}, { dtype: 'F64' as never })).toThrow(KfacError);
  });
});

describe('safetensors reader on malformed files', () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };

  it('accepts the hand-built well-formed file the cases below break', () => {
    const f = SafetensorsFile.open(fileWith(good, 12));
    expect(f.names).toEqual(['a', 'b']);
  });

  it('names the file and the byte offset', () => {
    const p = fileWith(good, 8);
    const e = formatError(() => SafetensorsFile.open(p), /truncated/);
    expect(e.file).toBe(p);
    expect(e.message).toContain(p);
    expect(typeof e.offset).toBe('number');
  });

  it.each([
    ['too short for the length field', () => SafetensorsFile.fromBytes(new Uint8Array(5)), /8-byte header length/],
    ['a header length past the end of the file', () => SafetensorsFile.fromBytes(Uint8Array.from([200, 0, 0, 0, 0, 0, 0, 0, 123, 125])), /past the end/],
    ['a non-JSON header', () => SafetensorsFile.open(fileWith(null, 0, '{"a": tru}')), /not valid JSON/],
    ['a header that is not an object', () => SafetensorsFile.open(fileWith(null, 0, '[1, 2]  ')), /JSON object/],
    ['a header that is not UTF-8', () => SafetensorsFile.fromBytes(Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe])), /UTF-8/],
    ['duplicate names', () => SafetensorsFile.open(fileWith(null, 8, '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}')), /more than once/],
    ['overlapping offsets', () => SafetensorsFile.open(fileWith({ a: good.a, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8)), /overlaps/],
    ['a gap between tensors', () => SafetensorsFile.open(fileWith({ a: good.a, b: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } }, 16)), /gap of 4 bytes/],
    ['data that does not start at 0', () => SafetensorsFile.open(fileWith({ b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8)), /gap/],
    ['shape and offsets that disagree', () => SafetensorsFile.open(fileWith({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), /needs 12 bytes/],
    ['an absurd shape', () => SafetensorsFile.open(fileWith({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, 8)), /absurdly large/],
    ['a negative dimension', () => SafetensorsFile.open(fileWith({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8)), /non-negative/],
    ['fractional offsets', () => SafetensorsFile.open(fileWith({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8.5] } }, 8)), /data_offsets/],
    ['offsets that end before they begin', () => SafetensorsFile.open(fileWith({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, 8)), /end before/],
    ['an unknown dtype', () => SafetensorsFile.open(fileWith({ a: { dtype: 'F31', shape: [2], data_offsets: [0, 8] } }, 8)), /unknown dtype/],
    ['a tensor entry that is not an object', () => SafetensorsFile.open(fileWith({ a: 5 }, 0)), /expected \{dtype/],
    ['metadata that is not strings', () => SafetensorsFile.open(fileWith({ __metadata__: { format: 1 } }, 0)), /__metadata__/],
    ['trailing bytes after the data', () => SafetensorsFile.open(fileWith(good, 13)), /trailing/],
    ['a truncated data section', () => SafetensorsFile.open(fileWith(good, 11)), /truncated/],
  ])('%s', (_label, fn, pattern) => {
    formatError(fn, pattern);
  });

  it.each(Object.entries(expected.malformed))('agrees with the reference reader on fixture %s', (name, verdict) => {
    const p = join(FIX, 'malformed', `${name}.safetensors`);
    if (verdict === null) expect(SafetensorsFile.open(p).names.length).toBeGreaterThan(0);
    else expect(formatError(() => SafetensorsFile.open(p)).file).toBe(p);
  });

  it('refuses a huge header length without allocating it', () => {
    const bytes = new Uint8Array(16);
    const dv = new DataView(bytes.buffer);
    for (const n of [BigInt(MAX_HEADER_BYTES) + 1n, 2n ** 62n, 2n ** 64n - 1n]) {
      dv.setBigUint64(0, n, true);
      formatError(() => SafetensorsFile.fromBytes(bytes), /over the 100000000-byte limit/);
    }
  });

  it('gives a typed error (never a crash) for every truncation and for random corruption of a real file', () => {
    const bytes = new Uint8Array(readFileSync(join(FIX, 'reference_f32.safetensors')));
    for (let n = 0; n < bytes.length; n++) formatError(() => SafetensorsFile.fromBytes(bytes.subarray(0, n)));
    const r = rng(7);
    for (let trial = 0; trial < 400; trial++) {
      const b = bytes.slice();
      const flips = 1 + Math.floor(r() * 4);
      // mostly corrupt the length field and the header, where structure lives
      for (let j = 0; j < flips; j++) b[Math.floor(r() * Math.min(b.length, 8 + 400))] = Math.floor(r() * 256);
      try {
        const f = SafetensorsFile.fromBytes(b);
        for (const name of f.names) f.readFloat32(name);
      } catch (e) {
        expect(e).toBeInstanceOf(KfacError);
      }
    }
  });

  it('reports missing files as a typed error', () => {
    expect(() => SafetensorsFile.open(join(tmp, 'nope.safetensors'))).toThrow(/nope\.safetensors/);
    expect(() => openSafetensors(tmp)).toThrow(KfacError);
  });
});

const PEFT = sharedData('peft');
describe.skipIf(PEFT === undefined)(`real PEFT adapters of the shared data${skipNote(PEFT, 'peft')}`, () => {
  it.each(Object.keys(expected.adapters))('%s reads as the reference reader sees it', (name) => {
    const want = expected.adapters[name]!;
    const f = SafetensorsFile.open(join(PEFT!, name, 'adapter_model.safetensors'));
    expect(f.metadata).toEqual(want.metadata);
    expect([...f.names].sort()).toEqual(Object.keys(want.tensors).sort());
    const dt: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };
    for (const [t, w] of Object.entries(want.tensors)) {
      expect(f.info(t).dtype).toBe(dt[w.dtype]);
      expect(f.info(t).shape).toEqual(w.shape);
      const v = f.readFloat32(t);
      expect(Array.from(v.subarray(0, 3))).toEqual(w.first);
      let sum = 0;
      for (const x of v) sum += x;
      expect(Math.abs(sum - w.sum)).toBeLessThanOrEqual(1e-9 * v.length);
    }
  });
});

