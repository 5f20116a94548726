/**
 * Tokenizer (tokenizer.json through @huggingface/tokenizers, with truncation, pairs, padding and
 * masks done by the library).
 *
 * Expected values: test/fixtures/io/tokenizer/*.json, written by
 * tools/make_io_fixtures_tokenizer.py from the Rust `tokenizers` library and the `transformers`
 * fast tokenizer (the script checks that the two agree) on ../shared/data/tokenizers/bert-base-uncased;
 * the word-level and byte-level BPE tokenizers are built by the same script with the Rust library,
 * which also gives their expected encodings.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { FormatError, KfacError } from '../../lib/index.js';
import { longestFirstLengths, Tokenizer } from '../../lib/io/index.js';
import { sharedData, skipNote } from '../support/shared-data.js';

interface Case {
  kind: string;
  text: string;
  pair?: string;
  maxLength?: number;
  ids: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
  tokens: string[];
  decoded: string;
  decodedWithSpecial: string;
}
const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'io', 'tokenizer', 'expected.json'), 'utf8')) as {
  vocabSize: number;
  cases: Case[];
  pairSplit: [number, number, number, number, number][];
  byteLevel: { text: string; ids: number[]; decoded: string }[];
  wordLevel: Record<'roberta' | 'template', { text: string; pair?: string; maxLength?: number; ids: number[]; tokenTypeIds: number[] }[]>;
  batches: { texts: (string | [string, string])[]; padding: 'longest' | 'max_length'; maxLength?: number; ids: number[][]; tokenTypeIds: number[][]; attentionMask: number[][] }[];
};

const BERT = sharedData('tokenizers/bert-base-uncased');

describe('longest-first split of a pair', () => {
  it('splits every budget as the Rust tokenizers library does (fixture pairSplit: [n1, n2, budget, kept1, kept2], texts up to 15 tokens)', () => {
    expect(fixture.pairSplit.length).toBeGreaterThan(1000);
    // the pair template [CLS] a [SEP] b [SEP] adds 3 tokens: maxLength = budget + 3
    for (const [n1, n2, budget, k1, k2] of fixture.pairSplit) expect([n1, n2, budget, ...longestFirstLengths(n1, n2, budget, budget + 3)]).toEqual([n1, n2, budget, k1, k2]);
  });
});

describe.skipIf(BERT === undefined)(`bert-base-uncased tokenizer against the reference libraries${skipNote(BERT, 'tokenizers/bert-base-uncased')}`, () => {
  const tok = BERT === undefined ? undefined! : Tokenizer.fromFile(BERT);

  it('loads the vocabulary and the special tokens', () => {
    expect(tok.vocabSize).toBe(fixture.vocabSize);
    expect(tok.padTokenId).toBe(0);
    expect(tok.tokenToId('[CLS]')).toBe(101);
    expect(tok.numSpecialTokens(false)).toBe(2);
    expect(tok.numSpecialTokens(true)).toBe(3);
    expect(tok.modelMaxLength).toBe(512);
  });

  it.each(fixture.cases.map((c, i) => [`${i} ${c.kind}: ${JSON.stringify(c.text).slice(0, 40)}${c.pair === undefined ? '' : ' + pair'}${c.maxLength === undefined ? '' : ` ≤ ${c.maxLength}`}`, c] as const))(
    '%s',
    (_label, c) => {
      const e = tok.encode(c.text, { ...(c.pair === undefined ? {} : { pair: c.pair }), ...(c.maxLength === undefined ? {} : { maxLength: c.maxLength }) });
      expect(e.tokens).toEqual(c.tokens);
      expect(e.ids).toEqual(c.ids);
      expect(e.tokenTypeIds).toEqual(c.tokenTypeIds);
      expect(e.attentionMask).toEqual(c.attentionMask);
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode(c.ids, { skipSpecialTokens: false })).toBe(c.decodedWithSpecial);
    },
  );

  it('pads batches to their longest member and to a fixed length, with pairs truncated', () => {
    for (const b of fixture.batches) {
      const got = tok.encodeBatch(b.texts, { padding: b.padding, ...(b.maxLength === undefined ? {} : { maxLength: b.maxLength }) });
      expect(got.ids).toEqual(b.ids);
      expect(got.tokenTypeIds).toEqual(b.tokenTypeIds);
      expect(got.attentionMask).toEqual(b.attentionMask);
    }
    const one = tok.encode('hello', { padding: 'max_length', maxLength: 6 });
    expect(one.ids).toEqual([101, 7592, 102, 0, 0, 0]);
    expect(one.attentionMask).toEqual([1, 1, 1, 0, 0, 0]);
    expect(tok.encode('hello', { padding: 'longest' }).ids).toEqual([101, 7592, 102]);
  });

  it('truncates to model_max_length by default and can turn truncation or special tokens off', () => {
    const long = 'word '.repeat(600);
    expect(tok.encode(long).ids.length).toBe(512);
    expect(tok.encode(long, { truncation: false }).ids.length).toBe(602);
    expect(tok.encode('hello world', { addSpecialTokens: false }).ids).toEqual([7592, 2088]);
  });

  it('validates its arguments with typed errors', () => {
    expect(() => tok.encode(5 as never)).toThrow(KfacError);
    expect(() => tok.encode('a', { maxLength: 1 })).toThrow(/at least 2/);
    expect(() => tok.encode('a', { padding: 'left' as never })).toThrow(KfacError);
    expect(() => tok.encodeBatch('abc' as never)).toThrow(KfacError);
    expect(() => tok.encodeBatch([['a'] as never])).toThrow(KfacError);
    expect(() => tok.decode([1e9])).toThrow(KfacError);
  });
});

describe.each(['roberta', 'template'] as const)('a word-level tokenizer with the %s post-processor (built and encoded by the Rust library)', (kind) => {
  const tok = Tokenizer.fromFile(join(import.meta.dirname, '..', 'fixtures', 'io', 'tokenizer', `wordlevel-${kind}.json`));
  it.each(fixture.wordLevel[kind].map((c) => [`${c.text}${c.pair === undefined ? '' : ` + ${c.pair}`}${c.maxLength === undefined ? '' : ` ≤ ${c.maxLength}`}`, c] as const))('%s', (_l, c) => {
    const e = tok.encode(c.text, { ...(c.pair === undefined ? {} : { pair: c.pair }), ...(c.maxLength === undefined ? { truncation: false } : { maxLength: c.maxLength }) });
    expect(e.ids).toEqual(c.ids);
    expect(e.tokenTypeIds).toEqual(c.tokenTypeIds);
  });
  it('has no padding token unless one is given', () => {
    expect(tok.padTokenId).toBeUndefined();
    expect(() => tok.encodeBatch(['the cat', 'a'], { padding: 'longest' })).toThrow(/no padding token/);
    const padded = Tokenizer.fromFile(join(import.meta.dirname, '..', 'fixtures', 'io', 'tokenizer', `wordlevel-${kind}.json`), { padToken: '<pad>' });
    expect(padded.encodeBatch(['the cat', 'a'], { padding: 'longest' }).attentionMask[1]!.at(-1)).toBe(0);
  });
});

describe('a GPT-2-style byte-level BPE tokenizer (trained, saved and encoded by the Rust library)', () => {
  const tok = Tokenizer.fromFile(join(import.meta.dirname, '..', 'fixtures', 'io', 'tokenizer', 'bytelevel-bpe.json'));
  it.each(fixture.byteLevel.map((c) => [JSON.stringify(c.text).slice(0, 50), c] as const))('%s', (_l, c) => {
    const e = tok.encode(c.text, { truncation: false });
    expect(e.ids).toEqual(c.ids);
    expect(tok.decode(c.ids)).toBe(c.decoded);
  });
});

describe('Tokenizer file errors', () => {
  it('names the file when tokenizer.json is missing or malformed', () => {
    expect(() => Tokenizer.fromFile('/nonexistent/tokenizer.json')).toThrow(/nonexistent/);
    expect(() => Tokenizer.fromJSON({ nope: 1 })).toThrow(FormatError);
  });
});
