/**
 * A T5-style SentencePiece Unigram tokenizer.json (Viterbi over the piece lattice, WhitespaceSplit +
 * Metaspace pre-tokenization, "$A </s>" template, Metaspace decoder) against the Rust `tokenizers`
 * library: test/fixtures/io/t5-tokenizer, trained and recorded by tools/make_t5_tokenizer_fixture.py.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { Tokenizer } from '../../lib/io/index.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'io', 't5-tokenizer');
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  vocabSize: number;
  cases: { text: string; ids: number[]; tokens: string[]; decoded: string }[];
  pair: { a: string; b: string; ids: number[] };
};

describe('T5 Unigram tokenizer', () => {
  const tok = Tokenizer.fromFile(join(DIR, 'tokenizer.json'));

  it('has the vocabulary and special ids of T5 (<pad> 0, </s> 1, <unk> 2)', () => {
    expect(tok.vocabSize).toBe(exp.vocabSize);
    expect([tok.tokenToId('<pad>'), tok.tokenToId('</s>'), tok.tokenToId('<unk>')]).toEqual([0, 1, 2]);
  });

  it.each(exp.cases.map((c) => [JSON.stringify(c.text), c] as const))('encodes and decodes %s as tokenizers does', (_, c) => {
    const e = tok.encode(c.text);
    expect(e.ids).toEqual(c.ids);
    // Rust names an unknown piece by its text (fused runs of unknown characters are one piece); we name it <unk>.
    expect(e.tokens).toEqual(c.tokens.map((t, i) => (c.ids[i] === 2 ? '<unk>' : t)));
    expect(tok.decode(e.ids, { skipSpecialTokens: true })).toBe(c.decoded);
  });

  it('pairs get "$A </s> $B </s>"', () => {
    expect(tok.encode(exp.pair.a, { pair: exp.pair.b }).ids).toEqual(exp.pair.ids);
  });
});
