/**
 * A small byte-pair-encoding tokenizer trained on the corpus, written as a Hugging Face
 * `tokenizer.json` (the SentencePiece-like LLaMA layout: Metaspace "▁" for spaces, a BPE model,
 * `<s> … </s>` added by a TemplateProcessing post-processor).
 *
 * Training is the classic algorithm on word counts: every word (a space-separated piece with
 * "▁" in front) starts as its characters; the most frequent adjacent pair is merged, repeatedly,
 * until the vocabulary reaches its size. Ties go to the lexicographically smallest pair, so the
 * result depends only on the texts. With `vocabSize` at most the alphabet size it is a
 * character-level tokenizer (no merges).
 */
import { invalidArgument } from '../errors.js';

export const SPECIAL_TOKENS = ['<pad>', '<unk>', '<s>', '</s>'] as const;
export const PAD_ID = 0;
export const UNK_ID = 1;
export const BOS_ID = 2;
export const EOS_ID = 3;
const SPACE = '\u2581';

export interface BpeOptions {
  /** Total vocabulary, special tokens included (default 1024). */
  vocabSize?: number;
  /** Characters seen fewer times are left to `<unk>` (default 2). */
  minCharCount?: number;
  /** Longest sequence recorded in tokenizer_config.json (default 128). */
  modelMaxLength?: number;
}

export interface BpeResult {
  vocab: string[];
  merges: [string, string][];
}

/** Word counts of texts split at spaces, each word prefixed with "▁" (the Metaspace rule). */
function countWords(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of t.split(' ')) if (w) counts.set(SPACE + w, (counts.get(SPACE + w) ?? 0) + 1);
  return counts;
}

/** Trains the merges (deterministic). */
export function trainBpe(texts: Iterable<string>, options: BpeOptions = {}): BpeResult {
  const vocabSize = options.vocabSize ?? 1024;
  const minChar = options.minCharCount ?? 2;
  if (!(Number.isInteger(vocabSize) && vocabSize > SPECIAL_TOKENS.length)) invalidArgument('vocabSize', `an integer above ${SPECIAL_TOKENS.length}`, String(vocabSize));
  const wordCounts = countWords(texts);
  const charCounts = new Map<string, number>();
  for (const [w, c] of wordCounts) for (const ch of w) charCounts.set(ch, (charCounts.get(ch) ?? 0) + c);
  const alphabet = [...charCounts].filter(([ch, c]) => c >= minChar || ch === SPACE).map(([ch]) => ch).sort();
  const vocab: string[] = [...SPECIAL_TOKENS, ...alphabet];
  const merges: [string, string][] = [];
  const known = new Set(alphabet);
  // Words as symbol arrays; a word with an unknown character is split there (it never merges across it).
  const words: { sym: string[]; n: number }[] = [];
  for (const [w, n] of [...wordCounts].sort((a, b) => (a[0] < b[0] ? -1 : 1))) words.push({ sym: [...w].map((ch) => (known.has(ch) ? ch : '\u0000')), n });
  const pairs = new Map<string, number>();
  const where = new Map<string, Set<number>>();
  const key = (a: string, b: string) => `${a}\u0001${b}`;
  const addPairs = (wi: number, sign: number) => {
    const { sym, n } = words[wi]!;
    for (let i = 0; i + 1 < sym.length; i++) {
      if (sym[i] === '\u0000' || sym[i + 1] === '\u0000') continue;
      const k = key(sym[i]!, sym[i + 1]!);
      pairs.set(k, (pairs.get(k) ?? 0) + sign * n);
      if (sign > 0) {
        let s = where.get(k);
        if (!s) where.set(k, (s = new Set()));
        s.add(wi);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1);
  while (vocab.length < vocabSize) {
    let best: string | null = null;
    let bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && n > 0 && best !== null && k < best)) [best, bestN] = [k, n];
    if (best === null || bestN < 2) break;
    const [a, b] = best.split('\u0001') as [string, string];
    const merged = a + b;
    merges.push([a, b]);
    vocab.push(merged);
    for (const wi of [...where.get(best)!].sort((x, y) => x - y)) {
      const w = words[wi]!;
      addPairs(wi, -1);
      const out: string[] = [];
      for (let i = 0; i < w.sym.length; i++) {
        if (i + 1 < w.sym.length && w.sym[i] === a && w.sym[i + 1] === b) {
          out.push(merged);
          i++;
        } else out.push(w.sym[i]!);
      }
      w.sym = out;
      addPairs(wi, 1);
    }
    pairs.delete(best);
    where.delete(best);
    for (const [k, n] of pairs) if (n <= 0) {
      pairs.delete(k);
      where.delete(k);
    }
  }
  return { vocab, merges };
}

/**
 * Fast encoding for training data, equal to the tokenizer.json's (checked by the tests): each
 * distinct word is encoded once (lowest-rank merge first) and cached.
 */
export class BpeEncoder {
  readonly #ids = new Map<string, number>();
  readonly #rank = new Map<string, number>();
  readonly #cache = new Map<string, number[]>();

  constructor(bpe: BpeResult) {
    bpe.vocab.forEach((t, i) => this.#ids.set(t, i));
    bpe.merges.forEach(([a, b], i) => this.#rank.set(`${a}\u0001${b}`, i));
  }

  #word(w: string): number[] {
    const hit = this.#cache.get(w);
    if (hit) return hit;
    let sym = [...w];
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = this.#rank.get(`${sym[i]}\u0001${sym[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      const [a, b] = [sym[best]!, sym[best + 1]!];
      const out: string[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (i + 1 < sym.length && sym[i] === a && sym[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(sym[i]!);
      }
      sym = out;
    }
    const ids = sym.map((t) => this.#ids.get(t) ?? UNK_ID);
    this.#cache.set(w, ids);
    return ids;
  }

  /** Token ids of a text (no special tokens). */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const w of text.split(' ')) if (w) for (const id of this.#word(SPACE + w)) out.push(id);
    return out;
  }
}

/** The Hugging Face tokenizer.json of a trained BPE. */
export function tokenizerJson(bpe: BpeResult): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  bpe.vocab.forEach((t, i) => (vocab[t] = i));
  const special = (id: number) => ({ id, content: SPECIAL_TOKENS[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const s = { id: '<s>', type_id: 0 };
  const e = { id: '</s>', type_id: 0 };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((_, i) => special(i)),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: s }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: e }],
      pair: [{ SpecialToken: s }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: e }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '</s>', type_id: 1 } }],
      special_tokens: {
        '<s>': { id: '<s>', ids: [BOS_ID], tokens: ['<s>'] },
        '</s>': { id: '</s>', ids: [EOS_ID], tokens: ['</s>'] },
      },
    },
    decoder: { type: 'Metaspace', replacement: SPACE, prepend_scheme: 'always', split: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: bpe.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** tokenizer_config.json next to it. */
export function tokenizerConfigJson(options: BpeOptions = {}): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: '<pad>',
    model_max_length: options.modelMaxLength ?? 128,
    clean_up_tokenization_spaces: false,
  };
}
