#!/usr/bin/env node
// Prints "<model dir> <data dir>" of the demo's pretrained model and era task (pretrains once into
// the cache folder given, or reuses an intact cache), for `compare` runs on the demo task.
// With --dev-per-class N the data dir is the same task with N dev rows per class instead of the
// demo's 64 (the same dev speeches, so the same pretrained model; the same train rows, checked):
// a larger dev set for evidence that one evaluation's noise would otherwise swamp.
// usage: node bench/e2e/demo-data.mjs <cache-dir> [--dev-per-class N]
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { DEMO_TASK, prepareDemo } from '../../dist/demo/prepare.js';
import { readSotu } from '../../dist/demo/sotu.js';
import { buildTask, toTsv } from '../../dist/demo/task.js';

const [cacheDir, flag, nArg] = process.argv.slice(2);
if (!cacheDir || (flag !== undefined && flag !== '--dev-per-class')) throw new Error('usage: demo-data.mjs <cache-dir> [--dev-per-class N]');
const d = await prepareDemo({ cacheDir });
if (flag === undefined) {
  process.stdout.write(`${d.modelDir} ${d.dataDir}\n`);
} else {
  const n = Number(nArg);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--dev-per-class: expected a positive integer, got ${nArg}`);
  const out = join(cacheDir, `demo-dev${n}`);
  if (!existsSync(join(out, 'dev.tsv'))) {
    const built = buildTask(readSotu(), { ...DEMO_TASK, seed: 0, devPerClass: n });
    const train = toTsv(built.train);
    if (train !== readFileSync(join(d.dataDir, 'train.tsv'), 'utf8')) throw new Error('the rebuilt train rows differ from the cached task: the cache is of another version');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'train.tsv'), train);
    writeFileSync(join(out, 'task.json'), readFileSync(join(d.dataDir, 'task.json')));
    writeFileSync(join(out, 'dev.tsv'), toTsv(built.dev));
  }
  process.stdout.write(`${d.modelDir} ${out}\n`);
}
