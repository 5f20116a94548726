#!/usr/bin/env node
// The BENCHMARKS.md table of bench/e2e/methods.sh: per PEFT method, the trainable parameters (the
// model built exactly as the runs built it) and, for AdamW at its best learning rate (by mean final
// dev accuracy) and for K-FAC at its defaults, the final / best dev accuracy (mean over seeds) and
// ms / step. A method whose compare failed is listed with the first line of its error.
// usage: node bench/e2e/methods-table.mjs <methods-out-folder>
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { buildModel, prepareRun } from '../../dist/train/run.js';

const root = process.argv[2] ?? 'runs/methods';
const f = (v, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(d)).toString() : '–');
const pm = (m) => `${f(m.mean)}${m.std ? ` ± ${f(m.std, 2)}` : ''}`;
let shared;
console.log('| method | trainable params | AdamW (best lr) final / best | AdamW ms / step | K-FAC + NSC final / best | K-FAC ms / step | steps to the best AdamW\'s best, K-FAC (AdamW), per seed |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const method of ['lora', 'ia3', 'bitfit', 'adapter', 'prefix', 'prompt']) {
  const file = join(root, method, 'compare.json');
  if (!existsSync(file)) {
    const log = join(root, `${method}.log`);
    const why = existsSync(log) ? (readFileSync(log, 'utf8').split('\n').find((l) => l.trim()) ?? 'no output') : 'not run';
    console.log(`| ${method} | – | ${why.replace(/\|/g, '/')} | | | | |`);
    continue;
  }
  const c = JSON.parse(readFileSync(file, 'utf8'));
  const p = prepareRun(c.configs[0], shared);
  shared ??= { data: p.data, codec: p.codec };
  const model = buildModel(p);
  const trainable = model.trainableParameters().reduce((n, q) => n + q.tensor.size, 0);
  model.dispose();
  const adamw = c.rows.filter((r) => r.name.startsWith('adamw')).sort((a, b) => b.final.mean - a.final.mean)[0];
  const kfac = c.rows.find((r) => r.name.startsWith('kfac'));
  const cell = (r) => (r ? `${pm(r.final)} / ${pm(r.best)}` : '–');
  // compare's baseline is the AdamW run with the best mean best accuracy; stepsToBaseline: per seed, null = never
  const base = c.rows.find((r) => r.name === c.baseline);
  const steps = (r) => (r?.stepsToBaseline ?? []).map((x) => x ?? 'never').join(' / ');
  console.log(`| ${method} | ${trainable.toLocaleString('en-US')} | ${cell(adamw)} (${adamw?.name ?? '–'}) | ${f(adamw?.msPerStep, 3)} | ${cell(kfac)} | ${f(kfac?.msPerStep, 3)} | ${steps(kfac)} (${steps(base)}) |`);
}
