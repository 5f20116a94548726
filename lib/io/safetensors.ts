/**
 * safetensors: reader and writer.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header, then the data section.
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative
 * to the data section) plus an optional "__metadata__" map of strings.
 *
 * The reader validates the whole header before any tensor is read, with the same rules as the
 * reference implementation: N ≤ 100 MB and inside the file, a JSON object, known dtypes,
 * `(end − begin) = numel · itemsize` for each tensor, offsets that (sorted) start at 0, touch
 * without gaps or overlaps and end exactly at the end of the file. It also refuses duplicate names
 * (JSON.parse would silently keep the last). Errors are FormatError naming the file and offset.
 *
 * Reading is lazy: opening reads only the header; each tensor is read from its own byte range
 * when asked for. A 440 MB BERT checkpoint is therefore never held twice in memory, tensors the
 * caller does not need (an int64 `position_ids` buffer, a pretraining head) are never read, and a
 * sharded checkpoint opens its shards' headers only. F32, F16 and BF16 convert to float32; other
 * dtypes open fine but reading them is a DTypeError naming the tensor.
 *
 * The writer produces the same bytes as the reference writer: tensors sorted by name, compact
 * JSON with "__metadata__" first and fields in the order dtype, shape, data_offsets, the header
 * padded with spaces to a multiple of 8 bytes, data in the same order.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { describe, DTypeError, FileError, FormatError, invalidArgument, KfacError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { checkShape, numel } from '../util/validate.js';
import { assertLittleEndianHost, bf16ToF32, BufferSource, type ByteSource, f16ToF32, f32ToBf16, f32ToF16, FileSource } from './bytes.js';

/** The reference implementation's limit on the header length. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Every dtype of the format, with its size in bytes (sub-byte types are refused as unsupported). */
const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
} as const;

export type SafetensorsDType = keyof typeof DTYPE_BYTES;
/** The dtypes this library converts to float32 on reading and can write. */
export type FloatDType = 'F32' | 'F16' | 'BF16';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** [begin, end) relative to the start of the data section, as in the header. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute byte offset of the first byte in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

/** Anything that hands out named float32 tensors: one safetensors file, or a sharded checkpoint. */
export interface TensorSource {
  /** Tensor names, in the order of their data. */
  readonly names: readonly string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The values as a new Float32Array (row-major), converted from F16/BF16 where needed. */
  readFloat32(name: string): Float32Array;
  /** The values as a new Tensor. */
  tensor(name: string): Tensor;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Scans a JSON object text for a key repeated at the top level. The text has already been
 * checked by JSON.parse, so a simple scan of strings and nesting depth is exact.
 */
function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

function parseHeader(source: ByteSource): { tensors: TensorInfo[]; metadata: Record<string, string> | undefined } {
  const file = source.name;
  if (source.length < 8) throw new FormatError(file, `a safetensors file starts with an 8-byte header length, but the file has ${source.length} bytes`, { offset: 0 });
  const lenBytes = new Uint8Array(8);
  source.read(0, lenBytes);
  const n64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES))
    throw new FormatError(file, `header length ${n64} is over the ${MAX_HEADER_BYTES}-byte limit`, { offset: 0, hint: 'the file is not a safetensors file, or it is corrupt' });
  const n = Number(n64);
  if (8 + n > source.length) throw new FormatError(file, `header length ${n} runs past the end of the file (${source.length} bytes)`, { offset: 0 });
  const raw = new Uint8Array(n);
  source.read(8, raw);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch (e) {
    throw new FormatError(file, 'the header is not valid UTF-8', { offset: 8, cause: e });
  }
  if (!text.startsWith('{')) throw new FormatError(file, `the header must be a JSON object starting with "{", got ${JSON.stringify(text.slice(0, 20))}`, { offset: 8 });
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `the header is not valid JSON (${e instanceof Error ? e.message : String(e)})`, { offset: 8, cause: e });
  }
  if (!isObject(header)) throw new FormatError(file, 'the header must be a JSON object', { offset: 8 });
  const dup = duplicateTopLevelKey(text);
  if (dup !== undefined) throw new FormatError(file, `tensor ${JSON.stringify(dup)} appears more than once in the header`, { offset: 8 });

  const dataStart = 8 + n;
  const dataLength = source.length - dataStart;
  let metadata: Record<string, string> | undefined;
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === 'string'))
        throw new FormatError(file, '"__metadata__" must map strings to strings', { offset: 8 });
      metadata = entry as Record<string, string>;
      continue;
    }
    const bad = (what: string): never => {
      throw new FormatError(file, `tensor ${JSON.stringify(name)}: ${what}`, { offset: 8 });
    };
    if (!isObject(entry)) bad(`expected {dtype, shape, data_offsets}, got ${describe(entry)}`);
    const e = entry as Record<string, unknown>;
    const dtype = e['dtype'];
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) bad(`unknown dtype ${describe(dtype)}`);
    const shape = e['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))
      bad(`shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    const offsets = e['data_offsets'];
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))
      bad(`data_offsets must be two non-negative integers, got ${JSON.stringify(offsets)}`);
    const [begin, end] = offsets as [number, number];
    if (end < begin) bad(`data_offsets [${begin}, ${end}] end before they begin`);
    const dims = shape as number[];
    const itemsize = DTYPE_BYTES[dtype as SafetensorsDType];
    // numel · itemsize, refusing anything past 2^53 instead of wrapping
    let bytes = dims.includes(0) ? 0 : itemsize;
    for (const d of dims) {
      if (bytes === 0) break;
      bytes *= d;
      if (bytes > Number.MAX_SAFE_INTEGER) bad(`shape [${dims.join(', ')}] is absurdly large`);
    }
    if (bytes !== end - begin)
      bad(`shape [${dims.join(', ')}] of ${dtype} needs ${bytes} bytes, but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    tensors.push({ name, dtype: dtype as SafetensorsDType, shape: Object.freeze([...dims]), dataOffsets: Object.freeze([begin, end] as [number, number]), fileOffset: dataStart + begin, byteLength: end - begin });
  }
  const sorted = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  for (const t of sorted) {
    const [begin, end] = t.dataOffsets;
    if (begin !== cursor) {
      const kind = begin < cursor ? 'overlaps the previous tensor' : `leaves a gap of ${begin - cursor} bytes after the previous tensor`;
      throw new FormatError(file, `tensor ${JSON.stringify(t.name)}: data_offsets [${begin}, ${end}] ${kind} (expected it to begin at ${cursor})`, { offset: dataStart + Math.min(begin, cursor) });
    }
    cursor = end;
  }
  if (cursor !== dataLength)
    throw new FormatError(
      file,
      cursor < dataLength ? `the tensors cover ${cursor} bytes of data but the data section holds ${dataLength} (trailing bytes)` : `the tensors need ${cursor} bytes of data but the file holds only ${dataLength} after the header (truncated)`,
      { offset: dataStart + Math.min(cursor, dataLength) },
    );
  return { tensors: sorted, metadata };
}

function readAsFloat32(source: ByteSource, info: TensorInfo): Float32Array {
  if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16')
    throw new DTypeError(`${source.name}: tensor ${JSON.stringify(info.name)} has dtype ${info.dtype}; only F32, F16 and BF16 convert to float32`, {
      argument: info.name,
      expected: 'F32, F16 or BF16',
      got: info.dtype,
    });
  assertLittleEndianHost();
  const count = info.byteLength / DTYPE_BYTES[info.dtype];
  if (info.dtype === 'F32') {
    const out = new Float32Array(count);
    source.read(info.fileOffset, new Uint8Array(out.buffer));
    return out;
  }
  const half = new Uint16Array(count);
  source.read(info.fileOffset, new Uint8Array(half.buffer));
  return info.dtype === 'F16' ? f16ToF32(half) : bf16ToF32(half);
}

/** One safetensors file (or buffer) whose header has been read and validated. */
export class SafetensorsFile implements TensorSource {
  readonly path: string;
  /** The "__metadata__" map, if the file has one. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  readonly #source: ByteSource;
  readonly #infos: Map<string, TensorInfo>;

  private constructor(source: ByteSource) {
    this.#source = source;
    this.path = source.name;
    const { tensors, metadata } = parseHeader(source);
    this.metadata = metadata === undefined ? undefined : Object.freeze({ ...metadata });
    this.#infos = new Map(tensors.map((t) => [t.name, t]));
  }

  /** Opens a file and validates its header; tensors are read later, one byte range at a time. */
  static open(path: string): SafetensorsFile {
    if (typeof path !== 'string') invalidArgument('path', 'a file path', describe(path));
    return new SafetensorsFile(new FileSource(path));
  }

  /** Reads a safetensors image held in memory. */
  static fromBytes(bytes: Uint8Array, name = '<buffer>'): SafetensorsFile {
    if (!(bytes instanceof Uint8Array)) invalidArgument('bytes', 'a Uint8Array', describe(bytes));
    return new SafetensorsFile(new BufferSource(bytes, name));
  }

  get names(): readonly string[] {
    return [...this.#infos.keys()];
  }

  has(name: string): boolean {
    return this.#infos.has(name);
  }

  info(name: string): TensorInfo {
    const i = this.#infos.get(name);
    if (i === undefined) invalidArgument('name', `one of the ${this.#infos.size} tensors in ${this.path}`, describe(name));
    return i;
  }

  readFloat32(name: string): Float32Array {
    return readAsFloat32(this.#source, this.info(name));
  }

  tensor(name: string): Tensor {
    const i = this.info(name);
    return Tensor.from(this.readFloat32(name), i.shape);
  }
}

/** The shard a weight lives in, from `model.safetensors.index.json`. */
export class ShardedSafetensors implements TensorSource {
  readonly path: string;
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
  readonly shards: readonly SafetensorsFile[];
  readonly #where: Map<string, SafetensorsFile>;

  private constructor(path: string, metadata: Record<string, unknown> | undefined, shards: SafetensorsFile[], where: Map<string, SafetensorsFile>) {
    this.path = path;
    this.metadata = metadata;
    this.shards = shards;
    this.#where = where;
  }

  /**
   * Opens an index file: {"metadata": {...}, "weight_map": {name: shard file}}. Each shard is
   * opened (headers only) and every listed weight must be in its shard. Shard names must be
   * plain file names in the index's folder.
   */
  static open(indexPath: string): ShardedSafetensors {
    if (typeof indexPath !== 'string') invalidArgument('indexPath', 'a file path', describe(indexPath));
    const index = readJsonFile(indexPath);
    if (!isObject(index) || !isObject(index['weight_map'])) throw new FormatError(indexPath, 'expected an object with a "weight_map" object');
    const meta = index['metadata'];
    if (meta !== undefined && !isObject(meta)) throw new FormatError(indexPath, '"metadata" must be an object');
    const dir = dirname(indexPath);
    const byFile = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(index['weight_map'])) {
      if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes('\\') || shard === '.' || shard === '..')
        throw new FormatError(indexPath, `weight ${JSON.stringify(name)}: the shard must be a file name in the same folder, got ${describe(shard)}`);
      let f = byFile.get(shard);
      if (f === undefined) {
        f = SafetensorsFile.open(join(dir, shard));
        byFile.set(shard, f);
      }
      if (!f.has(name)) throw new FormatError(indexPath, `weight ${JSON.stringify(name)} is listed in shard ${shard} but that file does not hold it`);
      where.set(name, f);
    }
    return new ShardedSafetensors(indexPath, meta as Record<string, unknown> | undefined, [...byFile.values()], where);
  }

  get names(): readonly string[] {
    return [...this.#where.keys()];
  }
  has(name: string): boolean {
    return this.#where.has(name);
  }
  #shard(name: string): SafetensorsFile {
    const f = this.#where.get(name);
    if (f === undefined) invalidArgument('name', `one of the ${this.#where.size} weights listed in ${this.path}`, describe(name));
    return f;
  }
  info(name: string): TensorInfo {
    return this.#shard(name).info(name);
  }
  readFloat32(name: string): Float32Array {
    return this.#shard(name).readFloat32(name);
  }
  tensor(name: string): Tensor {
    return this.#shard(name).tensor(name);
  }
}

/** JSON files (configs, indexes, tokenizers) are read whole; real ones are well under this. */
const MAX_JSON_BYTES = 256 * 1024 * 1024;

/** Reads and parses a JSON file, with FileError / FormatError naming it. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_JSON_BYTES) throw new FormatError(path, `${size} bytes is too large for a JSON file (limit ${MAX_JSON_BYTES}); is this the right file?`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof KfacError) throw e;
    throw new FileError(path, `cannot read: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `not valid JSON (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
}

/** readJsonFile for files whose top level must be an object (configs, adapter configs). */
export function readJsonObject(path: string): Record<string, unknown> {
  const v = readJsonFile(path);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FormatError(path, 'expected a JSON object');
  return v as Record<string, unknown>;
}

/**
 * Opens safetensors weights: a `.safetensors` file, a `.index.json` file, or a folder holding
 * `model.safetensors` or `model.safetensors.index.json`.
 */
export function openSafetensors(path: string): TensorSource {
  if (typeof path !== 'string') invalidArgument('path', 'a file or folder path', describe(path));
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new FileError(path, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (isDir) {
    for (const [file, open] of [
      ['model.safetensors', SafetensorsFile.open],
      ['model.safetensors.index.json', ShardedSafetensors.open],
    ] as const) {
      const p = join(path, file);
      try {
        if (statSync(p).isFile()) return open(p);
      } catch (e) {
        if (e instanceof KfacError) throw e;
      }
    }
    throw new FileError(path, 'the folder holds neither model.safetensors nor model.safetensors.index.json');
  }
  return path.endsWith('.json') ? ShardedSafetensors.open(path) : SafetensorsFile.open(path);
}

/** Reads every tensor of a safetensors file (or index) eagerly into Tensors. Convenient for small files such as adapters. */
export function loadSafetensors(path: string): Map<string, Tensor> {
  const src = openSafetensors(path);
  const out = new Map<string, Tensor>();
  try {
    for (const name of src.names) out.set(name, src.tensor(name));
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return out;
}

/** What the writer accepts for one tensor. */
export type WritableTensor = Tensor | { readonly data: Float32Array; readonly shape: readonly number[] };

export interface SaveOptions {
  /** Extra "__metadata__" entries; "format": "pt" is always written first. */
  metadata?: Record<string, string>;
  /** Element type in the file (default F32); F16/BF16 round to nearest even like torch. */
  dtype?: FloatDType;
}

function byteCompare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** The safetensors image of named float32 tensors, byte-identical to the reference writer's. */
export function serializeSafetensors(tensors: ReadonlyMap<string, WritableTensor> | Readonly<Record<string, WritableTensor>>, options: SaveOptions = {}): Uint8Array {
  if (tensors === null || typeof tensors !== 'object') invalidArgument('tensors', 'a Map or object of tensors', describe(tensors));
  if (options === null || typeof options !== 'object') invalidArgument('options', 'an options object', describe(options));
  const dtype = options.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') invalidArgument('dtype', '"F32", "F16" or "BF16"', describe(dtype));
  const meta: Record<string, string> = { format: 'pt' };
  if (options.metadata !== undefined) {
    if (!isObject(options.metadata)) invalidArgument('metadata', 'an object of strings', describe(options.metadata));
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') invalidArgument(`metadata.${k}`, 'a string', describe(v));
      if (k !== 'format') meta[k] = v;
    }
  }
  assertLittleEndianHost();
  const enc = new TextEncoder();
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)) as [string, WritableTensor][];
  const items = entries.map(([name, t]) => {
    if (typeof name !== 'string' || name === '__metadata__') invalidArgument('tensors', 'tensor names other than "__metadata__"', describe(name));
    let data: Float32Array;
    let shape: readonly number[];
    if (t instanceof Tensor) {
      if (t.device === 'cpu') data = t.toArray();
      else {
        // a device tensor is written from one download of its values
        const h = t.to('cpu', { dtype: 'float32' });
        data = h.toArray();
        h.dispose();
      }
      shape = t.shape;
    } else if (isObject(t) && t['data'] instanceof Float32Array) {
      data = t.data;
      shape = checkShape(t.shape, `tensors[${JSON.stringify(name)}].shape`);
      if (numel(shape) !== data.length) invalidArgument(`tensors[${JSON.stringify(name)}]`, `${numel(shape)} values for shape [${shape.join(', ')}]`, `${data.length}`);
    } else {
      return invalidArgument(`tensors[${JSON.stringify(name)}]`, 'a Tensor or {data: Float32Array, shape}', describe(t));
    }
    const bytes =
      dtype === 'F32' ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array((dtype === 'F16' ? f32ToF16(data) : f32ToBf16(data)).buffer);
    return { name, key: enc.encode(name), shape, bytes };
  });
  items.sort((a, b) => byteCompare(a.key, b.key));
  let offset = 0;
  const parts = [`"__metadata__":${JSON.stringify(meta)}`];
  for (const it of items) {
    parts.push(`${JSON.stringify(it.name)}:{"dtype":"${dtype}","shape":[${it.shape.join(',')}],"data_offsets":[${offset},${offset + it.bytes.length}]}`);
    offset += it.bytes.length;
  }
  let header = enc.encode(`{${parts.join(',')}}`);
  const pad = (8 - (header.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(header.length + pad).fill(0x20);
    padded.set(header);
    header = padded;
  }
  const out = new Uint8Array(8 + header.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const it of items) {
    out.set(it.bytes, at);
    at += it.bytes.length;
  }
  return out;
}

/** Writes named float32 tensors as a safetensors file (see serializeSafetensors). */
export function saveSafetensors(path: string, tensors: ReadonlyMap<string, WritableTensor> | Readonly<Record<string, WritableTensor>>, options: SaveOptions = {}): void {
  if (typeof path !== 'string') invalidArgument('path', 'a file path', describe(path));
  const bytes = serializeSafetensors(tensors, options);
  try {
    writeFileSync(path, bytes);
  } catch (e) {
    throw new FileError(path, `cannot write: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
