#!/usr/bin/env node
// A LoRA run of the real stories260K model (llama2.c) with its frozen base weights in float32 and
// in bfloat16, side by side: same LoRA init, same batches (SST-2 training sentences, tokenized
// with tok512, packed into blocks), same AdamW; steps alternate between the two runs so both see
// the same machine load. Prints the mean training loss of the last 20 steps of each run, their
// relative difference (target: within 2%), and the median step time of each.
//
//   npm run build:ts && node bench/bf16-loss.mjs [--steps 200] [--batch 8] [--seq 64] [--lr 3e-3] [--threads N]
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { info, io, models, optim, peft, setNumThreads } from '../dist/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const data = process.env.KFAC_PEFT_DATA ?? join(root, '..', 'shared', 'data');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const steps = opt('steps', 200);
const B = opt('batch', 8);
const T = opt('seq', 64);
const lr = opt('lr', 3e-3);
if (args.includes('--threads')) setNumThreads(opt('threads', 1));

const tok = io.Llama2cTokenizer.open(join(data, 'llama2c', 'tok512.bin'), 512);
const lines = readFileSync(join(data, 'glue', 'SST-2', 'train.tsv'), 'utf8').split('\n').slice(1, 6000);
const stream = [];
for (const l of lines) {
  const text = l.split('\t')[0];
  if (text) stream.push(...tok.encode(text, { bos: true }));
}
const blocks = Math.floor(stream.length / T);
const batchAt = (s) => {
  const ids = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const blk = (s * B + b) % blocks;
    for (let t = 0; t < T; t++) ids[b * T + t] = stream[blk * T + t];
  }
  return { inputIds: ids, shape: [B, T], labels: ids };
};

const make = (dtype) => {
  const m = models.loadModel(join(data, 'llama2c', 'stories260K.bin'), { dtype });
  m.train();
  peft.applyLora(m, { targetModules: 'all-linear', r: 8, alpha: 16, dropout: 0, seed: 1 });
  return { m, opt: new optim.AdamW(m.trainableParameters(), { lr }), losses: [], ms: [] };
};
const runs = { float32: make('float32'), bfloat16: make('bfloat16') };
const load0 = loadavg();
for (let s = 0; s < steps; s++) {
  const batch = batchAt(s);
  for (const r of Object.values(runs)) {
    const t0 = process.hrtime.bigint();
    r.m.zeroGrad();
    r.losses.push(r.m.forward(batch).loss);
    r.m.backward();
    r.opt.step();
    r.ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
}
const tail = (xs) => xs.slice(-20).reduce((a, b) => a + b, 0) / Math.min(20, xs.length);
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const f = tail(runs.float32.losses);
const h = tail(runs.bfloat16.losses);
const i = info();
console.log(`stories260K LoRA r=8 all-linear, AdamW lr ${lr}, ${steps} steps, B=${B} T=${T}, ${i.cpu.threads} threads, bf16 kernel ${i.cpu.bf16Kernel} (${i.cpu.brand})`);
console.log(`first loss: float32 ${runs.float32.losses[0].toFixed(4)}, bfloat16 ${runs.bfloat16.losses[0].toFixed(4)}`);
console.log(`mean loss of the last 20 steps: float32 ${f.toFixed(4)}, bfloat16 ${h.toFixed(4)}; relative difference ${((100 * (h - f)) / f).toFixed(2)}% (target: within 2%)`);
console.log(`median step: float32 ${med(runs.float32.ms).toFixed(1)} ms, bfloat16 ${med(runs.bfloat16.ms).toFixed(1)} ms`);
console.log(`load average before: ${load0.map((x) => x.toFixed(2)).join(' ')}; after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
for (const r of Object.values(runs)) r.m.dispose();
