/**
 * Byte access shared by the file readers: a file read by positional reads (never loaded whole),
 * or bytes already in memory; and the 16-bit float conversions.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

import { FileError, FormatError, InternalError } from '../errors.js';

/** Bytes that can be read at any offset: a file on disk or a buffer in memory. */
export interface ByteSource {
  /** Name used in error messages (the file path, or a label for a buffer). */
  readonly name: string;
  readonly length: number;
  /** Fills `into` with the bytes at [offset, offset + into.length); throws FormatError past the end. */
  read(offset: number, into: Uint8Array): void;
}

/** Throws on a big-endian host: the formats read here are little-endian and the data is reinterpreted in place. */
export function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new InternalError('this build reads little-endian files only and the host is big-endian', { hint: 'run on a little-endian machine (x86-64, arm64)' });
}

function errnoMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A file read with positional reads; it is opened per read, so nothing has to be closed. */
export class FileSource implements ByteSource {
  readonly name: string;
  readonly length: number;

  constructor(path: string) {
    this.name = path;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new FileError(path, `cannot open: ${errnoMessage(e)}`, { cause: e });
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new FileError(path, 'expected a regular file');
      this.length = st.size;
    } finally {
      closeSync(fd);
    }
  }

  read(offset: number, into: Uint8Array): void {
    if (offset < 0 || offset + into.length > this.length)
      throw new FormatError(this.name, `expected ${into.length} bytes at offset ${offset}, but the file has ${this.length} bytes`, { offset });
    let fd: number;
    try {
      fd = openSync(this.name, 'r');
    } catch (e) {
      throw new FileError(this.name, `cannot open: ${errnoMessage(e)}`, { cause: e });
    }
    try {
      const size = fstatSync(fd).size;
      if (size !== this.length) throw new FileError(this.name, `the file changed size while it was being read (${this.length} → ${size} bytes)`);
      let done = 0;
      while (done < into.length) {
        const chunk = Math.min(into.length - done, 1 << 30);
        const n = readSync(fd, into, done, chunk, offset + done);
        if (n <= 0) throw new FormatError(this.name, `unexpected end of file`, { offset: offset + done });
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Bytes in memory. */
export class BufferSource implements ByteSource {
  readonly name: string;
  readonly length: number;
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array, name = '<buffer>') {
    this.#bytes = bytes;
    this.name = name;
    this.length = bytes.length;
  }

  read(offset: number, into: Uint8Array): void {
    if (offset < 0 || offset + into.length > this.length)
      throw new FormatError(this.name, `expected ${into.length} bytes at offset ${offset}, but the buffer has ${this.length} bytes`, { offset });
    into.set(this.#bytes.subarray(offset, offset + into.length));
  }
}

/** IEEE binary16 → float32, exact for every value (subnormals, infinities, NaN). */
export function f16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i]!;
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: man · 2^-24, exactly representable in float32
      out[i] = (man * 5.960464477539063e-8) * (sign ? -1 : 1);
      if (man === 0) bits[i] = sign;
    } else if (exp === 0x1f) {
      bits[i] = sign | 0x7f800000 | (man << 13);
    } else {
      bits[i] = sign | ((exp + 112) << 23) | (man << 13);
    }
  }
  return out;
}

/** bfloat16 → float32 (the upper half of a float32). */
export function bf16ToF32(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 with round-to-nearest-even (NaN stays NaN), as torch's `.to(torch.bfloat16)`. */
export function f32ToBf16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i]!;
    const x = u32[0]!;
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** float32 → IEEE binary16 with round-to-nearest-even (overflow → ±Inf, NaN stays NaN), as torch's `.to(torch.float16)`. */
export function f32ToF16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i]!;
    const x = u32[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let man = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (man ? 0x200 | (man >>> 13) : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      man |= 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = man & ((1 << shift) - 1);
      let r = man >>> shift;
      if (rest > half || (rest === half && (r & 1))) r += 1;
      out[i] = sign | r;
      continue;
    }
    let r = (e << 10) | (man >>> 13);
    const rest = man & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) r += 1; // a carry into the exponent is correct rounding
    out[i] = sign | r;
  }
  return out;
}
