/**
 * The models compose with the optimizers: a few AdamW steps on a fixed batch lower the loss,
 * for full fine-tuning and for a bias-only (BitFit-style) selection of trainable parameters.
 * (The GPT-2 case starts from std 0.2 weights: at std 0.02 the two sequences' last-token states
 * are too alike for biases alone to separate them in a few steps.)
 */
import { describe, expect, test } from 'vitest';

import { createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import type { TransformerModel } from '../../lib/models/index.js';
import { AdamW } from '../../lib/optim/index.js';

function fit(m: TransformerModel, batch: Parameters<TransformerModel['forward']>[0], steps: number, lr: number): number[] {
  m.zeroGrad();
  const opt = new AdamW(m.trainableParameters(), { lr, weightDecay: 0 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    m.zeroGrad();
    losses.push(m.forward(batch).loss!);
    m.backward();
    opt.step();
  }
  return losses;
}

describe('training with AdamW', () => {
  const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 3) % 30);

  test('LLaMA causal LM, all parameters', () => {
    using m = createLlama({ vocabSize: 30, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 1 });
    const l = fit(m, { inputIds: ids, shape: [2, 8], labels: ids }, 15, 1e-2);
    expect(l[l.length - 1]!).toBeLessThan(0.5 * l[0]!);
  });

  test('GPT-2 classification, biases and head only (frozen weights get no gradient)', () => {
    using m = createGpt2({ vocabSize: 30, hiddenSize: 16, numLayers: 2, numHeads: 4, maxPositions: 16, residDropout: 0, embdDropout: 0, attnDropout: 0 }, { seed: 2, task: 'sequence-classification', initStd: 0.2 });
    m.freeze();
    for (const p of m.parameters()) if (p.name.endsWith('.bias') || p.name.startsWith('score.')) p.trainable = true;
    const l = fit(m, { inputIds: ids, shape: [2, 8], labels: Int32Array.of(0, 1) }, 15, 3e-2);
    expect(l[l.length - 1]!).toBeLessThan(0.5 * l[0]!);
    for (const p of m.parameters()) if (!p.trainable) expect(p.grad, p.name).toBeNull();
  });

  test('BERT regression in training mode (dropout on)', () => {
    using m = createBert({ vocabSize: 30, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4, hiddenDropout: 0.1 }, { seed: 3, task: 'regression' });
    m.train();
    const l = fit(m, { inputIds: ids, shape: [2, 8], labels: Float32Array.of(1.5, -0.5) }, 30, 1e-2);
    expect(l[l.length - 1]!).toBeLessThan(0.2 * l[0]!);
  });
});
