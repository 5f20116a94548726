/**
 * Autoregressive generation with a KV cache: the prompt runs through the model once, then each
 * new token is one single-position step that attends to the cached keys and values (the prefix
 * is never recomputed). Greedy (argmax, the lowest id on ties) or sampling with temperature,
 * top-k and nucleus (top-p) from a seeded generator, so a seed reproduces a sample. The sampler
 * (makeSampler) is shared with T5's decoding (t5-generate.ts).
 */
import { describe, invalidArgument } from '../errors.js';
import { checkFinite, checkInteger } from '../util/validate.js';
import { hostArray, type TransformerModel } from './base.js';
import { mulberry32 } from '../util/random.js';

/** How the next token is chosen from a row of logits. */
export interface SamplingOptions {
  /** Argmax decoding (default true unless a temperature above 0 is given). */
  greedy?: boolean;
  /** Softmax temperature for sampling (> 0). */
  temperature?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP (default 1). */
  topP?: number;
  /** Keep only the topK likeliest tokens before top-p (default: all), as transformers orders them. */
  topK?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate after the prompt. */
  maxNewTokens: number;
  /** Stop after generating any of these ids (it is included in the output). */
  stopTokens?: readonly number[];
  /** Called with each new id as soon as it is chosen (for streaming). */
  onToken?: (id: number) => void;
}

function argmax(row: Float32Array, off: number, V: number): number {
  let best = 0;
  let bv = row[off]!;
  for (let i = 1; i < V; i++) {
    const v = row[off + i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

function sample(row: Float32Array, off: number, V: number, temperature: number, topP: number, topK: number, rand: () => number): number {
  let mx = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, row[off + i]!);
  const p = new Float64Array(V);
  let s = 0;
  for (let i = 0; i < V; i++) s += p[i] = Math.exp((row[off + i]! - mx) / temperature);
  for (let i = 0; i < V; i++) p[i]! /= s;
  const r = rand();
  if (topP >= 1 && topK >= V) {
    let c = 0;
    for (let i = 0; i < V; i++) {
      c += p[i]!;
      if (r < c) return i;
    }
    return V - 1;
  }
  // Likeliest first (lower id on ties); top-k cuts the list, top-p the renormalised rest.
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
  const k = Math.min(topK, V);
  let kept = 0;
  for (let j = 0; j < k; j++) kept += p[order[j]!]!;
  let mass = 0;
  let n = 0;
  while (n < k && mass < topP * kept) mass += p[order[n++]!]!;
  let c = 0;
  for (let j = 0; j < n; j++) {
    c += p[order[j]!]! / mass;
    if (r < c) return order[j]!;
  }
  return order[n - 1]!;
}

/** A validated token chooser: argmax, or a seeded sample with temperature, top-k and top-p. */
export interface Sampler {
  readonly greedy: boolean;
  /** The id chosen from logits row[off … off + V). */
  pick(row: Float32Array, off: number, V: number): number;
}

/** Checks the sampling options (typed errors naming the option) and returns the chooser. */
export function makeSampler(options: SamplingOptions): Sampler {
  const temperature = options.temperature === undefined ? 0 : checkFinite(options.temperature, 'temperature');
  if (temperature < 0) invalidArgument('temperature', 'a number ≥ 0', describe(temperature));
  if (options.greedy !== undefined && typeof options.greedy !== 'boolean') invalidArgument('greedy', 'a boolean', describe(options.greedy));
  const greedy = options.greedy ?? temperature === 0;
  if (!greedy && !(temperature > 0)) invalidArgument('temperature', 'a number above 0 for sampling (or greedy: true)', describe(options.temperature));
  const topP = options.topP === undefined ? 1 : checkFinite(options.topP, 'topP');
  if (!(topP > 0 && topP <= 1)) invalidArgument('topP', 'a number in (0, 1]', describe(topP));
  const topK = options.topK === undefined ? Infinity : checkInteger(options.topK, 'topK', 1, 2 ** 31 - 1);
  const rand = mulberry32(options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0, 2 ** 32 - 1));
  return { greedy, pick: (row, off, V) => (greedy ? argmax(row, off, V) : sample(row, off, V, temperature, topP, topK, rand)) };
}

/**
 * Virtual tokens a model's first cached forward puts in front of the prompt (prompt tuning on a
 * decoder defines `virtualTokens` on the model); 0 for any other model. A prefix (prefix tuning)
 * is already in the cache that createCache returns: its KVCache.length.
 */
export function virtualTokens(model: object): number {
  const v = (model as { virtualTokens?: unknown }).virtualTokens;
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : 0;
}

/**
 * Continues `promptIds` (one sequence) by up to maxNewTokens tokens and returns the new ids.
 * The model runs in eval mode (dropout off) and is restored afterwards. The prompt, the new
 * tokens and an adapter's virtual tokens or prefix must fit the model's positions: checked before
 * the first token is chosen (an InvalidArgumentError naming maxNewTokens, or promptIds).
 */
export function generate(model: TransformerModel, promptIds: Int32Array | readonly number[], options: GenerateOptions): Int32Array {
  if (options === null || typeof options !== 'object') invalidArgument('options', 'an object with maxNewTokens', describe(options));
  const maxNew = checkInteger(options.maxNewTokens, 'maxNewTokens', 0, 2 ** 24);
  const prompt = promptIds instanceof Int32Array ? promptIds : Array.isArray(promptIds) ? Int32Array.from(promptIds as number[]) : invalidArgument('promptIds', 'an Int32Array or an array of ids', describe(promptIds));
  if (prompt.length === 0) invalidArgument('promptIds', 'at least one token', 'an empty prompt');
  const sampler = makeSampler(options);
  const stop = new Set(options.stopTokens ?? []);
  const out = new Int32Array(maxNew);
  if (maxNew === 0) return out;

  const wasTraining = model.training;
  model.eval();
  const cache = model.createCache(1, prompt.length + maxNew);
  // Positions already taken (a prefix in the cache) or that the first step adds (virtual tokens).
  const taken = cache.length + virtualTokens(model);
  if (taken + prompt.length + maxNew > cache.maxT) {
    cache.dispose();
    model.train(wasTraining);
    const room = cache.maxT - taken;
    const of = `the model has ${cache.maxT} positions${taken ? `, ${taken} of them taken by the adapter's virtual tokens` : ''}`;
    if (prompt.length >= room) invalidArgument('promptIds', `fewer than ${room} tokens (${of})`, `${prompt.length} tokens`);
    invalidArgument('maxNewTokens', `at most ${room - prompt.length} for this ${prompt.length}-token prompt (${of})`, `${maxNew}`);
  }
  try {
    let logits = model.forwardCached(prompt, 1, prompt.length, cache);
    let n = 0;
    for (;;) {
      const V = logits.shape[logits.rank - 1]!;
      const row = hostArray(logits); // one download per token on a device
      const off = row.length - V;
      const next = sampler.pick(row, off, V);
      out[n++] = next;
      options.onToken?.(next);
      if (n === maxNew || stop.has(next)) break;
      logits = model.forwardCached(Int32Array.of(next), 1, 1, cache);
    }
    return out.slice(0, n);
  } finally {
    cache.dispose();
    model.train(wasTraining);
  }
}
