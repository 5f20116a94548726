/**
 * SentencePiece `precompiled_charsmap` normalisation, as the Rust `tokenizers` library applies a
 * tokenizer.json `{"type": "Precompiled"}` normalizer (T5, Flan-T5, mT5, XLM-R, ...).
 *
 * The charsmap (base64 in tokenizer.json) is:
 *   u32 little-endian  trie size in bytes (a multiple of 4)
 *   u32[]              the units of a darts-clone double-array trie over UTF-8 bytes
 *   bytes              the normalised strings, each ended by a NUL; a trie value is the offset of one
 *
 * A unit packs: bit 8 "has leaf"; bits 0-7 the label (with bit 31, so a leaf unit never matches a
 * label); bits 10-31 an offset, shifted left by 8 more when bit 9 is set; a leaf's value is bits
 * 0-30. From the root, each key byte `c` moves `pos ^= offset(unit); pos ^= c`; the move is valid
 * when the unit there has label `c`; it ends a key when that unit has a leaf, whose value sits at
 * `pos ^ offset(unit)`. The first key found (the shortest) is the one used, as in the Rust library.
 *
 * Text is walked by extended grapheme cluster (Intl.Segmenter). A cluster shorter than 6 UTF-8
 * bytes is first looked up whole: when a key is a prefix of it, the WHOLE cluster becomes that
 * key's string (so "Ａ" + U+0301 becomes "A", as in the Rust library). Otherwise each code point is
 * looked up alone and kept when it has no key. Lookups stop at a NUL byte.
 *
 * Every corrupt charsmap (bad base64, a trie size past the end, offsets or values out of range,
 * strings that are not UTF-8) is refused when it is read, with a FormatError naming the file and
 * the field; the trie is checked over every path a lookup can take, so a lookup never reads
 * outside it and never loops.
 */
import { describe, FormatError, InternalError, invalidArgument } from '../errors.js';

/** Longest key a lookup can use: a cluster shorter than 6 bytes, or one code point (<= 4 bytes). */
const MAX_KEY = 5;
const CACHE_LIMIT = 1 << 16;

const hasLeaf = (u: number): boolean => ((u >>> 8) & 1) === 1;
const valueOf = (u: number): number => u & 0x7fffffff;
const labelOf = (u: number): number => (u & 0x800000ff) >>> 0;
const offsetOf = (u: number): number => (u >>> 10) << ((u & 0x200) >>> 6);

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * Cluster boundaries found without the segmenter (which, in Node 20, is slow per call and slows
 * down faster than linearly with the length of the text it is given). Every Unicode version puts
 * a boundary after a line feed, before one not preceded by a carriage return, and between two
 * characters that are both printable ASCII, kana, CJK ideographs or Hangul syllables: none of them
 * joins a neighbour (UAX #29 rules GB6-GB13 all need a Prepend, a ZWJ, a jamo, a regional
 * indicator, an Indic linker or an extending mark on one side). So a printable ASCII character
 * followed by such a character (or by the end) is a cluster of its own, and the text between such
 * boundaries is segmented piece by piece; a text with no such boundary is segmented whole.
 */
const simple = (c: number): boolean =>
  (c >= 0x20 && c <= 0x7e) || (c >= 0x3041 && c <= 0x3096) || (c >= 0x30a1 && c <= 0x30fa) || (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7a3);
const isBoundary = (a: number, b: number): boolean => a === 0x0a || (b === 0x0a && a !== 0x0d) || (simple(a) && simple(b));
/** Pieces handed to the segmenter end at the first boundary after this many code units. */
const PIECE = 64;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 of `s` into `out` (from 0); -1 when it holds a lone surrogate (no UTF-8 form) or does not fit. */
function encodeUtf8(s: string, out: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const lo = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (cp > 0xdbff || lo < 0xdc00 || lo > 0xdfff) return -1;
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      i++;
    }
    const len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (n + len > out.length) return -1;
    if (len === 1) out[n++] = cp;
    else if (len === 2) {
      out[n++] = 0xc0 | (cp >> 6);
      out[n++] = 0x80 | (cp & 63);
    } else if (len === 3) {
      out[n++] = 0xe0 | (cp >> 12);
      out[n++] = 0x80 | ((cp >> 6) & 63);
      out[n++] = 0x80 | (cp & 63);
    } else {
      out[n++] = 0xf0 | (cp >> 18);
      out[n++] = 0x80 | ((cp >> 12) & 63);
      out[n++] = 0x80 | ((cp >> 6) & 63);
      out[n++] = 0x80 | (cp & 63);
    }
  }
  return n;
}

/** Standard base64 with padding (what the Rust library accepts); null when it is not. */
function decodeBase64(s: string): Uint8Array | null {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return null;
  return new Uint8Array(Buffer.from(s, 'base64'));
}

export class PrecompiledCharsmap {
  readonly #units: Uint32Array;
  readonly #strings: Uint8Array;
  readonly #decoded = new Map<number, string>();
  readonly #cache = new Map<string, string>();
  readonly #key = new Uint8Array(MAX_KEY);
  /** Each printable ASCII character normalised alone. */
  readonly #ascii: string[] = [];
  /** How many keys the trie holds (of at most MAX_KEY bytes: the ones a lookup can reach). */
  readonly keys: number;

  private constructor(units: Uint32Array, strings: Uint8Array, file: string, field: string) {
    this.#units = units;
    this.#strings = strings;
    this.keys = this.#check(file, field);
    for (let c = 0x20; c <= 0x7e; c++) this.#ascii.push(this.#cluster(String.fromCharCode(c)));
  }

  /**
   * Reads a charsmap: `bytes`, or the base64 text of a tokenizer.json. `file` and `field` name it
   * in errors (e.g. "normalizer.normalizers[0].precompiled_charsmap").
   */
  static from(data: string | Uint8Array, file: string, field = 'precompiled_charsmap'): PrecompiledCharsmap {
    let bytes: Uint8Array;
    if (typeof data === 'string') {
      const b = decodeBase64(data);
      if (b === null) throw new FormatError(file, `${field}: not standard base64 (${data.length} characters)`);
      bytes = b;
    } else if (data instanceof Uint8Array) bytes = data;
    else return invalidArgument('data', 'a base64 string or a Uint8Array', describe(data));
    if (bytes.length < 4) throw new FormatError(file, `${field}: ${bytes.length} bytes, shorter than the 4-byte trie size`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const trieBytes = view.getUint32(0, true);
    if (trieBytes === 0 || trieBytes % 4 !== 0) throw new FormatError(file, `${field}: trie size ${trieBytes} bytes is not a positive multiple of 4`);
    if (4 + trieBytes > bytes.length) throw new FormatError(file, `${field}: trie size ${trieBytes} bytes runs past the end of the ${bytes.length}-byte charsmap`);
    const units = new Uint32Array(trieBytes / 4);
    for (let i = 0; i < units.length; i++) units[i] = view.getUint32(4 + 4 * i, true);
    const strings = bytes.slice(4 + trieBytes);
    try {
      utf8.decode(strings);
    } catch (e) {
      throw new FormatError(file, `${field}: the normalised strings are not UTF-8`, { cause: e });
    }
    return new PrecompiledCharsmap(units, strings, file, field);
  }

  /**
   * Walks every path a lookup can take (keys up to MAX_KEY bytes), so that lookups need no range
   * checks: each probed unit and each leaf value is inside the trie, each value starts a UTF-8
   * string in the blob. Returns the number of keys.
   */
  #check(file: string, field: string): number {
    const u = this.#units;
    const bad = (what: string): never => {
      throw new FormatError(file, `${field}: ${what} (trie of ${u.length} units, ${this.#strings.length} string bytes)`);
    };
    let keys = 0;
    const visit = (base: number, depth: number): void => {
      if ((base | 0xff) >= u.length) bad(`a node's children at unit ${base} lie outside the trie`);
      for (let c = 1; c < 256; c++) {
        const pos = base ^ c;
        const unit = u[pos]!;
        if (labelOf(unit) !== c) continue;
        const next = pos ^ offsetOf(unit);
        if (hasLeaf(unit)) {
          if (next >= u.length) bad(`a leaf at unit ${next} lies outside the trie`);
          const v = valueOf(u[next]!);
          if (v >= this.#strings.length) bad(`a value ${v} points past the normalised strings`);
          this.#stringAt(v, file, field);
          keys++;
        }
        if (depth + 1 < MAX_KEY) visit(next, depth + 1);
      }
    };
    // Depth is bounded by MAX_KEY, so even a trie whose moves loop is walked in finite time.
    visit(offsetOf(u[0]!), 0);
    return keys;
  }

  #stringAt(v: number, file?: string, field?: string): string {
    const hit = this.#decoded.get(v);
    if (hit !== undefined) return hit;
    const s = this.#strings;
    let end = v;
    while (end < s.length && s[end] !== 0) end++;
    let text: string;
    try {
      text = utf8.decode(s.subarray(v, end));
    } catch (e) {
      throw new FormatError(file ?? '<charsmap>', `${field ?? 'precompiled_charsmap'}: the string at ${v} does not start on a UTF-8 character`, { cause: e });
    }
    this.#decoded.set(v, text);
    return text;
  }

  /** The value of the first (shortest) key that is a prefix of key[0..n), or -1. */
  #first(key: Uint8Array, n: number): number {
    const u = this.#units;
    let pos = offsetOf(u[0]!);
    for (let i = 0; i < n; i++) {
      const c = key[i]!;
      if (c === 0) return -1;
      pos ^= c;
      const unit = u[pos]!;
      if (labelOf(unit) !== c) return -1;
      pos ^= offsetOf(unit);
      if (hasLeaf(unit)) return valueOf(u[pos]!);
    }
    return -1;
  }

  /** The replacement of `s` (one cluster or one code point), or undefined when no key is its prefix. */
  lookup(s: string): string | undefined {
    const n = encodeUtf8(s, this.#key);
    if (n <= 0) return undefined;
    const v = this.#first(this.#key, n);
    return v < 0 ? undefined : this.#stringAt(v);
  }

  #cluster(g: string): string {
    const hit = this.#cache.get(g);
    if (hit !== undefined) return hit;
    // a cluster shorter than 6 bytes fits the key buffer; a longer one fails to encode (-1)
    let out = this.lookup(g);
    if (out === undefined) {
      out = '';
      for (const ch of g) out += this.lookup(ch) ?? ch;
    }
    if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(g, out);
    return out;
  }

  /** `text` normalised as the Rust library's Precompiled normalizer does. */
  normalize(text: string): string {
    const n = text.length;
    let out = '';
    // invariant: a cluster boundary lies before i
    for (let i = 0; i < n; ) {
      const c = text.charCodeAt(i);
      if (c >= 0x20 && c <= 0x7e && (i + 1 === n || simple(text.charCodeAt(i + 1)))) {
        out += this.#ascii[c - 0x20];
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n) {
        const b = text.charCodeAt(j);
        if (isBoundary(text.charCodeAt(j - 1), b) && j - i >= PIECE) break;
        j++;
      }
      for (const { segment } of segmenter.segment(i === 0 && j === n ? text : text.slice(i, j))) out += this.#cluster(segment);
      i = j;
    }
    return out;
  }
}

interface NormalizerLike {
  normalize(text: string): string;
  normalizers?: unknown;
}
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Replaces the `normalize` of every `Precompiled` normalizer built by `@huggingface/tokenizers`
 * (which applies NFKC and some clean-up instead of the charsmap) with the charsmap's exact one.
 * `config` is the tokenizer.json "normalizer" and `instance` the normalizer the package built from
 * it; Sequences are walked in step. An empty charsmap ("") normalises nothing, as SentencePiece
 * does with an empty charsmap. Returns how many were replaced.
 */
export function installPrecompiled(config: unknown, instance: unknown, file: string, field = 'normalizer'): number {
  if (!isObject(config) || (config['type'] !== 'Sequence' && config['type'] !== 'Precompiled')) return 0;
  const norm = instance as NormalizerLike | null | undefined;
  if (typeof norm?.normalize !== 'function') throw new InternalError(`${file}: ${field}: the tokenizer library built no normalizer for a ${String(config['type'])}`);
  if (config['type'] === 'Sequence') {
    if (!Array.isArray(config['normalizers'])) return 0;
    if (!Array.isArray(norm.normalizers)) throw new InternalError(`${file}: ${field}: the tokenizer library's Sequence normalizer has no list of normalizers`);
    const subs = norm.normalizers as unknown[];
    return config['normalizers'].reduce((n: number, c: unknown, i: number) => n + installPrecompiled(c, subs[i], file, `${field}.normalizers[${i}]`), 0);
  }
  const data = config['precompiled_charsmap'];
  const where = `${field}.precompiled_charsmap`;
  if (typeof data !== 'string') throw new FormatError(file, `${where}: expected a base64 string, got ${data === null ? 'null' : typeof data}`);
  if (data === '') {
    norm.normalize = (text: string) => text;
    return 1;
  }
  const map = PrecompiledCharsmap.from(data, file, where);
  norm.normalize = (text: string) => map.normalize(text);
  return 1;
}
