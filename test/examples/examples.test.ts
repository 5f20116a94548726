/**
 * Every script in examples/ runs as a user would run it (node, importing 'kfac-peft' through the
 * package's own exports map, so it needs the built dist/ that `npm test` makes first), exits 0,
 * and prints what it claims: the loss falls, the fine-tuned classifier and the adapted LM learn
 * their data, the adapter saved again is byte-identical. Examples that need the shared data skip
 * with a message when it is absent, and this test then checks that message.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { PACKAGE_ROOT, SHARED_DATA, sharedData } from '../support/shared-data.js';

const EXAMPLES = join(PACKAGE_ROOT, 'examples');

function run(name: string): string {
  const r = spawnSync(process.execPath, [join(EXAMPLES, name)], {
    cwd: PACKAGE_ROOT,
    encoding: 'utf8',
    env: { ...process.env, KFAC_PEFT_DATA: SHARED_DATA },
    timeout: 90_000,
  });
  expect(r.error, `${name}: ${r.error}`).toBeUndefined();
  expect(r.status, `${name} exited with ${r.status}:\n${r.stderr}`).toBe(0);
  expect(r.stderr, `${name} wrote to stderr`).toBe('');
  return r.stdout;
}

/** The two numbers of a line such as `label: 0.7557 -> 0.1986`. */
function arrow(out: string, label: string): [number, number] {
  const m = new RegExp(`${label}: (\\S+) -> (\\S+)`).exec(out);
  expect(m, `no '${label}: a -> b' line in:\n${out}`).not.toBeNull();
  return [Number(m![1]), Number(m![2])];
}

describe('examples', () => {
  it('has a test for every example', () => {
    const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.mjs')).sort();
    expect(files).toEqual(['bert-classifier.mjs', 'compare-optimizers.mjs', 'llama-lm.mjs', 'load-peft-adapter.mjs', 'own-model.mjs']);
  });

  it('bert-classifier: LoRA + K-FAC learns the synthetic task', () => {
    const out = run('bert-classifier.mjs');
    expect(out).toMatch(/trainable params: [\d,]+ \|\| all params: [\d,]+/);
    const [l0, l1] = arrow(out, 'train loss');
    expect(l1).toBeLessThan(l0 / 2);
    const [, acc] = arrow(out, 'dev accuracy');
    expect(acc).toBeGreaterThanOrEqual(0.9);
    expect(out).toMatch(/Newton step clipped on \d+ of 100 steps/);
  });

  it('own-model: KfacPreconditioner rewrites the gradients of a hand-built MLP and it trains', () => {
    const out = run('own-model.mjs');
    const [k0, k1] = arrow(out, 'K-FAC \\+ SGD loss');
    expect(k1).toBeLessThan(k0 / 10);
    const m = /pre-clip Newton-step norm ([\d.e+-]+), clip scale ([\d.e+-]+),/.exec(out);
    expect(m).not.toBeNull();
    const [norm, scale] = [Number(m![1]), Number(m![2])];
    expect(Number.isFinite(norm) && norm > 0).toBe(true);
    expect(scale).toBeGreaterThan(0);
    expect(scale).toBeLessThanOrEqual(1);
  });

  it('compare-optimizers: one finite row per optimizer and a verdict', () => {
    const out = run('compare-optimizers.mjs');
    const rows = out.split('\n').filter((l) => /^(AdamW|SGD|K-FAC) /.test(l));
    expect(rows.map((l) => l.split(' ')[0])).toEqual(['AdamW', 'SGD', 'K-FAC']);
    for (const l of rows) {
      const nums = l.trim().split(/\s+/).slice(-4).map(Number);
      expect(nums.every(Number.isFinite), l).toBe(true);
      expect(nums[2]!, `${l}: dev accuracy`).toBeGreaterThan(0.5);
    }
    expect(out).toMatch(/lowest dev loss: (AdamW|SGD|K-FAC) /);
  });

  const llama = sharedData('llama2c/stories260K.bin');
  it(`llama-lm: adapts the TinyStories model to a new story${llama ? '' : ' (checks the skip message)'}`, () => {
    const out = run('llama-lm.mjs');
    if (!llama) return void expect(out).toMatch(/^skipped: .*absent/);
    expect(out).toMatch(/^before: Once upon a time, there was a little girl named Lily/m);
    const [l0, l1] = arrow(out, 'loss on the story');
    expect(l1).toBeLessThan(l0 / 10);
    expect(out).toMatch(/^after: Once upon a time, there was a purple dragon named Bob/m);
    expect(out).toMatch(/^merged: Once upon a time, there was a purple dragon named Bob/m);
  });

  const adapter = sharedData('peft/distilbert-lora-imdb');
  it(`load-peft-adapter: loads the real DistilBERT adapter and saves it back byte for byte${adapter ? '' : ' (checks the skip message)'}`, () => {
    const out = run('load-peft-adapter.mjs');
    if (!adapter) return void expect(out).toMatch(/^skipped: .*absent/);
    expect(out).toMatch(/loaded 28 tensors; adapted layers: 12; heads: classifier, pre_classifier/);
    expect(out).toMatch(/r = 8, alpha = 16/);
    expect(out).toMatch(/logits shape: \[2, 2\]/);
    expect(out).toMatch(/identical: true/);
  });
});
