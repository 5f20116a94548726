/**
 * Weight-name normalisation.
 *
 * The same weights appear under different names: with the base-model prefix of a task model
 * (`bert.encoder…`, `model.layers…`, `transformer.h…`) or without it (a bare BertModel, GPT-2's
 * Hub checkpoint: `encoder…`, `layers…`, `h…`), and old BERT checkpoints call LayerNorm
 * parameters `gamma`/`beta`. The canonical name used by the library is the prefixed one of the
 * task model (also the form PEFT adapters refer to). Tied output projections that a checkpoint
 * leaves out are served from the token embedding. Only names change, never layouts: GPT-2's
 * Conv1D weights stay [in, out] (the transpose of nn.Linear's [out, in]).
 */
import { FormatError, invalidArgument } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelConfig, ModelFamily } from './config.js';
import type { TensorInfo, TensorSource } from './safetensors.js';

/** The base-model prefix of each family inside its task models. */
export const BASE_MODEL_PREFIX: Readonly<Record<ModelFamily, string>> = Object.freeze({
  bert: 'bert.',
  roberta: 'roberta.',
  distilbert: 'distilbert.',
  llama: 'model.',
  mistral: 'model.',
  qwen2: 'model.',
  gpt2: 'transformer.',
});

/** First components of base-model weights as a bare base model names them. */
const BASE_ROOTS: Readonly<Record<ModelFamily, readonly string[]>> = {
  bert: ['embeddings', 'encoder', 'pooler'],
  roberta: ['embeddings', 'encoder', 'pooler'],
  distilbert: ['embeddings', 'transformer'],
  llama: ['embed_tokens', 'layers', 'norm', 'rotary_emb'],
  mistral: ['embed_tokens', 'layers', 'norm', 'rotary_emb'],
  qwen2: ['embed_tokens', 'layers', 'norm', 'rotary_emb'],
  gpt2: ['wte', 'wpe', 'h', 'ln_f'],
};

/** [output projection, token embedding] of each family, in canonical names. */
const TIED: Readonly<Record<ModelFamily, readonly [string, string]>> = {
  bert: ['cls.predictions.decoder.weight', 'bert.embeddings.word_embeddings.weight'],
  roberta: ['lm_head.decoder.weight', 'roberta.embeddings.word_embeddings.weight'],
  distilbert: ['vocab_projector.weight', 'distilbert.embeddings.word_embeddings.weight'],
  llama: ['lm_head.weight', 'model.embed_tokens.weight'],
  mistral: ['lm_head.weight', 'model.embed_tokens.weight'],
  qwen2: ['lm_head.weight', 'model.embed_tokens.weight'],
  gpt2: ['lm_head.weight', 'transformer.wte.weight'],
};

function checkFamily(family: unknown): ModelFamily {
  if (typeof family !== 'string' || !Object.hasOwn(BASE_MODEL_PREFIX, family)) invalidArgument('family', `one of ${Object.keys(BASE_MODEL_PREFIX).join(', ')}`, String(family));
  return family as ModelFamily;
}

/** `LayerNorm.gamma` → `LayerNorm.weight`, `LayerNorm.beta` → `LayerNorm.bias` (old BERT checkpoints). */
export function fixLegacyName(name: string): string {
  if (name.endsWith('.gamma')) return `${name.slice(0, -6)}.weight`;
  if (name.endsWith('.beta')) return `${name.slice(0, -5)}.bias`;
  return name;
}

/** The canonical (prefixed, modern) name of a weight of `family`. Head weights are left as they are. */
export function canonicalWeightName(name: string, family: ModelFamily): string {
  if (typeof name !== 'string') invalidArgument('name', 'a string', typeof name);
  const fam = checkFamily(family);
  const n = fixLegacyName(name);
  const prefix = BASE_MODEL_PREFIX[fam];
  if (n.startsWith(prefix)) return n;
  const root = n.split('.', 1)[0]!;
  return BASE_ROOTS[fam].includes(root) ? prefix + n : n;
}

/** The name a bare base model uses (the prefix removed); null for weights outside the base model (heads). */
export function baseModelWeightName(name: string, family: ModelFamily): string | null {
  const fam = checkFamily(family);
  const c = canonicalWeightName(name, fam);
  const prefix = BASE_MODEL_PREFIX[fam];
  return c.startsWith(prefix) ? c.slice(prefix.length) : null;
}

/** [output projection, token embedding] canonical names of the family's tied weights. */
export function tiedWeightNames(family: ModelFamily): readonly [string, string] {
  return TIED[checkFamily(family)];
}

/**
 * Maps canonical names to the names in `names`. Two names that normalise to the same canonical
 * name are a FormatError (`source` names the checkpoint). With `tieWordEmbeddings`, a missing
 * output projection maps to the token embedding.
 */
export function canonicalNameMap(names: readonly string[], family: ModelFamily, options: { tieWordEmbeddings?: boolean; source?: string } = {}): Map<string, string> {
  if (!Array.isArray(names)) invalidArgument('names', 'an array of weight names', typeof names);
  const fam = checkFamily(family);
  const out = new Map<string, string>();
  for (const n of names) {
    const c = canonicalWeightName(n, fam);
    const prev = out.get(c);
    if (prev !== undefined) throw new FormatError(options.source ?? '<weights>', `weights ${JSON.stringify(prev)} and ${JSON.stringify(n)} are both ${JSON.stringify(c)}`);
    out.set(c, n);
  }
  if (options.tieWordEmbeddings) {
    const [head, emb] = TIED[fam];
    const e = out.get(emb);
    if (!out.has(head) && e !== undefined) out.set(head, e);
  }
  return out;
}

/** A TensorSource whose names are canonical (see canonicalNameMap); reads go to the underlying source. */
export class CanonicalWeights implements TensorSource {
  readonly source: TensorSource;
  readonly family: ModelFamily;
  readonly #map: Map<string, string>;

  constructor(source: TensorSource, config: Pick<ModelConfig, 'family' | 'tieWordEmbeddings'>, sourceName = '<weights>') {
    this.source = source;
    this.family = checkFamily(config.family);
    this.#map = canonicalNameMap(source.names, this.family, { tieWordEmbeddings: config.tieWordEmbeddings, source: sourceName });
  }

  get names(): readonly string[] {
    return [...this.#map.keys()];
  }
  has(name: string): boolean {
    return this.#map.has(name);
  }
  #original(name: string): string {
    const o = this.#map.get(name);
    if (o === undefined) invalidArgument('name', `one of the ${this.#map.size} canonical weight names`, JSON.stringify(name));
    return o;
  }
  /** The name the underlying checkpoint stores `name` under. */
  originalName(name: string): string {
    return this.#original(name);
  }
  info(name: string): TensorInfo {
    return this.source.info(this.#original(name));
  }
  readFloat32(name: string): Float32Array {
    return this.source.readFloat32(this.#original(name));
  }
  tensor(name: string): Tensor {
    return this.source.tensor(this.#original(name));
  }
}
