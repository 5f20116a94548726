/**
 * What `--data` points at, resolved into train and dev splits:
 * - a GLUE task folder (SST-2, MRPC, RTE, CoLA, STS-B) — no mapping needed;
 * - a folder with `task.json` ({ name, numLabels, kind?, labels?, metrics?, columns? }) and
 *   train/dev tables (.tsv, .csv or .jsonl);
 * - a table file, with `--dev <file>` or a held-out fraction;
 * - plain text (a .txt file, or a folder with train.txt and dev.txt / valid.txt): causal-LM data.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';

import { ConfigError } from '../errors.js';
import { DataError, type Example, glueTask, readPlainText, readTable, shuffledIndices, type TableFormat, type TaskSpec, toExamples } from './data.js';
import { METRICS, type MetricName } from './metrics.js';
import type { Seq2SeqData } from './seq2seq.js';

export interface DataOptions {
  /** Separate dev file (tables or text). */
  dev?: string;
  /** Column of the text, the second text and the label (default: 'sentence'/'text', none, 'label'). */
  textColumn?: string;
  textPairColumn?: string;
  labelColumn?: string;
  /** Fraction held out for dev when there is no dev split (default 0.1). */
  devFraction?: number;
  /** Seed of that hold-out split. */
  seed?: number;
}

export type ResolvedData =
  | { kind: 'classification' | 'regression'; spec: TaskSpec; train: Example[]; dev: Example[]; source: string }
  | { kind: 'causal-lm'; spec: TaskSpec; train: string[]; dev: string[]; source: string }
  | Seq2SeqData;

const TABLES = ['.tsv', '.csv', '.jsonl'];

export function formatOf(file: string): TableFormat {
  const e = extname(file).toLowerCase();
  if (e === '.tsv') return 'tsv';
  if (e === '.csv') return 'csv';
  if (e === '.jsonl') return 'jsonl';
  throw new DataError(`${file}: unknown data format ${JSON.stringify(e)} (expected .tsv, .csv, .jsonl or .txt)`);
}

export function findSplit(dir: string, names: readonly string[], exts: readonly string[]): string | undefined {
  for (const n of names) for (const e of exts) if (existsSync(join(dir, n + e))) return join(dir, n + e);
  return undefined;
}

export function holdOut<T>(items: readonly T[], fraction: number, seed: number, source: string): { train: T[]; dev: T[] } {
  if (!(fraction > 0 && fraction < 1)) throw new ConfigError(`dev fraction must be in (0, 1), got ${fraction}`);
  const nDev = Math.max(1, Math.round(items.length * fraction));
  if (items.length < 2 || nDev >= items.length) throw new DataError(`${source}: ${items.length} examples are too few to hold out a dev split`);
  const order = shuffledIndices(items.length, seed);
  const isDev = new Uint8Array(items.length);
  for (let i = 0; i < nDev; i++) isDev[order[i]!] = 1;
  return { train: items.filter((_, i) => !isDev[i]), dev: items.filter((_, i) => isDev[i]) };
}

function readTaskJson(dir: string): Partial<TaskSpec> & { labels?: string[] } {
  const file = join(dir, 'task.json');
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DataError(`${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j)) throw new DataError(`${file}: expected a JSON object`);
  return j as Partial<TaskSpec> & { labels?: string[] };
}

function tableSpec(name: string, o: DataOptions, fromJson: Partial<TaskSpec> & { labels?: string[] } = {}, sample?: Record<string, string>): TaskSpec {
  const pick = (...c: string[]) => c.find((k) => sample && k in sample) ?? c[0]!;
  const columns = {
    text: o.textColumn ?? fromJson.columns?.text ?? pick('sentence', 'text', 'sentence1'),
    ...(o.textPairColumn ?? fromJson.columns?.textPair ?? (sample && 'sentence2' in sample && !o.textColumn ? 'sentence2' : undefined)
      ? { textPair: (o.textPairColumn ?? fromJson.columns?.textPair ?? 'sentence2') as string | number }
      : {}),
    label: o.labelColumn ?? fromJson.columns?.label ?? 'label',
    ...(fromJson.columns?.labelMap ? { labelMap: fromJson.columns.labelMap } : {}),
  };
  const kind = fromJson.kind ?? 'classification';
  if (kind !== 'classification' && kind !== 'regression') throw new DataError(`task.json: kind must be 'classification' or 'regression', got ${JSON.stringify(kind)}`);
  const metrics = (fromJson.metrics ?? (kind === 'regression' ? ['pearson', 'spearman'] : ['accuracy'])) as MetricName[];
  for (const m of metrics) if (!(m in METRICS)) throw new DataError(`task.json: unknown metric ${JSON.stringify(m)} (known: ${Object.keys(METRICS).join(', ')})`);
  return { name: fromJson.name ?? name, columns, numLabels: fromJson.numLabels ?? (kind === 'regression' ? 1 : 0), kind, metrics };
}

function finishLabels(spec: TaskSpec, train: Example[], dev: Example[], source: string): TaskSpec {
  if (spec.kind === 'regression') return spec;
  let max = -1;
  for (const e of [...train, ...dev]) {
    if (e.label < 0) throw new DataError(`${source}: class label ${e.label} is negative`);
    max = Math.max(max, e.label);
  }
  const numLabels = spec.numLabels > 0 ? spec.numLabels : Math.max(2, max + 1);
  if (max >= numLabels) throw new DataError(`${source}: class label ${max} is out of range for ${numLabels} labels`);
  return { ...spec, numLabels };
}

function readExamples(file: string, spec: TaskSpec, headerless = false): Example[] {
  const records = readTable(file, { format: formatOf(file), headerless });
  if (records.length === 0) throw new DataError(`${file}: no examples`);
  return toExamples(records, spec.columns, spec.kind, file);
}

function isText(path: string): boolean {
  if (statSync(path).isDirectory()) return !!findSplit(path, ['train'], ['.txt']);
  return extname(path).toLowerCase() === '.txt';
}

/** Resolves `--data` (and `--dev`) into splits. Throws DataError / FileError with the path on any problem. */
export function resolveData(path: string, o: DataOptions = {}): ResolvedData {
  if (!existsSync(path)) throw new DataError(`${path}: no such file or folder`, { argument: 'data' });
  const seed = o.seed ?? 0;
  const frac = o.devFraction ?? 0.1;
  if (isText(path)) {
    const dir = statSync(path).isDirectory();
    const trainFile = dir ? findSplit(path, ['train'], ['.txt'])! : path;
    const devFile = o.dev ?? (dir ? findSplit(path, ['dev', 'valid', 'validation', 'test'], ['.txt']) : undefined);
    const docs = readPlainText(trainFile);
    const split = devFile ? { train: docs, dev: readPlainText(devFile) } : holdOut(docs, frac, seed, trainFile);
    if (split.train.length === 0 || split.dev.length === 0) throw new DataError(`${path}: empty train or dev text`);
    const spec: TaskSpec = { name: basename(path).replace(/\.txt$/, ''), columns: { text: 0, label: 0 }, numLabels: 0, kind: 'classification', metrics: [] };
    return { kind: 'causal-lm', spec, ...split, source: path };
  }
  if (statSync(path).isDirectory()) {
    const glue = glueTask(path);
    const custom = existsSync(join(path, 'task.json')) ? readTaskJson(path) : undefined;
    const trainFile = findSplit(path, ['train'], TABLES);
    if (!trainFile) throw new DataError(`${path}: no train.tsv, train.csv or train.jsonl`, { hint: 'point --data at a GLUE task folder, a table file or a text file' });
    const devFile = o.dev ?? findSplit(path, ['dev', 'validation', 'valid', 'test'], TABLES);
    const mapped = o.textColumn !== undefined || o.labelColumn !== undefined || o.textPairColumn !== undefined;
    let spec: TaskSpec;
    if (glue && !custom && !mapped) spec = glue;
    else {
      const sample = readTable(trainFile, { format: formatOf(trainFile), headerless: !!glue?.headerless })[0];
      spec = tableSpec(basename(path), o, custom ?? (glue ? { ...glue } : {}), sample);
    }
    const train = readExamples(trainFile, spec, !!glue?.headerless && !custom);
    const split = devFile ? { train, dev: readExamples(devFile, spec, !!glue?.headerless && !custom) } : holdOut(train, frac, seed, trainFile);
    return { kind: spec.kind, spec: finishLabels(spec, split.train, split.dev, path), ...split, source: path };
  }
  formatOf(path);
  const sample = readTable(path, { format: formatOf(path) })[0];
  const spec = tableSpec(basename(path).replace(/\.[^.]+$/, ''), o, {}, sample);
  const all = readExamples(path, spec);
  const split = o.dev ? { train: all, dev: readExamples(o.dev, spec) } : holdOut(all, frac, seed, path);
  return { kind: spec.kind, spec: finishLabels(spec, split.train, split.dev, path), ...split, source: path };
}
