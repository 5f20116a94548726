/** A Hugging Face model folder in one call: config.json, safetensors weights, tokenizer. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { describe, invalidArgument } from '../errors.js';
import { loadModelConfig, type ModelConfig } from './config.js';
import { CanonicalWeights } from './names.js';
import { openSafetensors } from './safetensors.js';
import { Tokenizer, type TokenizerOptions } from './tokenizer.js';

export interface PretrainedFolder {
  readonly path: string;
  readonly config: ModelConfig;
  /** The weights under canonical names (prefixed, legacy names fixed, tied head aliased), read lazily. */
  readonly weights: CanonicalWeights;
  /** The tokenizer, when the folder has a tokenizer.json. */
  readonly tokenizer: Tokenizer | undefined;
}

/**
 * Opens a model folder: `config.json`, `model.safetensors` or `model.safetensors.index.json`,
 * and `tokenizer.json` (+ `tokenizer_config.json`) when present. Only headers are read here.
 */
export function openPretrained(dir: string, options: { tokenizer?: TokenizerOptions } = {}): PretrainedFolder {
  if (typeof dir !== 'string') invalidArgument('dir', 'a model folder', describe(dir));
  const config = loadModelConfig(join(dir, 'config.json'));
  const source = openSafetensors(dir);
  const weights = new CanonicalWeights(source, config, dir);
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? Tokenizer.fromFile(dir, options.tokenizer ?? {}) : undefined;
  return Object.freeze({ path: dir, config, weights, tokenizer });
}
