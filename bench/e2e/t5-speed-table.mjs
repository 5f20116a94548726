#!/usr/bin/env node
// The BENCHMARKS.md table of bench/e2e/t5-speed.sh: per shape and PEFT method, the trainable
// parameters (ours; PyTorch + PEFT's count beside it where it differs), the mean ms per step of
// AdamW and of K-FAC + Newton-step clipping, their ratio, PyTorch + PEFT's AdamW ms per step on
// the same weights and batch, and ours / PyTorch (PyTorch ms / our AdamW ms: > 1, we are faster).
// A run that failed is listed with the first line of its error; a missing peer with its reason.
// usage: node bench/e2e/t5-speed-table.mjs <t5-speed-out-folder>
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2] ?? 'runs/t5-speed';
const SHAPES = ['t5-small', 'flan-t5-small'];
const METHODS = ['lora', 'adapter', 'prefix', 'prompt', 'ia3', 'bitfit'];
const f = (v, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(d)).toString() : '–');
const read = (name) => {
  const file = join(root, `${name}.json`);
  if (existsSync(file)) {
    try {
      return { r: JSON.parse(readFileSync(file, 'utf8')) };
    } catch {
      return { why: 'no complete report (still running, or cut off)' };
    }
  }
  const err = join(root, `${name}.err`);
  const why = existsSync(err) ? (readFileSync(err, 'utf8').split('\n').find((l) => l.trim() && !l.startsWith('\r')) ?? 'no output') : 'not run';
  return { why: why.replace(/^kfac-peft: /, '').replace(/\|/g, '/') };
};

let header;
for (const shape of SHAPES) {
  for (const method of METHODS) {
    const a = read(`${shape}-${method}-adamw`);
    const k = read(`${shape}-${method}-kfac`);
    if (!a.r && !k.r && a.why === 'not run' && k.why === 'not run') continue;
    if (!header) {
      const any = a.r ?? k.r;
      if (any) console.log(`batch ${any.batch} × (source ${any.seq} + target ${any.targetSeq}) tokens, ${any.threads} threads; mean ms over the timed steps; machine ${any.machine?.cpu ?? '?'}\n`);
      console.log('| shape | method | trainable params | AdamW ms / step | K-FAC + NSC ms / step | K-FAC / AdamW | PyTorch + PEFT AdamW ms / step | ours / PyTorch |');
      console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
      header = true;
    }
    if (!a.r && !k.r) {
      console.log(`| ${shape} | ${method} | – | ${a.why} | | | | |`);
      continue;
    }
    const r = a.r ?? k.r;
    const peerCount = a.r?.peerTrainable;
    const trainable = `${r.trainable.toLocaleString('en-US')}${peerCount !== undefined && peerCount !== r.trainable ? ` (PEFT ${peerCount.toLocaleString('en-US')})` : ''}`;
    const am = a.r?.ours.meanMs;
    const km = k.r?.ours.meanMs;
    const pm = a.r?.peer?.meanMs;
    const peerCell = a.r ? (a.r.peer ? f(pm, 3) : `– (${(a.r.peerMissing ?? 'not asked').replace(/\|/g, '/')})`) : `– (${a.why})`;
    console.log(`| ${shape} | ${method} | ${trainable} | ${a.r ? f(am, 3) : `– (${a.why})`} | ${k.r ? f(km, 3) : `– (${k.why})`} | ${am && km ? f(km / am, 3) : '–'} | ${peerCell} | ${am && pm ? f(pm / am, 3) : '–'} |`);
  }
}
if (existsSync(join(root, 'load.txt'))) console.log(`\n${readFileSync(join(root, 'load.txt'), 'utf8').trim().replace(/\n/g, '; ')}`);
