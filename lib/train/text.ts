/**
 * One view of the two tokenizer kinds a model can come with: a Hugging Face tokenizer.json
 * (through `Tokenizer`) or a llama2.c tokenizer.bin. Classification encodes a text (or a pair)
 * with the model's special tokens; causal-LM data encodes documents as BOS + text (+ EOS).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { FileError } from '../errors.js';
import { Llama2cTokenizer } from '../io/llama2c.js';
import { Tokenizer } from '../io/tokenizer.js';

export interface TextCodec {
  /** Where it was read from. */
  readonly source: string;
  readonly vocabSize: number;
  /** Id used to pad batches (masked out, so any valid id works when the tokenizer has none). */
  readonly padId: number;
  /** Ids of a classification input: special tokens included, cut to `maxLength`. */
  encodeExample(text: string, pair: string | undefined, maxLength: number): { ids: number[]; typeIds: number[] };
  /** Ids of one document for language modelling (BOS first when the tokenizer has one). */
  encodeDocument(text: string): number[];
  decode(ids: readonly number[]): string;
}

class HfCodec implements TextCodec {
  readonly source: string;
  readonly vocabSize: number;
  readonly padId: number;
  constructor(readonly tk: Tokenizer) {
    this.source = tk.path;
    this.vocabSize = tk.vocabSize;
    this.padId = tk.padTokenId ?? 0;
  }
  encodeExample(text: string, pair: string | undefined, maxLength: number) {
    const e = this.tk.encode(text, { ...(pair === undefined ? {} : { pair }), maxLength, truncation: true });
    return { ids: e.ids, typeIds: e.tokenTypeIds };
  }
  encodeDocument(text: string): number[] {
    return this.tk.encode(text, { truncation: false }).ids;
  }
  decode(ids: readonly number[]): string {
    return this.tk.decode(ids);
  }
}

class Llama2cCodec implements TextCodec {
  readonly source: string;
  readonly vocabSize: number;
  readonly padId = 0;
  constructor(readonly tk: Llama2cTokenizer) {
    this.source = tk.path;
    this.vocabSize = tk.vocabSize;
  }
  encodeExample(text: string, pair: string | undefined, maxLength: number) {
    let ids = this.tk.encode(pair === undefined ? text : `${text}\n${pair}`, { bos: true });
    if (ids.length > maxLength) ids = ids.slice(0, maxLength);
    return { ids, typeIds: new Array<number>(ids.length).fill(0) };
  }
  encodeDocument(text: string): number[] {
    return this.tk.encode(text, { bos: true });
  }
  decode(ids: readonly number[]): string {
    return this.tk.decode(ids.filter((id) => id > 2));
  }
}

/**
 * The tokenizer for a model: `tokenizer` when given (a tokenizer.json, a folder holding one, or a
 * llama2.c tokenizer .bin), else the model folder's tokenizer.json, else — for a llama2.c
 * checkpoint — a `tok*.bin` / `tokenizer.bin` next to it.
 */
export function openTextCodec(modelPath: string, tokenizer?: string, vocabSize?: number): TextCodec {
  const open = (p: string): TextCodec => (p.endsWith('.bin') ? new Llama2cCodec(Llama2cTokenizer.open(p, vocabSize)) : new HfCodec(Tokenizer.fromFile(p)));
  if (tokenizer !== undefined) {
    if (!existsSync(tokenizer)) throw new FileError(tokenizer, 'no such tokenizer file or folder');
    return open(tokenizer);
  }
  const isDir = existsSync(modelPath) && statSync(modelPath).isDirectory();
  if (isDir) {
    if (existsSync(join(modelPath, 'tokenizer.json'))) return open(modelPath);
    throw new FileError(modelPath, 'the model folder has no tokenizer.json', { hint: 'pass --tokenizer <tokenizer.json | tokenizer.bin>' });
  }
  const dir = dirname(modelPath);
  const candidates = readdirSync(dir)
    .filter((f) => f === 'tokenizer.bin' || /^tok\d+\.bin$/.test(f))
    .sort();
  if (candidates.length === 1) return open(join(dir, candidates[0]!));
  throw new FileError(modelPath, candidates.length === 0 ? 'no tokenizer.bin or tok*.bin next to the checkpoint' : `several tokenizers next to the checkpoint (${candidates.join(', ')})`, {
    hint: 'pass --tokenizer <tokenizer.bin>',
  });
}
