/** Metrics against scipy/numpy values, and the data loaders on real GLUE files. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { DataError, loadGlue, parseCsv, readTable, shuffledIndices, toExamples } from '../../lib/train/data.js';
import { accuracy, argmaxRows, f1, matthews, pearson, perplexity, ranks, spearman } from '../../lib/train/metrics.js';
import { PACKAGE_ROOT, sharedData, sharedDataRoot, skipNote } from '../support/shared-data.js';

const GLUE_DIR = sharedData('glue');

describe('metrics', () => {
  // Expected values: scipy 1.17.1 stats.pearsonr / spearmanr, and numpy evaluations of the
  // binary MCC (tp·tn − fp·fn)/√(…) and of Gorodkin's multi-class formula.
  const x = [1.0, 2.5, 2.5, 4.0, 3.0, 7.5, 6.0, 6.0, 0.5, 9.0];
  const y = [2.0, 2.0, 3.5, 4.5, 1.0, 8.0, 6.5, 7.0, 0.0, 8.5];
  it('pearson and spearman (with ties) match scipy', () => {
    expect(pearson(x, y)).toBeCloseTo(0.9491136996755185, 12);
    expect(spearman(x, y)).toBeCloseTo(0.9143773643235332, 12);
    expect(Array.from(ranks([3, 1, 3, 2]))).toEqual([3.5, 1, 3.5, 2]);
  });
  it('accuracy, F1 and Matthews correlation', () => {
    const p = [0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1];
    const l = [0, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1];
    expect(accuracy(p, l)).toBeCloseTo(9 / 12, 12);
    expect(f1(p, l)).toBeCloseTo(0.7692307692307693, 12);
    expect(matthews(p, l)).toBeCloseTo(0.50709255283711, 12);
    expect(matthews([0, 1, 2, 2, 1, 0, 2, 1, 0, 0], [0, 2, 2, 2, 1, 0, 1, 1, 0, 2])).toBeCloseTo(0.5606060606060606, 12);
    expect(matthews([1, 1, 1], [1, 1, 1])).toBe(0);
    expect(f1([0, 0], [0, 0])).toBe(0);
    expect(() => accuracy([1], [1, 0])).toThrow(/same length/);
  });
  it('perplexity and argmax', () => {
    expect(perplexity(Math.log(7))).toBeCloseTo(7, 12);
    expect(Array.from(argmaxRows([0.1, 0.9, 0.3, 2, -1, 1], 2, 3))).toEqual([1, 0]);
  });
});

describe('table readers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kfac-data-'));
  it('parses RFC 4180 CSV with quotes, commas and newlines inside fields', () => {
    expect(parseCsv('a,b\n"x, ""y""",2\n"multi\nline",3\r\n')).toEqual([
      ['a', 'b'],
      ['x, "y"', '2'],
      ['multi\nline', '3'],
    ]);
    expect(() => parseCsv('a\n"open', 'f.csv')).toThrow(DataError);
  });
  it('reads CSV, TSV and JSONL with a column mapping', () => {
    writeFileSync(join(dir, 'd.csv'), 'review,stars\n"great, really",1\nbad,0\n');
    writeFileSync(join(dir, 'd.jsonl'), '{"t":"hello","y":1}\n\n{"t":"bye","y":0}\n');
    writeFileSync(join(dir, 'd.tsv'), '\ufeffq\tlab\n"quoted" stays\tpos\n');
    expect(toExamples(readTable(join(dir, 'd.csv')), { text: 'review', label: 'stars' }, 'classification')).toEqual([
      { text: 'great, really', label: 1 },
      { text: 'bad', label: 0 },
    ]);
    expect(toExamples(readTable(join(dir, 'd.jsonl')), { text: 't', label: 'y' }, 'classification').map((e) => e.label)).toEqual([1, 0]);
    expect(toExamples(readTable(join(dir, 'd.tsv')), { text: 'q', label: 'lab', labelMap: { pos: 1 } }, 'classification')).toEqual([{ text: '"quoted" stays', label: 1 }]);
    expect(() => toExamples(readTable(join(dir, 'd.csv')), { text: 'nope', label: 'stars' }, 'classification')).toThrow(/no column "nope"/);
    writeFileSync(join(dir, 'bad.jsonl'), '{"t":1}\n[1]\n');
    expect(() => readTable(join(dir, 'bad.jsonl'))).toThrow(DataError);
    expect(() => readTable(join(dir, 'missing.tsv'))).toThrow(DataError);
  });
  it('shuffles deterministically from a seed', () => {
    const a = shuffledIndices(100, 7);
    expect(Array.from(a)).toEqual(Array.from(shuffledIndices(100, 7)));
    expect(Array.from(a)).not.toEqual(Array.from(shuffledIndices(100, 8)));
    expect([...a].sort((p, q) => p - q)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

describe('the shared data folder', () => {
  it('is KFAC_PEFT_DATA when set, else ../shared/data beside the package', () => {
    expect(sharedDataRoot({ KFAC_PEFT_DATA: '/data/kfac' })).toBe('/data/kfac');
    expect(sharedDataRoot({ KFAC_PEFT_DATA: '' })).toBe(join(PACKAGE_ROOT, '..', 'shared', 'data'));
    expect(sharedDataRoot({})).toBe(join(PACKAGE_ROOT, '..', 'shared', 'data'));
  });
});

describe.skipIf(GLUE_DIR === undefined)(`GLUE layout (shared data glue/)${skipNote(GLUE_DIR, 'glue')}`, () => {
  it.each([
    ['SST-2', 872, false],
    ['MRPC', 408, true],
    ['RTE', 277, true],
  ] as const)('%s dev loads with no mapping', (name, rows, pair) => {
    const { task, examples } = loadGlue(join(GLUE_DIR!, name), 'dev');
    expect(task.name).toBe(name);
    expect(examples.length).toBe(rows);
    for (const e of examples) {
      expect([0, 1]).toContain(e.label);
      expect(e.text.length).toBeGreaterThan(0);
      expect(e.textPair !== undefined).toBe(pair);
    }
    const counts = [0, 0];
    for (const e of examples) counts[e.label]!++;
    expect(Math.min(...counts)).toBeGreaterThan(rows / 5); // both classes present
  });
});
