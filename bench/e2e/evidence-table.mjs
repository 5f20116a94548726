#!/usr/bin/env node
// Prints the Markdown tables of BENCHMARKS.md's fine-tuning evidence from `compare` output
// folders (compare.json and each run's metrics.jsonl; divergence is judged from the logs with
// the same rule the comparison uses).
// usage: node bench/e2e/evidence-table.mjs <compare-out-folder> [more …]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { runDirName } from '../../dist/cli/commands/compare.js';
import { blewUp } from '../../dist/train/compare.js';

const f = (v, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(d)).toString() : '–');
for (const dir of process.argv.slice(2)) {
  const c = JSON.parse(readFileSync(join(dir, 'compare.json'), 'utf8'));
  const pm = (m) => `${f(m.mean)} ± ${f(m.std, 2)}`;
  console.log(`\n${dir} — ${c.monitor} (${c.mode === 'max' ? 'higher' : 'lower'} is better), seeds ${c.seeds.join(', ')}, baseline ${c.baseline}\n`);
  console.log(`| run | final ${c.monitor} | best ${c.monitor} | steps to ${c.baseline}'s best, per seed | ms / step | diverged | Newton-clip rate |`);
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of c.rows) {
    const diverged = r.seeds.filter((seed) => {
      const log = join(dir, 'runs', runDirName(r.name, seed, c.seeds.length > 1), 'metrics.jsonl');
      if (!existsSync(log)) return false;
      const steps = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.kind === 'step');
      return steps.some((e) => e.optimizer?.diverged === true) || blewUp(steps.map((e) => e.loss));
    }).length;
    const steps = r.stepsToBaseline.map((s) => (s === null || s === undefined ? 'never' : s)).join(' / ');
    const clipped = c.configs?.find((k) => k.name === r.name)?.newtonClip !== undefined;
    const clip = !clipped || r.clipRate === undefined || r.clipRate === null ? '–' : `${(100 * r.clipRate).toFixed(0)}%`;
    console.log(`| ${r.name}${r.name === c.baseline ? ' (baseline)' : ''} | ${pm(r.final)} | ${pm(r.best)} | ${steps} | ${f(r.msPerStep, 3)} | ${diverged}/${r.seeds.length} | ${clip} |`);
  }
}
