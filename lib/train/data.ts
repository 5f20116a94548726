/**
 * Text datasets: TSV, CSV and JSONL files with a column mapping, the GLUE layout (SST-2, MRPC,
 * RTE, CoLA, STS-B work with no mapping), and plain text for causal-LM data.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';

import { describe, invalidArgument, KfacError } from '../errors.js';
import type { MetricName } from './metrics.js';

/** A malformed or unreadable data file. */
export class DataError extends KfacError {
  constructor(message: string, details: { argument?: string; hint?: string } = {}) {
    super('ERR_DATA', message, details);
  }
}

export interface Example {
  text: string;
  textPair?: string;
  /** Class index (classification) or target value (regression). */
  label: number;
}

export interface ColumnMapping {
  text: string | number;
  textPair?: string | number;
  label: string | number;
  /** Label strings to class indices (default: numeric labels as they are). */
  labelMap?: Record<string, number>;
}

export interface TaskSpec {
  name: string;
  columns: ColumnMapping;
  /** Files without a header row (CoLA). */
  headerless?: boolean;
  numLabels: number;
  /** 'classification' or 'regression'. */
  kind: 'classification' | 'regression';
  metrics: MetricName[];
}

/** The GLUE tasks we read with no mapping, keyed by folder name (case-insensitive). */
export const GLUE: Record<string, TaskSpec> = {
  'sst-2': { name: 'SST-2', columns: { text: 'sentence', label: 'label' }, numLabels: 2, kind: 'classification', metrics: ['accuracy'] },
  mrpc: { name: 'MRPC', columns: { text: '#1 String', textPair: '#2 String', label: 'Quality' }, numLabels: 2, kind: 'classification', metrics: ['accuracy', 'f1'] },
  rte: {
    name: 'RTE',
    columns: { text: 'sentence1', textPair: 'sentence2', label: 'label', labelMap: { entailment: 0, not_entailment: 1 } },
    numLabels: 2,
    kind: 'classification',
    metrics: ['accuracy'],
  },
  cola: { name: 'CoLA', columns: { text: 3, label: 1 }, headerless: true, numLabels: 2, kind: 'classification', metrics: ['matthews', 'accuracy'] },
  'sts-b': { name: 'STS-B', columns: { text: 'sentence1', textPair: 'sentence2', label: 'score' }, numLabels: 1, kind: 'regression', metrics: ['pearson', 'spearman'] },
};

export type TableFormat = 'tsv' | 'csv' | 'jsonl';

/** Splits CSV text (RFC 4180: quoted fields, doubled quotes, newlines inside quotes). */
export function parseCsv(text: string, file = 'csv'): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      line++;
    } else field += ch;
  }
  if (quoted) throw new DataError(`${file}: unterminated quoted field starting before line ${line}`);
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** Splits TSV text the way GLUE files are written: tabs only, quotes are ordinary characters. */
export function parseTsv(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

function stripBom(s: string): string {
  return s.charCodeAt(0) === 0xfeff ? s.slice(1) : s;
}

/** Reads a table file into records (objects keyed by header, or by column index when headerless). */
export function readTable(path: string, options: { format?: TableFormat; headerless?: boolean } = {}): Record<string, string>[] {
  if (!existsSync(path) || !statSync(path).isFile()) throw new DataError(`${path}: no such file`, { argument: 'path' });
  const ext = extname(path).toLowerCase();
  const format = options.format ?? (ext === '.csv' ? 'csv' : ext === '.jsonl' || ext === '.json' ? 'jsonl' : 'tsv');
  const text = stripBom(readFileSync(path, 'utf8'));
  if (format === 'jsonl') {
    return text
      .split(/\r?\n/)
      .map((l, i) => [l, i] as const)
      .filter(([l]) => l.trim().length)
      .map(([l, i]) => {
        let v: unknown;
        try {
          v = JSON.parse(l);
        } catch (e) {
          throw new DataError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
        }
        if (!v || typeof v !== 'object' || Array.isArray(v)) throw new DataError(`${path}:${i + 1}: expected a JSON object per line, got ${describe(v)}`);
        return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'string' ? x : JSON.stringify(x)]));
      });
  }
  const rows = format === 'csv' ? parseCsv(text, path) : parseTsv(text);
  if (options.headerless) return rows.map((r) => Object.fromEntries(r.map((v, i) => [String(i), v])));
  const [header, ...body] = rows;
  if (!header) throw new DataError(`${path}: empty file`);
  return body.map((r, i) => {
    if (r.length < header.length) throw new DataError(`${path}:${i + 2}: expected ${header.length} columns, got ${r.length}`);
    return Object.fromEntries(header.map((h, j) => [h.trim(), r[j] ?? '']));
  });
}

/** Applies a column mapping to records. */
export function toExamples(records: readonly Record<string, string>[], columns: ColumnMapping, kind: 'classification' | 'regression', source = 'data'): Example[] {
  const key = (k: string | number) => String(k);
  return records.map((r, i) => {
    const get = (col: string | number, what: string) => {
      const v = r[key(col)];
      if (v === undefined) throw new DataError(`${source}: row ${i + 1} has no column ${JSON.stringify(col)} for ${what} (columns: ${Object.keys(r).join(', ')})`, { hint: 'map the columns with --text-column/--label-column' });
      return v;
    };
    const raw = get(columns.label, 'the label').trim();
    let label: number;
    if (columns.labelMap && raw in columns.labelMap) label = columns.labelMap[raw]!;
    else {
      label = Number(raw);
      if (raw === '' || !Number.isFinite(label)) throw new DataError(`${source}: row ${i + 1}: label ${JSON.stringify(raw)} is not a number${columns.labelMap ? ' nor a mapped label' : ''}`);
      if (kind === 'classification' && !Number.isInteger(label)) throw new DataError(`${source}: row ${i + 1}: class label ${raw} is not an integer`);
    }
    const ex: Example = { text: get(columns.text, 'the text'), label };
    if (columns.textPair !== undefined) ex.textPair = get(columns.textPair, 'the second text');
    return ex;
  });
}

/** The GLUE task of a folder, by its name, or undefined. */
export function glueTask(dir: string): TaskSpec | undefined {
  return GLUE[basename(dir).toLowerCase()];
}

/** Loads `<dir>/<split>.tsv` of a GLUE task folder. */
export function loadGlue(dir: string, split: 'train' | 'dev'): { task: TaskSpec; examples: Example[] } {
  const task = glueTask(dir);
  if (!task) invalidArgument('dir', `a GLUE task folder (${Object.values(GLUE).map((t) => t.name).join(', ')})`, JSON.stringify(basename(dir)));
  const file = join(dir, `${split}.tsv`);
  const records = readTable(file, { format: 'tsv', headerless: !!task.headerless });
  return { task, examples: toExamples(records, task.columns, task.kind, file) };
}

/** Plain text split into documents at blank lines (for causal-LM data). */
export function readPlainText(path: string): string[] {
  if (!existsSync(path)) throw new DataError(`${path}: no such file`, { argument: 'path' });
  return stripBom(readFileSync(path, 'utf8'))
    .split(/\n\s*\n/)
    .map((d) => d.trim())
    .filter((d) => d.length > 0);
}

/** A deterministic permutation of [0, n) from a seed (lives in util/random). */
export { shuffledIndices } from '../util/random.js';
