#!/usr/bin/env node
// One training step's forward + backward of a model, timed: loads a checkpoint (default the
// stories260K llama2.c model from ../shared/data), runs warm-up steps, then prints the median,
// min and max wall time over the timed steps and the CPU time per step (all threads; the wall
// time on a shared machine depends on its load), and writes bench/out/models-step.json.
//
//   npm run build:ts && node bench/models-step.mjs [checkpoint] [--batch 8] [--seq 64] [--steps 20] [--threads N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { info, models, setNumThreads } from '../dist/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const positional = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
const path = positional[0] ?? join(process.env.KFAC_PEFT_DATA ?? join(root, '..', 'shared', 'data'), 'llama2c', 'stories260K.bin');
const B = opt('batch', 8);
const T = opt('seq', 64);
const steps = opt('steps', 20);
if (args.includes('--threads')) setNumThreads(opt('threads', 1));

const model = models.loadModel(path);
model.train();
const V = model.config.vocabSize;
let s = 12345;
const ids = Int32Array.from({ length: B * T }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s % V));
const batch = { inputIds: ids, shape: [B, T], labels: ids };
const times = [];
let loss = 0;
let cpu0 = null;
for (let i = 0; i < steps + 3; i++) {
  if (i === 3) cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  model.zeroGrad();
  loss = model.forward(batch).loss;
  model.backward();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (i >= 3) times.push(ms);
}
const cpu = process.cpuUsage(cpu0);
const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / steps;
times.sort((a, b) => a - b);
const params = model.parameters().reduce((n, p) => n + p.tensor.size, 0);
const r = { model: path, params, B, T, steps, threads: info().cpu?.threads, loss, cpuMsPerStep, medianMs: times[times.length >> 1], minMs: times[0], maxMs: times[times.length - 1] };
console.log(`forward+backward ${model.config.modelType} (${params} parameters) B=${B} T=${T}, ${r.threads} threads: median ${r.medianMs.toFixed(2)} ms, min ${r.minMs.toFixed(2)}, max ${r.maxMs.toFixed(2)} over ${steps} steps; ${cpuMsPerStep.toFixed(1)} ms of CPU time per step (all threads); loss ${loss.toFixed(4)}`);
mkdirSync(join(root, 'bench', 'out'), { recursive: true });
writeFileSync(join(root, 'bench', 'out', 'models-step.json'), JSON.stringify(r, null, 1) + '\n');
model.dispose();
