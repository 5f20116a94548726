/**
 * Hugging Face `tokenizer.json` tokenizers.
 *
 * Normalisation, pre-tokenisation and the model (WordPiece, BPE, Unigram) come from
 * `@huggingface/tokenizers`, except that SentencePiece `Precompiled` normalizers apply their charsmap
 * exactly (lib/io/precompiled.ts); truncation, special tokens, token type ids, padding and attention
 * masks are done here, following the Rust `tokenizers` library: each text is tokenised without
 * special tokens, cut to `maxLength` minus the number of special tokens the post-processor adds
 * (pairs: longest-first, the same split as the reference), then the post-processor adds the
 * special tokens and type ids, then padding goes on the right.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import { describe, FileError, FormatError, InternalError, invalidArgument, InvalidArgumentError } from '../errors.js';
import { checkBoolean, checkInteger, checkOptions } from '../util/validate.js';
import { installPrecompiled } from './precompiled.js';
import { readJsonFile } from './safetensors.js';

export interface EncodeOptions {
  /** A second text: the pair gets the pair template (e.g. [CLS] a [SEP] b [SEP]) and type ids 0 / 1. */
  pair?: string;
  /** Add the post-processor's special tokens (default true). */
  addSpecialTokens?: boolean;
  /** Longest result, special tokens included. Truncation needs it (default: model_max_length of tokenizer_config.json, when given). */
  maxLength?: number;
  /** Cut to `maxLength` (default true when a max length is known). Pairs are cut longest-first. */
  truncation?: boolean;
  /**
   * Right padding: 'max_length' pads to `maxLength`; 'longest' pads a batch to its longest
   * member (a single encode is then left as is); false (default) pads nothing.
   */
  padding?: 'max_length' | 'longest' | false;
}

export interface Encoding {
  ids: number[];
  tokenTypeIds: number[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
  tokens: string[];
}

export interface BatchEncoding {
  ids: number[][];
  tokenTypeIds: number[][];
  attentionMask: number[][];
  tokens: string[][];
}

export interface DecodeOptions {
  /** Drop special tokens such as [CLS], [SEP] and [PAD] (default true). */
  skipSpecialTokens?: boolean;
}

export interface TokenizerOptions {
  /** Overrides the padding token (default: the tokenizer.json padding setting, then tokenizer_config.json's pad_token). */
  padToken?: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

interface Resolved {
  add: boolean;
  maxLength: number | undefined;
  truncate: boolean;
  padding: 'max_length' | 'longest' | false;
}

type PostProcessed = { tokens: string[]; tokens_pair?: string[]; token_type_ids?: number[] };
type PostProcessorFn = (a: string[], b: string[] | null, addSpecial: boolean) => PostProcessed;

/**
 * Splits a truncation budget between the two texts of a pair as the Rust `tokenizers` library
 * does (longest-first), rule for rule as observed on it for every pair of texts up to 15 tokens
 * and every max length up to 15 (fixture `pairSplit`):
 * - the shorter text is kept whole when the longer one can take the whole cut;
 * - otherwise each gets half of the budget; the odd token goes to the longer text, except when
 *   the shorter text alone reaches `maxLength` (the limit with special tokens), where it goes to
 *   the second text.
 * `budget` is `maxLength` minus the special tokens of the pair template.
 */
export function longestFirstLengths(n1: number, n2: number, budget: number, maxLength: number = budget): [number, number] {
  if (n1 + n2 <= budget) return [n1, n2];
  const short = Math.min(n1, n2);
  const half = Math.floor(budget / 2);
  const odd = budget % 2;
  if (short <= budget && short + Math.max(short, budget - short) <= budget) return n1 <= n2 ? [n1, budget - n1] : [budget - n2, n2];
  if (n1 > n2 && short < maxLength) return [half + odd, half];
  return [half, half + odd];
}

export class Tokenizer {
  readonly #tk: HfTokenizer;
  readonly #post: PostProcessorFn | null;
  readonly #unkId: number | undefined;
  readonly #unkToken: string | undefined;
  readonly #special: Set<number>;
  readonly #specialSingle: number;
  readonly #specialPair: number;
  readonly #robertaTypes: boolean;
  /** The tokenizer.json it was read from (or a label). */
  readonly path: string;
  /** model_max_length from tokenizer_config.json, when sensible. */
  readonly modelMaxLength: number | undefined;
  readonly padToken: string | undefined;
  readonly padTokenId: number | undefined;
  readonly vocabSize: number;

  private constructor(json: Record<string, unknown>, config: Record<string, unknown>, options: TokenizerOptions, source: string) {
    let tk: HfTokenizer;
    try {
      tk = new HfTokenizer(json, config);
    } catch (e) {
      throw new FormatError(source, `not a tokenizer the library can load (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
    // The package applies a Precompiled normalizer as NFKC plus some clean-up; use the charsmap itself.
    // (Added tokens marked "normalized" were already normalised the package's way when it was built.)
    installPrecompiled(json['normalizer'], tk.normalizer, source);
    this.#tk = tk;
    this.path = source;
    const pp = tk.post_processor as unknown as PostProcessorFn | null;
    this.#post = pp;
    const ppType = isObject(json['post_processor']) ? json['post_processor']['type'] : undefined;
    // The reference RobertaProcessing gives every token type id 0 (RoBERTa has one token type).
    this.#robertaTypes = ppType === 'RobertaProcessing';
    const unkToken = isObject(json['model']) && typeof json['model']['unk_token'] === 'string' ? json['model']['unk_token'] : undefined;
    this.#unkId = tk.model?.unk_token_id ?? (unkToken === undefined ? undefined : tk.token_to_id(unkToken));
    this.#unkToken = unkToken ?? (this.#unkId === undefined ? undefined : tk.id_to_token(this.#unkId));
    this.#special = new Set<number>();
    // The tokenizer library accepts some malformed post-processors and added-token lists and only
    // fails when they are used (a TypeError): try them here, where the file can be named.
    try {
      for (const [id, t] of tk.get_added_tokens_decoder()) if (t.special) this.#special.add(id);
      this.#specialSingle = pp ? pp([], null, true).tokens.length : 0;
      this.#specialPair = pp ? pp([], [], true).tokens.length : 0;
      this.vocabSize = tk.model?.vocab.length ?? 0;
    } catch (e) {
      throw new FormatError(source, `not a tokenizer the library can use (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
    const mml = config['model_max_length'];
    this.modelMaxLength = typeof mml === 'number' && Number.isInteger(mml) && mml > 0 && mml < 1e7 ? mml : undefined;
    // padding token: explicit option, tokenizer.json padding, tokenizer_config.json
    const padding = json['padding'];
    const cfgPad = config['pad_token'];
    const padToken =
      options.padToken ??
      (isObject(padding) && typeof padding['pad_token'] === 'string' ? padding['pad_token'] : undefined) ??
      (typeof cfgPad === 'string' ? cfgPad : isObject(cfgPad) && typeof cfgPad['content'] === 'string' ? cfgPad['content'] : undefined);
    this.padToken = padToken;
    this.padTokenId = padToken === undefined ? undefined : tk.token_to_id(padToken);
    if (padToken !== undefined && this.padTokenId === undefined) throw new FormatError(source, `the padding token ${JSON.stringify(padToken)} is not in the vocabulary`);
  }

  /**
   * Loads `tokenizer.json` (a file, or a folder holding it) and, next to it,
   * `tokenizer_config.json` when present.
   */
  static fromFile(path: string, options: TokenizerOptions = {}): Tokenizer {
    if (typeof path !== 'string') invalidArgument('path', 'a tokenizer.json file or a folder holding one', describe(path));
    const o = checkOptions(options) as TokenizerOptions;
    let file = path;
    let dir: string;
    try {
      if (statSync(path).isDirectory()) {
        dir = path;
        file = join(path, 'tokenizer.json');
      } else {
        dir = join(path, '..');
      }
    } catch (e) {
      throw new FileError(path, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const json = readJsonFile(file);
    const cfgPath = join(dir, 'tokenizer_config.json');
    let config: unknown = {};
    try {
      if (statSync(cfgPath).isFile()) config = readJsonFile(cfgPath);
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'ENOENT')) throw e;
    }
    if (!isObject(config)) throw new FormatError(cfgPath, 'expected a JSON object');
    return Tokenizer.#make(json, config, o, file);
  }

  /** From the parsed contents of tokenizer.json (and optionally tokenizer_config.json). */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown = {}, options: TokenizerOptions = {}): Tokenizer {
    if (!isObject(tokenizerConfig)) invalidArgument('tokenizerConfig', 'an object', describe(tokenizerConfig));
    return Tokenizer.#make(tokenizerJson, tokenizerConfig, checkOptions(options) as TokenizerOptions, '<tokenizer.json>');
  }

  static #make(json: unknown, config: Record<string, unknown>, options: TokenizerOptions, source: string): Tokenizer {
    if (!isObject(json) || !isObject(json['model'])) throw new FormatError(source, 'expected a tokenizer.json object with a "model"');
    if (options.padToken !== undefined && typeof options.padToken !== 'string') invalidArgument('padToken', 'a string', describe(options.padToken));
    return new Tokenizer(json, config, options, source);
  }

  tokenToId(token: string): number | undefined {
    return this.#tk.token_to_id(token);
  }
  idToToken(id: number): string | undefined {
    return this.#tk.id_to_token(id);
  }
  /** How many special tokens the post-processor adds to one text, or to a pair. */
  numSpecialTokens(pair = false): number {
    return pair ? this.#specialPair : this.#specialSingle;
  }

  #pieces(text: string): string[] {
    try {
      return this.#tk.tokenize(text, { add_special_tokens: false });
    } catch (e) {
      throw new InternalError(`${this.path}: the tokenizer failed on a text of ${text.length} characters (${e instanceof Error ? e.message : String(e)})`, { cause: e });
    }
  }

  #resolve(o: Record<string, unknown>): Resolved {
    const add = o['addSpecialTokens'] === undefined ? true : checkBoolean(o['addSpecialTokens'], 'addSpecialTokens');
    const maxLength = o['maxLength'] === undefined ? this.modelMaxLength : checkInteger(o['maxLength'], 'maxLength', 0, 1e9);
    const truncation = o['truncation'] === undefined ? maxLength !== undefined : checkBoolean(o['truncation'], 'truncation');
    const padding = o['padding'] ?? false;
    if (padding !== false && padding !== 'max_length' && padding !== 'longest') invalidArgument('padding', "'max_length', 'longest' or false", describe(padding));
    if (truncation && maxLength === undefined) invalidArgument('maxLength', 'a length when truncation is on (the tokenizer has no model_max_length)', 'undefined');
    if (padding === 'max_length' && maxLength === undefined) invalidArgument('maxLength', "a length when padding is 'max_length'", 'undefined');
    if (padding !== false && this.padTokenId === undefined)
      throw new InvalidArgumentError('padding: the tokenizer has no padding token', { argument: 'padding', hint: 'pass { padToken } when creating the Tokenizer (e.g. the end-of-text token)' });
    return { add, maxLength, truncate: truncation, padding };
  }

  #encodeOne(text: unknown, pair: unknown, r: Resolved): Encoding {
    if (typeof text !== 'string') invalidArgument('text', 'a string', describe(text));
    if (pair !== undefined && typeof pair !== 'string') invalidArgument('pair', 'a string', describe(pair));
    let a = this.#pieces(text);
    let b = pair === undefined ? null : this.#pieces(pair);
    if (r.truncate && r.maxLength !== undefined) {
      const special = r.add ? (b === null ? this.#specialSingle : this.#specialPair) : 0;
      const budget = r.maxLength - special;
      if (budget < 0) invalidArgument('maxLength', `at least ${special} (the special tokens alone)`, String(r.maxLength));
      if (b === null) a = a.slice(0, budget);
      else {
        const [n1, n2] = longestFirstLengths(a.length, b.length, budget, r.maxLength);
        a = a.slice(0, n1);
        b = b.slice(0, n2);
      }
    }
    let tokens: string[];
    let types: number[];
    if (this.#post) {
      let out: PostProcessed;
      try {
        out = this.#post(a, b, r.add);
      } catch (e) {
        throw new FormatError(this.path, `the post-processor failed (${e instanceof Error ? e.message : String(e)})`, { cause: e });
      }
      tokens = out.tokens;
      types = out.token_type_ids ?? [...new Array<number>(a.length).fill(0), ...new Array<number>(tokens.length - a.length).fill(1)];
      if (out.tokens_pair) {
        tokens = [...tokens, ...out.tokens_pair];
        types = [...new Array<number>(out.tokens.length).fill(0), ...new Array<number>(out.tokens_pair.length).fill(1)];
      }
    } else {
      tokens = b === null ? a : [...a, ...b];
      types = [...new Array<number>(a.length).fill(0), ...new Array<number>(tokens.length - a.length).fill(1)];
    }
    if (this.#robertaTypes) types = types.map(() => 0);
    const ids = tokens.map((t, i) => {
      const known = this.#tk.token_to_id(t);
      if (known !== undefined) return known;
      if (this.#unkId === undefined) throw new FormatError(this.path, `token ${JSON.stringify(t)} has no id and the model has no unknown token`);
      tokens[i] = this.#unkToken ?? t;
      return this.#unkId;
    });
    return { ids, tokenTypeIds: types, attentionMask: new Array<number>(ids.length).fill(1), tokens };
  }

  #pad(e: Encoding, length: number): Encoding {
    const n = length - e.ids.length;
    if (n <= 0) return e;
    const id = this.padTokenId!;
    return {
      ids: [...e.ids, ...new Array<number>(n).fill(id)],
      tokenTypeIds: [...e.tokenTypeIds, ...new Array<number>(n).fill(0)],
      attentionMask: [...e.attentionMask, ...new Array<number>(n).fill(0)],
      tokens: [...e.tokens, ...new Array<string>(n).fill(this.padToken!)],
    };
  }

  /** Token ids, type ids and attention mask of one text (or a pair, with `pair`). */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const o = checkOptions(options);
    const r = this.#resolve(o);
    const e = this.#encodeOne(text, o['pair'], r);
    return r.padding === 'max_length' ? this.#pad(e, r.maxLength!) : e;
  }

  /** Encodes texts (or [text, pair] tuples) with the same options; 'longest' pads to the longest in the batch. */
  encodeBatch(inputs: readonly (string | readonly [string, string])[], options: Omit<EncodeOptions, 'pair'> = {}): BatchEncoding {
    if (!Array.isArray(inputs)) invalidArgument('inputs', 'an array of texts or [text, pair] tuples', describe(inputs));
    const o = checkOptions(options);
    if (o['pair'] !== undefined) invalidArgument('pair', 'no pair option in a batch (give [text, pair] tuples)', describe(o['pair']));
    const r = this.#resolve(o);
    const encs = inputs.map((x, i) => {
      if (Array.isArray(x)) {
        if (x.length !== 2) invalidArgument(`inputs[${i}]`, 'a text or a [text, pair] tuple', describe(x));
        return this.#encodeOne(x[0], x[1], r);
      }
      return this.#encodeOne(x, undefined, r);
    });
    const length = r.padding === 'max_length' ? r.maxLength! : r.padding === 'longest' ? encs.reduce((m, e) => Math.max(m, e.ids.length), 0) : 0;
    const padded = r.padding === false ? encs : encs.map((e) => this.#pad(e, length));
    return {
      ids: padded.map((e) => e.ids),
      tokenTypeIds: padded.map((e) => e.tokenTypeIds),
      attentionMask: padded.map((e) => e.attentionMask),
      tokens: padded.map((e) => e.tokens),
    };
  }

  /** Text of token ids, through the tokenizer's decoder. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (!Array.isArray(ids)) invalidArgument('ids', 'an array of token ids', describe(ids));
    const o = checkOptions(options);
    const skip = o['skipSpecialTokens'] === undefined ? true : checkBoolean(o['skipSpecialTokens'], 'skipSpecialTokens');
    ids.forEach((id, i) => checkInteger(id, `ids[${i}]`, 0, this.vocabSize - 1));
    const kept = skip ? ids.filter((id) => !this.#special.has(id)) : ids;
    if (kept.length === 0) return '';
    return this.#tk.decode([...kept], { skip_special_tokens: false });
  }
}
