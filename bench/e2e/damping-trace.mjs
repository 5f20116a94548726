#!/usr/bin/env node
// What adaptive damping did in K-FAC runs (docs/KFAC.md#adaptive-damping): over every K-FAC run
// under the `compare` output folders given, the reduction ratios ρ of the probes (how many fell
// below 1/4, between 1/4 and 3/4, above 3/4; median, smallest) and, per run, the first step whose
// damping sat at its floor.
// usage: node bench/e2e/damping-trace.mjs <compare-out-folder> [more …]
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const folders = process.argv.slice(2);
if (folders.length === 0) throw new Error('usage: damping-trace.mjs <compare-out-folder> [more …]');
for (const d of folders) {
  const rhos = [];
  const floors = [];
  for (const r of readdirSync(join(d, 'runs'))) {
    const dir = join(d, 'runs', r);
    if (!existsSync(join(dir, 'config.json')) || JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).optimizer !== 'kfac') continue;
    const steps = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.kind === 'step');
    for (const s of steps) if (Number.isFinite(s.optimizer?.rho)) rhos.push(s.optimizer.rho);
    const damp = steps.map((s) => s.optimizer?.damping).filter(Number.isFinite);
    const floor = Math.min(...damp);
    const at = steps.find((s) => s.optimizer?.damping <= floor * (1 + 1e-9));
    floors.push(`${r}: λ ${damp[0]?.toExponential(1)} → ${floor.toExponential(1)} from step ${at?.step}`);
  }
  rhos.sort((a, b) => a - b);
  const count = (f) => rhos.filter(f).length;
  console.log(`${d}: ${rhos.length} probes; ρ < 1/4: ${count((x) => x < 0.25)}, 1/4 … 3/4: ${count((x) => x >= 0.25 && x <= 0.75)}, > 3/4: ${count((x) => x > 0.75)}; median ${rhos[rhos.length >> 1]?.toFixed(3)}, smallest ${rhos[0]?.toFixed(3)}`);
  for (const f of floors) console.log(`  ${f}`);
}
