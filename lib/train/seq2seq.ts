/**
 * Sequence-to-sequence data and training for encoder-decoder models (T5):
 * - data: a table with source and target columns (`source`/`target` unless mapped with
 *   --text-column / --label-column), or a GLUE task cast as text-to-text the way T5 was trained
 *   (`sst2 sentence: …` → `positive`, `mrpc sentence1: … sentence2: …` → `equivalent`, …);
 * - the task: teacher-forced cross-entropy on the targets (padding ignored), and an evaluation by
 *   the dev loss and the exact match of the greedily generated text with the target.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

import { NotFiniteError } from '../errors.js';
import { greedySeq2Seq } from '../models/t5-generate.js';
import type { Seq2SeqBatch, T5Model } from '../models/t5.js';
import type { Tensor } from '../tensor/tensor.js';
import type { DeviceValue } from '../tensor/device-value.js';
import { DataError, glueTask, readTable, shuffledIndices, type TaskSpec } from './data.js';
import { type DataOptions, findSplit, formatOf, holdOut, resolveData } from './datasets.js';
import type { TextCodec } from './text.js';
import { gradsOf, lossAndBackwardOf, lossOf, lossValueOf } from './tasks.js';
import type { MicroBatchLoss, TrainerState, TrainerTask } from './trainer.js';

export interface Seq2SeqExample {
  source: string;
  target: string;
}

export interface Seq2SeqData {
  kind: 'seq2seq';
  spec: TaskSpec;
  train: Seq2SeqExample[];
  dev: Seq2SeqExample[];
  source: string;
}

/** T5's text-to-text form of the GLUE tasks: prefix, field names, label words. */
const GLUE_TEXT: Record<string, { prefix: string; fields: [string] | [string, string]; labels: string[] | null }> = {
  'SST-2': { prefix: 'sst2', fields: ['sentence'], labels: ['negative', 'positive'] },
  MRPC: { prefix: 'mrpc', fields: ['sentence1', 'sentence2'], labels: ['not_equivalent', 'equivalent'] },
  RTE: { prefix: 'rte', fields: ['sentence1', 'sentence2'], labels: ['entailment', 'not_entailment'] },
  CoLA: { prefix: 'cola', fields: ['sentence'], labels: ['unacceptable', 'acceptable'] },
  'STS-B': { prefix: 'stsb', fields: ['sentence1', 'sentence2'], labels: null },
};

/** A GLUE example as T5 reads it; STS-B scores become their value rounded to 0.2 ("3.8"). */
export function glueAsText(task: string, text: string, pair: string | undefined, label: number): Seq2SeqExample {
  const g = GLUE_TEXT[task];
  if (!g) throw new DataError(`GLUE task ${task} has no text-to-text form (known: ${Object.keys(GLUE_TEXT).join(', ')})`);
  const source = g.fields.length === 1 ? `${g.prefix} ${g.fields[0]}: ${text}` : `${g.prefix} ${g.fields[0]}: ${text} ${g.fields[1]}: ${pair ?? ''}`;
  const target = g.labels ? g.labels[label]! : (Math.round(label * 5) / 5).toFixed(1);
  return { source, target };
}

function tableExamples(file: string, src: string, tgt: string): Seq2SeqExample[] {
  const rows = readTable(file, { format: formatOf(file) });
  if (rows.length === 0) throw new DataError(`${file}: no examples`);
  return rows.map((r, i) => {
    const s = r[src];
    const t = r[tgt];
    if (s === undefined || t === undefined)
      throw new DataError(`${file}: row ${i + 1} has no column ${JSON.stringify(s === undefined ? src : tgt)} (columns: ${Object.keys(r).join(', ')})`, {
        hint: 'name the source and target columns with --text-column and --label-column',
      });
    return { source: s, target: t.trim() };
  });
}

/**
 * `--data` for a sequence-to-sequence model: a GLUE task folder (as text-to-text), or a table
 * (file or folder with train/dev tables) with source and target columns.
 */
export function resolveSeq2SeqData(path: string, o: DataOptions = {}): Seq2SeqData {
  if (!existsSync(path)) throw new DataError(`${path}: no such file or folder`, { argument: 'data' });
  const seed = o.seed ?? 0;
  const frac = o.devFraction ?? 0.1;
  const dir = statSync(path).isDirectory();
  const glue = dir ? glueTask(path) : undefined;
  const mapped = o.textColumn !== undefined || o.labelColumn !== undefined;
  if (glue && !mapped && !existsSync(join(path, 'task.json'))) {
    const r = resolveData(path, o);
    if (r.kind !== 'classification' && r.kind !== 'regression') throw new DataError(`${path}: expected a GLUE table`);
    const conv = (e: { text: string; textPair?: string; label: number }) => glueAsText(r.spec.name, e.text, e.textPair, e.label);
    return { kind: 'seq2seq', spec: { ...r.spec, metrics: [] }, train: r.train.map(conv), dev: r.dev.map(conv), source: path };
  }
  const src = o.textColumn ?? 'source';
  const tgt = o.labelColumn ?? 'target';
  const trainFile = dir ? findSplit(path, ['train'], ['.tsv', '.csv', '.jsonl']) : path;
  if (!trainFile) throw new DataError(`${path}: no train.tsv, train.csv or train.jsonl`, { hint: 'point --data at a table with source and target columns, or a GLUE task folder' });
  const devFile = o.dev ?? (dir ? findSplit(path, ['dev', 'validation', 'valid', 'test'], ['.tsv', '.csv', '.jsonl']) : undefined);
  const train = tableExamples(trainFile, src, tgt);
  const split = devFile ? { train, dev: tableExamples(devFile, src, tgt) } : holdOut(train, frac, seed, trainFile);
  const spec: TaskSpec = { name: basename(path).replace(/\.[^.]+$/, ''), columns: { text: src, label: tgt }, numLabels: 0, kind: 'classification', metrics: [] };
  return { kind: 'seq2seq', spec, ...split, source: path };
}

export interface Seq2SeqTaskOptions {
  batchSize: number;
  evalBatchSize?: number;
  /** Longest source, in tokens (</s> included). */
  maxLength: number;
  /** Longest target, in tokens (default 32). */
  maxTargetLength?: number;
}

interface Encoded {
  src: number[];
  tgt: number[];
  target: string;
}

export interface Seq2SeqTaskBatch {
  batch: Seq2SeqBatch;
  size: number;
}

/** Teacher-forced training on source → target pairs; dev loss and exact match of greedy generations. */
export class Seq2SeqTask implements TrainerTask<Seq2SeqTaskBatch> {
  readonly #train: Encoded[];
  readonly #dev: Encoded[];
  readonly batchesPerEpoch: number;
  readonly evalBatchSize: number;
  readonly maxTargetLength: number;
  save?: (dir: string, state: TrainerState) => void;

  constructor(
    readonly model: T5Model,
    readonly codec: TextCodec,
    train: readonly Seq2SeqExample[],
    dev: readonly Seq2SeqExample[],
    readonly o: Seq2SeqTaskOptions,
  ) {
    this.maxTargetLength = o.maxTargetLength ?? 32;
    const enc = (e: Seq2SeqExample): Encoded => ({
      src: codec.encodeExample(e.source, undefined, o.maxLength).ids,
      tgt: codec.encodeExample(e.target, undefined, this.maxTargetLength).ids,
      target: e.target.trim(),
    });
    this.#train = train.map(enc);
    this.#dev = dev.map(enc);
    if (this.#dev.length === 0) throw new DataError('seq2seq training needs at least one dev example');
    this.batchesPerEpoch = Math.ceil(this.#train.length / o.batchSize);
    this.evalBatchSize = o.evalBatchSize ?? Math.max(o.batchSize, 32);
  }

  #collate(rows: readonly Encoded[]): Seq2SeqBatch {
    const B = rows.length;
    const Ts = rows.reduce((m, r) => Math.max(m, r.src.length), 1);
    const Tt = rows.reduce((m, r) => Math.max(m, r.tgt.length), 1);
    const inputIds = new Int32Array(B * Ts).fill(this.codec.padId);
    const mask = new Float32Array(B * Ts);
    const labels = new Int32Array(B * Tt).fill(-100);
    rows.forEach((r, b) => {
      r.src.forEach((id, t) => {
        inputIds[b * Ts + t] = id;
        mask[b * Ts + t] = 1;
      });
      r.tgt.forEach((id, t) => (labels[b * Tt + t] = id));
    });
    return { inputIds, shape: [B, Ts], attentionMask: mask, labels };
  }

  *batches(_epoch: number, seed: number): Iterable<Seq2SeqTaskBatch> {
    const order = shuffledIndices(this.#train.length, seed);
    for (let s = 0; s < order.length; s += this.o.batchSize) {
      const rows = Array.from(order.subarray(s, s + this.o.batchSize), (i) => this.#train[i]!);
      yield { batch: this.#collate(rows), size: rows.length };
    }
  }

  lossAndBackward(b: Seq2SeqTaskBatch): MicroBatchLoss {
    return lossAndBackwardOf(this.model, b.batch, b.size);
  }

  loss(b: Seq2SeqTaskBatch): number {
    return lossOf(this.model, b.batch);
  }
  lossValue(b: Seq2SeqTaskBatch): number | DeviceValue {
    return lossValueOf(this.model, b.batch);
  }

  zeroGrad(): void {
    this.model.zeroGrad();
  }

  grads(): Tensor[] {
    return gradsOf(this.model);
  }

  /** The text of generated ids: up to the first eos, padding dropped. */
  #text(ids: Int32Array): string {
    const c = this.model.config;
    const out: number[] = [];
    for (const id of ids) {
      if (id === c.eosTokenId) break;
      if (id !== c.padTokenId) out.push(id);
    }
    return this.codec.decode(out).trim();
  }

  /** Dev loss (teacher forcing) and exact match of the greedy generations, in eval mode. */
  evaluate(): { loss: number; metrics: Record<string, number> } {
    const was = this.model.training;
    this.model.eval();
    try {
      let lossSum = 0;
      let hits = 0;
      for (let s = 0; s < this.#dev.length; s += this.evalBatchSize) {
        const rows = this.#dev.slice(s, s + this.evalBatchSize);
        const batch = this.#collate(rows);
        lossSum += this.model.forward(batch).loss! * rows.length;
        const gen = greedySeq2Seq(this.model, batch.inputIds, batch.shape, batch.attentionMask ?? null, { maxNewTokens: this.maxTargetLength });
        rows.forEach((r, i) => (hits += this.#text(gen[i]!) === r.target ? 1 : 0));
      }
      return { loss: lossSum / this.#dev.length, metrics: { exact_match: hits / this.#dev.length } };
    } catch (e) {
      if (e instanceof NotFiniteError) return { loss: NaN, metrics: { exact_match: NaN } };
      throw e;
    } finally {
      this.model.train(was);
    }
  }
}
