/**
 * The model tasks behind `train`: every training example is used exactly once per epoch, in an
 * order fixed by the seed and different across seeds, with length-bucketed batches; causal-LM
 * text becomes BOS-prefixed blocks; a model whose outputs overflow reports a NaN loss (which the
 * Trainer records as divergence) and NaN metrics instead of throwing.
 */
import { describe, expect, test } from 'vitest';

import { InvalidArgumentError, NotFiniteError } from '../../lib/errors.js';
import { join } from 'node:path';

import { createLlama, loadModel } from '../../lib/models/index.js';
import type { Example, TaskSpec } from '../../lib/train/data.js';
import { CausalLmTask, ClassificationTask, tokenBlocks } from '../../lib/train/tasks.js';
import type { TextCodec } from '../../lib/train/text.js';
import { Trainer } from '../../lib/train/trainer.js';

/** Ids of the characters of a text (a–z → 3…28), BOS = 1. */
const codec: TextCodec = {
  source: 'test',
  vocabSize: 32,
  padId: 0,
  encodeExample: (text, _pair, maxLength) => {
    const ids = [1, ...[...text].map((c) => c.charCodeAt(0) - 94)].slice(0, maxLength);
    return { ids, typeIds: ids.map(() => 0) };
  },
  encodeDocument: (text) => [1, ...[...text].map((c) => c.charCodeAt(0) - 94)],
  decode: (ids) => ids.map((i) => String.fromCharCode(i + 94)).join(''),
};
const spec: TaskSpec = { name: 't', columns: { text: 'sentence', label: 'label' }, numLabels: 2, kind: 'classification', metrics: ['accuracy'] };
const examples = (n: number): Example[] => Array.from({ length: n }, (_, i) => ({ text: 'abcdefghij'.slice(0, 1 + (i % 10)), label: i % 2 }));
const tiny = () => createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, numKvHeads: 2 }, { seed: 3, task: 'sequence-classification', numLabels: 2 });

describe('ClassificationTask', () => {
  test('one epoch uses every example once; the order is seeded; batches are length-bucketed', () => {
    using m = tiny();
    const train = examples(203);
    const t = new ClassificationTask(m, codec, spec, train, examples(8), { batchSize: 16, maxLength: 12 });
    expect(t.batchesPerEpoch).toBe(13);
    const firstIds = (seed: number) => [...t.batches(0, seed)].map((b) => Array.from(b.batch.inputIds.slice(0, b.batch.shape[1])));
    const seen = (seed: number) => {
      const lengths: number[] = [];
      let total = 0;
      for (const b of t.batches(0, seed)) {
        const [B, T] = b.batch.shape;
        total += B;
        const mask = b.batch.attentionMask as Float32Array;
        const rowLen = Array.from({ length: B }, (_, r) => mask.slice(r * T, r * T + T).reduce((a, v) => a + v, 0));
        expect(Math.max(...rowLen)).toBe(T); // padded to the longest row only
        lengths.push(Math.max(...rowLen) - Math.min(...rowLen));
      }
      return { total, spread: lengths.reduce((a, v) => a + v, 0) / lengths.length };
    };
    const s = seen(5);
    expect(s.total).toBe(203);
    expect(s.spread).toBeLessThan(2); // within a chunk rows are sorted by length: batches hold similar lengths
    expect(firstIds(5)).toEqual(firstIds(5));
    expect(firstIds(5)).not.toEqual(firstIds(6));
  });

  test('overflowing outputs give a NaN loss, a diverged fit and NaN metrics, not an exception', async () => {
    using m = tiny();
    const t = new ClassificationTask(m, codec, spec, examples(32), examples(8), { batchSize: 8, maxLength: 12 });
    const emb = m.parameters().find((p) => p.name === 'score.weight')!;
    emb.tensor.set(new Float32Array(emb.tensor.size).fill(3e38));
    const first = t.batches(0, 1)[Symbol.iterator]().next().value!;
    expect(Number.isNaN(t.lossAndBackward(first).loss)).toBe(true);
    expect(Number.isNaN(t.evaluate().metrics['accuracy']!)).toBe(true);
    const fit = await new Trainer(t, { step: () => ({}) }, { maxSteps: 3, handleSigint: false }).fit();
    expect(fit.diverged).toBe(true);
    expect(fit.state.step).toBe(0);
  });

  test('an optimizer step that meets non-finite values ends the fit as diverged; other errors still throw', async () => {
    using m = tiny();
    const t = new ClassificationTask(m, codec, spec, examples(32), examples(8), { batchSize: 8, maxLength: 12 });
    const failing = (e: Error) => ({ step: () => { throw e; } });
    const fit = await new Trainer(t, failing(new NotFiniteError('x: expected finite values, got NaN or Inf')), { maxSteps: 3, handleSigint: false }).fit();
    expect(fit.diverged).toBe(true);
    expect(fit.history.at(-1)).toMatchObject({ kind: 'step', optimizer: { diverged: true } });
    await expect(new Trainer(t, failing(new InvalidArgumentError('lr: expected a number, got NaN')), { maxSteps: 3, handleSigint: false }).fit()).rejects.toThrow(InvalidArgumentError);
  });
});

describe('CausalLmTask', () => {
  test('documents become BOS-prefixed blocks of the block length; a partial last block is dropped', () => {
    const blocks = tokenBlocks(codec, ['abc', 'defgh'], 4);
    expect(blocks.map((b) => Array.from(b))).toEqual([
      [1, 3, 4, 5],
      [1, 6, 7, 8],
    ]);
    using m = createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, numKvHeads: 2 }, { seed: 3 });
    const t = new CausalLmTask(m, codec, ['abcdefghij', 'abcdefghij', 'abcdefghij'], ['abcdefghij'], { batchSize: 2, blockLength: 8 });
    expect(t.trainBlocks).toBe(4);
    expect(t.devBlocks).toBe(1);
    const r = t.evaluate();
    expect(r.metrics['perplexity']).toBeCloseTo(Math.exp(r.loss), 10);
    expect(r.loss).toBeGreaterThan(0);
  });
});

describe('training code puts a loaded (eval-mode) model in train mode', () => {
  const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'models');
  test.each([
    ['gpt2-lm (CausalLmTask)', 'gpt2-lm'],
    ['bert-cls (ClassificationTask)', 'bert-cls'],
  ])('%s: every optimizer step sees train mode (dropout on); evaluation runs in eval mode', async (_, name) => {
    using m = loadModel(join(FIXTURES, name));
    expect(m.training).toBe(false);
    const t =
      m.task === 'causal-lm'
        ? new CausalLmTask(m, codec, ['abcdefghij'.repeat(4), 'jihgfedcba'.repeat(4)], ['abcdefghij'], { batchSize: 2, blockLength: 8 })
        : new ClassificationTask(m, codec, spec, examples(16), examples(8), { batchSize: 4, maxLength: 12 });
    const first = t.batches(0, 0)[Symbol.iterator]().next().value!;
    const evalLoss = t.evaluate().loss;
    expect(m.training).toBe(false);
    // the training forward applies the checkpoint's dropout (0.1): its loss is not the eval-mode loss of the same batch
    m.zeroGrad();
    const trainLoss = t.lossAndBackward(first).loss;
    expect(m.training).toBe(true);
    m.eval();
    m.zeroGrad();
    const sameBatchEval = m.forward(first.batch).loss!;
    expect(Math.abs(trainLoss - sameBatchEval)).toBeGreaterThan(1e-4);
    expect(Number.isFinite(evalLoss)).toBe(true);
    const modes: boolean[] = [];
    m.eval();
    const fit = await new Trainer(t, { step: () => modes.push(m.training) }, { maxSteps: 3, evalEvery: 1, handleSigint: false }).fit();
    expect(fit.state.step).toBe(3);
    expect(modes).toEqual([true, true, true]);
  });
});
