#!/usr/bin/env node
// How far an optimizer moves the trained weights: for each run folder written with
// `train --save-every N`, reads the adapter of every periodic checkpoint
// (checkpoints/step-*/adapter_model.safetensors) and prints, per group of tensors — LoRA's A, LoRA's B,
// and the rest (a classification head and other saved modules) — the root mean square of the weights
// and of their change since the previous checkpoint. Two optimizers that reach the same loss with
// very different travel move along different directions (BENCHMARKS.md, "K-FAC at its defaults").
// usage: node bench/e2e/adapter-travel.mjs <run-folder> [more …]
import { existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

import { loadSafetensors } from '../../dist/io/index.js';

const folders = process.argv.slice(2);
if (folders.length === 0) throw new Error('usage: adapter-travel.mjs <run-folder> [more …]');
const groupOf = (name) => (name.includes('lora_A') ? 'lora_A' : name.includes('lora_B') ? 'lora_B' : 'other');
const GROUPS = ['lora_A', 'lora_B', 'other'];
const f = (v) => (Number.isFinite(v) ? v.toExponential(2) : '–');

for (const run of folders) {
  const root = join(run, 'checkpoints');
  if (!existsSync(root)) throw new Error(`${run}: no checkpoints/ (train it with --save-every N)`);
  const steps = readdirSync(root).filter((d) => /^step-\d+$/.test(d)).sort();
  if (steps.length === 0) throw new Error(`${root}: no step-* checkpoints`);
  console.log(`\n${basename(run)}: rms of the weights (rms of the change since the previous checkpoint)\n`);
  console.log(`| step | ${GROUPS.join(' | ')} |`);
  console.log(`| ---: | ${GROUPS.map(() => '---:').join(' | ')} |`);
  let prev;
  for (const s of steps) {
    const tensors = loadSafetensors(join(root, s, 'adapter_model.safetensors'));
    const values = new Map([...tensors].map(([k, t]) => [k, t.toArray()]));
    for (const t of tensors.values()) t.dispose();
    const acc = Object.fromEntries(GROUPS.map((g) => [g, { sq: 0, dsq: 0, n: 0 }]));
    for (const [k, v] of values) {
      const a = acc[groupOf(k)];
      const p = prev?.get(k);
      for (let i = 0; i < v.length; i++) {
        a.sq += v[i] * v[i];
        if (p) a.dsq += (v[i] - p[i]) ** 2;
      }
      a.n += v.length;
    }
    const cell = (g) => (acc[g].n === 0 ? '–' : `${f(Math.sqrt(acc[g].sq / acc[g].n))} (${prev ? f(Math.sqrt(acc[g].dsq / acc[g].n)) : '–'})`);
    console.log(`| ${Number(s.slice(5))} | ${GROUPS.map(cell).join(' | ')} |`);
    prev = values;
  }
}
