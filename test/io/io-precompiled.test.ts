/**
 * SentencePiece `Precompiled` normalizers (lib/io/precompiled.ts) against the Rust `tokenizers`
 * library: test/fixtures/io/t5-precompiled, made by tools/make_t5_precompiled_fixture.py from a
 * SentencePiece model trained with the nmt_nfkc rule (that of T5) and one with a small custom rule
 * table.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';

import { FormatError, InvalidArgumentError } from '../../lib/errors.js';
import { installPrecompiled, PrecompiledCharsmap } from '../../lib/io/precompiled.js';
import { Tokenizer } from '../../lib/io/tokenizer.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'io', 't5-precompiled');
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  mismatchCount: number;
  cases: { text: string; normalized: string; precompiled: string; ids: number[]; tokens: string[] }[];
  sweep: { cp: number; rust: string; nfkc: string }[];
  blockHashes: Record<string, string>;
  custom: { charsmap: string; cases: { text: string; normalized: string }[] };
  rustRefuses: Record<string, boolean>;
};
const json = JSON.parse(readFileSync(join(DIR, 'tokenizer.json'), 'utf8')) as { normalizer: { normalizers: { precompiled_charsmap: string }[] } };
const NFKC_B64 = json.normalizer.normalizers[0]!.precompiled_charsmap;
const nfkc = PrecompiledCharsmap.from(NFKC_B64, 'tokenizer.json');
const custom = PrecompiledCharsmap.from(exp.custom.charsmap, 'custom');
const UNK = 2;

/** The package's tokenizer with our normalizers installed: its `normalizer` is the whole pipeline. */
function hfWithExact(normalizer: unknown): HfTokenizer {
  const j = structuredClone(json) as Record<string, unknown>;
  j['normalizer'] = normalizer;
  const tk = new HfTokenizer(j, {});
  installPrecompiled(normalizer, tk.normalizer, 'test');
  return tk;
}

describe('Precompiled (nmt_nfkc, the charsmap of T5) against the Rust library', () => {
  const tok = Tokenizer.fromFile(DIR);
  const pipeline = hfWithExact(JSON.parse(readFileSync(join(DIR, 'tokenizer.json'), 'utf8')).normalizer);

  it.each(exp.cases.map((c) => [JSON.stringify(c.text), c] as const))('%s: normalized text, ids and tokens', (_, c) => {
    expect(nfkc.normalize(c.text)).toBe(c.precompiled);
    expect(pipeline.normalizer!(c.text)).toBe(c.normalized);
    const e = tok.encode(c.text);
    expect(e.ids).toEqual(c.ids);
    // Rust names an unknown piece by its text; this library names it <unk>.
    expect(e.tokens).toEqual(c.tokens.map((t, i) => (c.ids[i] === UNK ? '<unk>' : t)));
  });

  it('every code point where the charsmap and NFKC disagree gives what the Rust library gives', () => {
    expect(exp.sweep.length).toBe(exp.mismatchCount);
    expect(exp.sweep.length).toBeGreaterThan(100);
    const wrong = exp.sweep.filter((s) => nfkc.normalize(String.fromCodePoint(s.cp)) !== s.rust).map((s) => s.cp.toString(16));
    expect(wrong).toEqual([]);
    // many of them Node's own NFKC (newer Unicode than Python's) also gets wrong
    expect(exp.sweep.filter((s) => String.fromCodePoint(s.cp).normalize('NFKC') !== s.rust).length).toBeGreaterThan(40);
  });

  it('every code point (surrogates excepted) gives what the Rust library gives, block by block', () => {
    const parts = new Map<number, string[]>();
    for (let cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const ch = String.fromCodePoint(cp);
      let list = parts.get(cp >> 12);
      if (list === undefined) parts.set(cp >> 12, (list = []));
      list.push(nfkc.lookup(ch) ?? ch, '\0');
    }
    // one code point is one cluster of at most 4 bytes: normalize() is lookup() or the code point
    for (const cp of [0x41, 0xff21, 0xfb01, 0x1f44d, 0x7f, 0x3000]) {
      const ch = String.fromCodePoint(cp);
      expect(nfkc.normalize(ch)).toBe(nfkc.lookup(ch) ?? ch);
    }
    const bad = [...parts].filter(([k, list]) => createHash('sha256').update(list.join(''), 'utf8').digest('hex') !== exp.blockHashes[String(k)]).map(([k]) => k);
    expect(parts.size).toBe(Object.keys(exp.blockHashes).length);
    expect(bad).toEqual([]);
  });
});

describe('long texts (segmented in chunks)', () => {
  it('give the same as their parts, and no cluster is cut at a chunk end', () => {
    const texts = exp.cases.map((c) => c.text).filter((t) => t !== '');
    const long = Array.from({ length: 12 }, () => texts.join(' ')).join('\n');
    expect(long.length).toBeGreaterThan(8000);
    const parts = Array.from({ length: 12 }, () => texts.map((t) => nfkc.normalize(t)).join(' ')).join(' ');
    expect(nfkc.normalize(long)).toBe(parts);
    for (let k = 250; k < 262; k++) {
      expect(custom.normalize('A'.repeat(k) + 'e\u0301' + 'A')).toBe('x'.repeat(k) + 'eex');
      expect(custom.normalize('一'.repeat(k) + 'a\u0301\u0302' + '一')).toBe('二'.repeat(k) + 'Z二');
    }
  });
});

describe('Precompiled with a custom rule table (exact trie walk)', () => {
  it.each(exp.custom.cases.map((c) => [JSON.stringify(c.text), c] as const))('%s', (_, c) => {
    expect(custom.normalize(c.text)).toBe(c.normalized);
  });

  it('the first (shortest) key replaces a whole short cluster; long clusters go code point by code point', () => {
    // rules: e -> ee, e+U+0301 -> E, U+0301 -> -, o+3 accents -> Q (7 bytes: never used whole)
    expect(custom.normalize('e\u0301')).toBe('ee');
    expect(custom.normalize('o\u0301\u0302\u0303')).toBe('o-\u0302\u0303');
    expect(custom.keys).toBeGreaterThanOrEqual(10);
  });
});

/** Charsmap bytes of the custom table, and helpers to walk its trie the way a lookup does. */
function customBytes(): { bytes: Uint8Array; view: DataView; trieBytes: number } {
  const bytes = new Uint8Array(Buffer.from(exp.custom.charsmap, 'base64'));
  const view = new DataView(bytes.buffer);
  return { bytes, view, trieBytes: view.getUint32(0, true) };
}
const offsetOf = (u: number): number => (u >>> 10) << ((u & 0x200) >>> 6);
/** Byte position (in the charsmap) of the leaf value unit of one-byte key `c`. */
function leafOf(view: DataView, c: number): number {
  const unit = (i: number): number => view.getUint32(4 + 4 * i, true);
  const pos = offsetOf(unit(0)) ^ c;
  expect((unit(pos) >>> 8) & 1).toBe(1);
  return 4 + 4 * (pos ^ offsetOf(unit(pos)));
}
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

describe('corrupt charsmaps', () => {
  const refuse = (data: string | Uint8Array, what: RegExp): void => {
    let err: unknown;
    try {
      PrecompiledCharsmap.from(data, 'my/tokenizer.json', 'normalizer.precompiled_charsmap');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).code).toBe('ERR_FORMAT');
    expect((err as Error).message).toMatch(/^my\/tokenizer\.json: normalizer\.precompiled_charsmap: /);
    expect((err as Error).message).toMatch(what);
  };

  it('bad base64, too short, trie size zero, odd or past the end', () => {
    refuse('!!!!', /base64/);
    refuse('AAAAA', /base64/);
    refuse('AA==', /shorter than the 4-byte trie size/);
    refuse('AAAAAA==', /trie size 0 bytes/); // the Rust library panics on it
    refuse(b64(new Uint8Array([6, 0, 0, 0, 0, 0, 0, 0, 0, 0])), /trie size 6 bytes/);
    const { bytes, view } = customBytes();
    view.setUint32(0, bytes.length & ~3, true);
    refuse(bytes, /runs past the end/);
    expect(exp.rustRefuses['bad base64']).toBe(true);
    expect(() => PrecompiledCharsmap.from(42 as unknown as string, 'f')).toThrow(InvalidArgumentError);
  });

  it('offsets and values out of range, strings that are not UTF-8', () => {
    let c = customBytes();
    c.view.setUint32(4, 256 << 10, true); // root's children at unit 256 of 256
    refuse(c.bytes, /children at unit 256 lie outside the trie/);
    c = customBytes();
    c.view.setUint32(leafOf(c.view, 0x41), 0x80000000 | 5000, true);
    refuse(c.bytes, /value 5000 points past/);
    c = customBytes();
    const strings = c.bytes.subarray(4 + c.trieBytes);
    const er = Buffer.from(strings).indexOf(Buffer.from('二'));
    expect(er).toBeGreaterThan(0);
    c.view.setUint32(leafOf(c.view, 0x41), 0x80000000 | (er + 1), true); // the middle of a character
    refuse(c.bytes, /does not start on a UTF-8 character/);
    c = customBytes();
    refuse(new Uint8Array([...c.bytes, 0xff, 0]), /not UTF-8/);
  });

  it('random damage gives a FormatError or a working normalizer, never a crash or a hang', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    let refused = 0;
    for (let k = 0; k < 300; k++) {
      const { bytes } = customBytes();
      for (let f = 0; f < 1 + rand(4); f++) bytes[rand(bytes.length)] = rand(256);
      let map: PrecompiledCharsmap;
      try {
        map = PrecompiledCharsmap.from(bytes, 'f');
      } catch (e) {
        expect(e).toBeInstanceOf(FormatError);
        refused++;
        continue;
      }
      for (const t of ['AB e\u0301 😀 ①', 'a\u0301\u0302\u3000一', '\u0000x\uffff\ud800']) expect(typeof map.normalize(t)).toBe('string');
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('a Tokenizer names the file and the field', () => {
    const j = structuredClone(json) as Record<string, unknown> & typeof json;
    j.normalizer.normalizers[0]!.precompiled_charsmap = 'AAAAAA==';
    expect(() => Tokenizer.fromJSON(j)).toThrow(/<tokenizer\.json>: normalizer\.normalizers\[0\]\.precompiled_charsmap: trie size 0/);
    (j.normalizer.normalizers[0] as Record<string, unknown>)['precompiled_charsmap'] = null;
    expect(() => Tokenizer.fromJSON(j)).toThrow(FormatError);
  });
});

describe('an empty charsmap', () => {
  it('normalises nothing (SentencePiece treats an empty charsmap as no rules)', () => {
    // tokenizers 0.23 refuses such a file (recorded in the fixture); SentencePiece applies no rules.
    expect(exp.rustRefuses['empty']).toBe(true);
    const text = 'ＡＢ ﬁ\u3000x\u0007 e\u0301 ～';
    const alone = hfWithExact({ type: 'Precompiled', precompiled_charsmap: '' });
    expect(alone.normalizer!(text)).toBe(text);
    const inSeq = hfWithExact({ type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: '' }, { type: 'Lowercase' }] });
    expect(inSeq.normalizer!(text)).toBe(text.toLowerCase());
    // while the nmt_nfkc charsmap does change it
    expect(nfkc.normalize(text)).not.toBe(text);
  });
});
