// Seeded mutations of file images for the reader fuzzer: bit flips, interesting bytes,
// truncations, insertions and deletions, length-field edits (binary integers and JSON numbers),
// and splices of two valid files. Everything is a function of the PRNG, so a case is reproduced
// from its seed alone.

/** mulberry32: a small seeded PRNG giving floats in [0, 1). */
export function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit hash of the parts (FNV-1a over their text), for per-case seeds. */
export function caseSeed(...parts) {
  let h = 0x811c9dc5;
  for (const c of parts.join('\u0000')) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

const int = (r, n) => Math.floor(r() * n);
const pick = (r, a) => a[int(r, a.length)];

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x22, 0x2c, 0x2d, 0x30, 0x39, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x5c, 0x65];
/** Integer values for length fields: zero, one, signs, powers of two near the type limits. */
const INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 255, 256, 4095, 65535, 65536, 2 ** 20, 2 ** 24, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
/** Replacements for a JSON number (or other literal). */
const INTERESTING_JSON = ['0', '-1', '1', '2', '-0', '0.5', '1e-300', '1e308', '-1e308', '1e999', '65536', '1048576', '2147483647', '2147483648', '4294967296', '1000000000', '9007199254740993', '100000000000', 'null', 'true', '""', '"x"', '[]', '{}', '[0]', '"("', '"\\u0000"'];

function bytesOfText(s) {
  return new TextEncoder().encode(s);
}
function latin1(b) {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bitFlip(r, b) {
  if (!b.length) return b;
  const out = b.slice();
  for (let k = 1 + int(r, 4); k > 0; k--) out[int(r, out.length)] ^= 1 << int(r, 8);
  return out;
}
function setBytes(r, b) {
  if (!b.length) return b;
  const out = b.slice();
  for (let k = 1 + int(r, 3); k > 0; k--) out[int(r, out.length)] = pick(r, INTERESTING_BYTES);
  return out;
}
function truncate(r, b) {
  return b.slice(0, int(r, b.length + 1));
}
function deleteRange(r, b) {
  if (b.length < 2) return b;
  const at = int(r, b.length);
  const n = 1 + int(r, Math.min(64, b.length - at));
  return concat(b.subarray(0, at), b.subarray(at + n));
}
function insertBytes(r, b) {
  const at = int(r, b.length + 1);
  const n = 1 + int(r, 16);
  const ins = r() < 0.5 ? Uint8Array.from({ length: n }, () => int(r, 256)) : b.slice(int(r, Math.max(1, b.length)), Math.min(b.length, int(r, b.length) + n));
  return concat(b.subarray(0, at), ins, b.subarray(at));
}

/** Overwrites a little-endian integer (4 or 8 bytes) at an aligned offset: a field position when the format says where they are. */
function lengthField(r, b, fields) {
  if (b.length < 4) return b;
  const width = fields?.length && r() < 0.8 ? null : r() < 0.5 ? 4 : 8;
  let at;
  let w;
  if (width === null) {
    const f = pick(r, fields);
    at = f.offset;
    w = f.width;
  } else {
    w = Math.min(width, b.length - (b.length % 4) || 4);
    at = 4 * int(r, Math.max(1, Math.floor((b.length - w) / 4) + 1));
  }
  if (at + w > b.length) return b;
  const out = b.slice();
  const dv = new DataView(out.buffer);
  const old = w === 8 ? Number(dv.getBigUint64(at, true)) : dv.getUint32(at, true);
  const choices = [...INTERESTING_INTS, old + 1, old - 1, old * 2, Math.floor(old / 2), b.length, b.length - at, -1, -2];
  let v = pick(r, choices);
  if (w === 4) dv.setUint32(at, v < 0 ? 2 ** 32 + v : v % 2 ** 32, true);
  else dv.setBigUint64(at, v < 0 ? 2n ** 64n + BigInt(v) : BigInt(Math.min(v, 2 ** 63)), true);
  return out;
}

/** Replaces one number (or literal) in JSON-ish text with an interesting value. */
function jsonNumber(r, b) {
  const s = latin1(b);
  const spans = [...s.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null/g)];
  if (!spans.length) return setBytes(r, b);
  const m = pick(r, spans);
  const rep = bytesOfText(pick(r, INTERESTING_JSON));
  return concat(b.subarray(0, m.index), rep, b.subarray(m.index + m[0].length));
}

/** Replaces one string literal in JSON-ish text with another from the same text or an odd one. */
function jsonString(r, b) {
  const s = latin1(b);
  const spans = [...s.matchAll(/"(?:[^"\\]|\\.)*"/g)];
  if (!spans.length) return setBytes(r, b);
  const m = pick(r, spans);
  const odd = ['""', '"("', '"[a-"', '"\\ud800"', '"__metadata__"', '"F64"', '"I8"', `"${'a'.repeat(300)}"`, '"../x"', '"model.safetensors"', 'null', '1', '[]'];
  const rep = r() < 0.5 ? pick(r, spans)[0] : pick(r, odd);
  return concat(b.subarray(0, m.index), bytesOfText(rep), b.subarray(m.index + m[0].length));
}

/** Head of `b` joined to the tail of another valid file. */
function splice(r, b, others) {
  const o = pick(r, others);
  if (!o) return truncate(r, b);
  return concat(b.subarray(0, int(r, b.length + 1)), o.subarray(int(r, o.length + 1)));
}

const BINARY = [bitFlip, setBytes, truncate, deleteRange, insertBytes, lengthField, lengthField, splice];
const TEXT = [bitFlip, setBytes, truncate, deleteRange, insertBytes, jsonNumber, jsonNumber, jsonString, splice];

/**
 * One to three stacked mutations of `bytes`. `kind` is 'binary' or 'json'; `fields` lists the
 * format's integer fields ({offset, width}); `others` are valid files to splice with.
 */
export function mutateBytes(r, bytes, { kind = 'binary', fields = [], others = [] } = {}) {
  const ops = kind === 'json' ? TEXT : BINARY;
  let b = bytes;
  const names = [];
  for (let k = 1 + int(r, 3); k > 0; k--) {
    const op = pick(r, ops);
    names.push(op.name);
    b = op(r, b, op === lengthField ? fields : others);
  }
  return { bytes: b, ops: names };
}

export const _internal = { latin1, concat, bytesOfText };
