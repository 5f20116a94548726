/**
 * PEFT methods on T5 (test/fixtures/models/t5-v1_1, t5-v1_0 for prefix tuning): LoRA, IA3,
 * bottleneck adapters (Pfeiffer and Houlsby), prompt and prefix tuning train with K-FAC through
 * the seq2seq task as the CLI builds it — the loss falls, the frozen base weights stay bit for
 * bit, the method's K-FAC blocks are there. Prefix tuning on a T5 that PEFT's layout cannot hold
 * (t5-v1_1: more decoder than encoder layers) is a ConfigError before the model changes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { ConfigError } from '../../lib/errors.js';
import { completeRun } from '../../lib/cli/run-flags.js';
import type { RunConfig } from '../../lib/train/run.js';
import { applyPrefixTuning, bottleneckState, kfacLayersForBitfit, kfacLayersForBottleneck, kfacLayersForIa3, kfacLayersForLora, kfacLayersForPrefix, kfacLayersForPrompt } from '../../lib/peft/index.js';
import { buildModel, buildOptimizer, buildTask, prepareRun } from '../../lib/train/run.js';
import { ROOT } from '../support/tiny-cli.js';

const MODEL = join(ROOT, 'test', 'fixtures', 'models', 't5-v1_1');
const MODEL_V10 = join(ROOT, 'test', 'fixtures', 'models', 't5-v1_0');
const tmp = mkdtempSync(join(tmpdir(), 'kfac-peft-t5-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pairs(): string {
  const f = join(tmp, 'pairs.tsv');
  const src = ['the best film', 'a waste of time', 'a gripping film', 'the plot is thin', 'a good movie', 'the acting is worse'];
  writeFileSync(f, 'source\ttarget\n' + Array.from({ length: 24 }, (_, i) => `${src[i % 6]}\t${i % 2 ? 'positive' : 'negative'}`).join('\n') + '\n');
  return f;
}

type Method = { name: string; run: Partial<RunConfig>; lr: number; blocks: (m: never) => { name: string }[]; want: string[]; model?: string };

const METHODS: Method[] = [
  { name: 'lora', run: { peft: 'lora' }, lr: 0.1, blocks: (m) => kfacLayersForLora(m, { heads: true }), want: ['encoder.block.0.layer.0.SelfAttention.q.lora_A', 'decoder.block.1.layer.1.EncDecAttention.v.lora_B'] },
  { name: 'ia3', run: { peft: 'ia3' }, lr: 0.1, blocks: (m) => kfacLayersForIa3(m), want: ['encoder.block.0.layer.0.SelfAttention.k', 'decoder.block.0.layer.1.EncDecAttention.v'] },
  { name: 'adapter pfeiffer', run: { peft: 'adapter', adapterKind: 'pfeiffer', reductionFactor: 4 }, lr: 0.1, blocks: (m) => kfacLayersForBottleneck(m), want: ['encoder.block.0.layer.1.DenseReluDense.wo', 'decoder.block.2.layer.2.DenseReluDense.wo'] },
  { name: 'adapter houlsby', run: { peft: 'adapter', adapterKind: 'houlsby', reductionFactor: 4 }, lr: 0.1, blocks: (m) => kfacLayersForBottleneck(m), want: ['encoder.block.1.layer.0.SelfAttention.o', 'decoder.block.0.layer.0.SelfAttention.o'] },
  // The default trust-ratio clip (κ = 0.01) moves the N(0, 1) prompt table 1 % a step: too slow for 12 steps.
  { name: 'prompt', run: { peft: 'prompt', numVirtualTokens: 4, trustRatio: 0.1 }, lr: 1, blocks: (m) => kfacLayersForPrompt(m), want: ['shared.prompt_encoder'] },
  { name: 'prefix', run: { peft: 'prefix', numVirtualTokens: 4 }, lr: 0.1, blocks: (m) => kfacLayersForPrefix(m), want: ['prompt_encoder.embedding'], model: MODEL_V10 },
];

describe('PEFT methods on T5', () => {
  test.each(METHODS.map((m) => [m.name, m] as const))('%s trains with K-FAC: the loss falls, the base stays frozen', (_, meth) => {
    // a constant lr: 12 steps are too few for the default warm-up and cosine decay to show the loss falling
    const config = completeRun({ model: meth.model ?? MODEL, data: pairs(), optimizer: 'kfac', lr: meth.lr, damping: 0.01, batchSize: 8, maxLength: 24, seed: 3, schedule: 'constant', warmup: 0, ...meth.run } as RunConfig);
    const p = prepareRun(config);
    const model = buildModel(p);
    try {
      const names = meth.blocks(model as never).map((l) => l.name);
      expect(names.length).toBeGreaterThan(0);
      for (const w of meth.want) expect(names.some((n) => n.startsWith(w)), `${w} in ${names.slice(0, 8).join(', ')}`).toBe(true);
      const frozen = model.parameters().find((q) => q.name.endsWith('encoder.block.0.layer.0.SelfAttention.q.weight'))!;
      expect(frozen.trainable).toBe(false);
      const before = frozen.tensor.toArray().slice();
      const task = buildTask(p, model);
      const opt = buildOptimizer(config, model, 12);
      // The loss of one fixed batch before and after training (the batches differ in difficulty).
      const fixed = [...task.batches(0, 5)][0]!;
      const lossOn = (): number => {
        task.zeroGrad();
        const l = task.lossAndBackward(fixed as never).loss;
        task.zeroGrad();
        return l;
      };
      const first = lossOn();
      const losses: number[] = [];
      let step = 0;
      for (let epoch = 0; step < 12; epoch++)
        for (const b of task.batches(epoch, 5 + epoch)) {
          task.zeroGrad();
          const r = task.lossAndBackward(b as never);
          opt.capture?.({ batchSize: r.batchSize });
          opt.step({ batchSize: r.batchSize });
          losses.push(r.loss);
          if (++step === 12) break;
        }
      expect(losses.every(Number.isFinite)).toBe(true);
      const last = lossOn();
      expect(last).toBeLessThan(0.95 * first);
      expect(Array.from(frozen.tensor.toArray())).toEqual(Array.from(before));
      if (meth.run.peft === 'adapter') expect(bottleneckState(model)!.branches.length).toBeGreaterThan(0);
    } finally {
      model.dispose();
    }
  }, 120_000);

  test('prefix tuning on a T5 with more decoder than encoder layers is a ConfigError, and leaves the model untouched', () => {
    const config = completeRun({ model: MODEL, data: pairs(), optimizer: 'adamw', lr: 0.01, batchSize: 8, seed: 3 } as RunConfig);
    const model = buildModel(prepareRun(config));
    try {
      const trainable = model.parameters().filter((q) => q.trainable).length;
      expect(() => applyPrefixTuning(model)).toThrow(ConfigError);
      expect(() => applyPrefixTuning(model)).toThrow(/decoder/);
      expect(model.parameters().filter((q) => q.trainable).length).toBe(trainable);
    } finally {
      model.dispose();
    }
    // T5 has no biases: BitFit has nothing to train there.
    expect(() => kfacLayersForBitfit(buildModel(prepareRun(completeRun({ model: MODEL, data: pairs(), peft: 'bitfit', batchSize: 8 } as RunConfig))) as never)).toThrow(ConfigError);
    expect(() => buildModel(prepareRun(completeRun({ model: MODEL, data: pairs(), peft: 'prefix', batchSize: 8 } as RunConfig)))).toThrow(ConfigError);
  });
});
