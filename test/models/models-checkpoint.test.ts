/**
 * Gradient checkpointing per block: the checkpointed forward keeps only each block's input and
 * the backward recomputes the block, so the loss and every gradient must equal the plain path's
 * bit for bit (the same float32 operations in the same order), dropout masks included (the
 * recomputation restores the generators' counters). Two steps are run so that a wrong counter
 * (masks drawn twice per step) shows in the second step. K-FAC reads the blocks' activations
 * through `captureBlockwise` before they are freed: its steps equal the plain path's too, and
 * without the hook the step is the typed "captured nothing" error (the activations are gone).
 * The memory saved is measured in bench (`kfac-peft bench train-step --gradient-checkpointing`).
 */
import { describe, expect, test } from 'vitest';

import { ConfigError } from '../../lib/errors.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import type { Batch, TransformerModel } from '../../lib/models/index.js';
import { captureBlockwise, createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';

function ids(n: number, vocab: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

const B = 2;
const T = 6;
const mask = Float32Array.from({ length: B * T }, (_, i) => (i === B * T - 1 ? 0 : 1));

interface Case {
  name: string;
  make: (checkpointing: boolean) => TransformerModel;
  batch: Batch;
}

const cases: Case[] = [
  {
    name: 'llama (attention dropout)',
    make: (checkpointing) => createLlama({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 3, numHeads: 4, numKvHeads: 2, attentionDropout: 0.1 }, { seed: 3, initStd: 0.2, checkpointing }),
    batch: { inputIds: ids(B * T, 40, 1), shape: [B, T], attentionMask: mask, labels: ids(B * T, 40, 1) },
  },
  {
    name: 'gpt2 (dropout in attention, residual and embeddings)',
    make: (checkpointing) =>
      createGpt2({ vocabSize: 40, hiddenSize: 16, numLayers: 3, numHeads: 4, maxPositions: 16, attnDropout: 0.1, residDropout: 0.1, embdDropout: 0.1 }, { seed: 7, initStd: 0.2, checkpointing }),
    batch: { inputIds: ids(B * T, 40, 3), shape: [B, T], attentionMask: mask, labels: ids(B * T, 40, 3) },
  },
  {
    name: 'bert (dropout, classification)',
    make: (checkpointing) =>
      createBert({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 3, numHeads: 4, hiddenDropout: 0.2, attentionDropout: 0.2 }, { seed: 9, initStd: 0.2, checkpointing }),
    batch: { inputIds: ids(B * T, 40, 4), shape: [B, T], attentionMask: mask, labels: Int32Array.of(1, 0) },
  },
];

/** Two forward/backward passes of a LoRA model in train mode: the losses and every trainable gradient of each. */
function passes(c: Case, checkpointing: boolean, loraDropout: number): { losses: number[]; grads: Map<string, Float32Array>[] } {
  using m = c.make(checkpointing);
  applyLora(m, { targetModules: 'all-linear', r: 2, alpha: 4, dropout: loraDropout, seed: 5 });
  m.train();
  const losses: number[] = [];
  const grads: Map<string, Float32Array>[] = [];
  for (let step = 0; step < 2; step++) {
    m.zeroGrad();
    losses.push(m.forward(c.batch).loss!);
    m.backward();
    grads.push(new Map(m.trainableParameters().map((p) => [p.name, p.grad!.toArray()])));
  }
  expect(m.checkpointBytes > 0).toBe(checkpointing);
  return { losses, grads };
}

describe('gradient checkpointing', () => {
  for (const c of cases)
    test(`${c.name}: LoRA loss and gradients identical to the plain path`, () => {
      const plain = passes(c, false, 0.1);
      const ckpt = passes(c, true, 0.1);
      expect(ckpt.losses).toEqual(plain.losses);
      expect(plain.losses[0]).not.toBe(plain.losses[1]); // the second pass drew other dropout masks
      for (let s = 0; s < 2; s++) {
        expect([...ckpt.grads[s]!.keys()]).toEqual([...plain.grads[s]!.keys()]);
        expect(plain.grads[s]!.size).toBeGreaterThan(6);
        let nonzero = 0;
        for (const [name, g] of plain.grads[s]!) {
          expect(ckpt.grads[s]!.get(name), `${name}, pass ${s + 1}`).toEqual(g);
          if (g.some((v) => v !== 0)) nonzero++;
        }
        expect(nonzero).toBeGreaterThan(3);
      }
    });

  test('lowest trainable block: blocks below it are neither recomputed nor back-propagated', () => {
    const make = (checkpointing: boolean) => {
      const m = createLlama({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 3, numHeads: 4, numKvHeads: 2 }, { seed: 3, initStd: 0.2, checkpointing });
      applyLora(m, { targetModules: 'model\\.layers\\.2\\.self_attn\\.(q_proj|v_proj)', r: 2, alpha: 4, seed: 5 });
      return m;
    };
    using a = make(false);
    using b = make(true);
    const batch = cases[0]!.batch;
    const seen: number[] = [];
    b.onBlockBackward = (ctx) => seen.push(ctx.index);
    for (const m of [a, b]) {
      m.zeroGrad();
      m.forward(batch);
      m.backward();
    }
    expect(seen).toEqual([2]);
    for (const p of a.trainableParameters()) expect(b.trainableParameters().find((q) => q.name === p.name)!.grad!.toArray()).toEqual(p.grad!.toArray());
  });
});

describe('gradient checkpointing with K-FAC', () => {
  function run(checkpointing: boolean, hook: boolean, steps: number): { losses: number[]; adapters: Map<string, Float32Array> } {
    using m = createLlama({ vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 3, numHeads: 4, numKvHeads: 2 }, { seed: 3, initStd: 0.2, checkpointing });
    applyLora(m, { targetModules: 'all-linear', r: 2, alpha: 4, seed: 5 });
    const layers = kfacLayersForLora(m);
    const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2 });
    if (hook) captureBlockwise(m, opt);
    const batch = cases[0]!.batch;
    const losses: number[] = [];
    try {
      for (let i = 0; i < steps; i++) {
        m.zeroGrad();
        losses.push(m.forward(batch).loss!);
        m.backward();
        opt.capture({ batchSize: B }); // what the Trainer does after each backward: the layers outside the blocks, and the end of the micro-batch
        opt.step({ batchSize: B });
      }
    } finally {
      opt.dispose();
    }
    return { losses, adapters: new Map(m.trainableParameters().map((p) => [p.name, p.tensor.toArray()])) };
  }

  test('captured block by block during the backward: the same steps as the plain path', () => {
    const plain = run(false, false, 3);
    const ckpt = run(true, true, 3);
    expect(ckpt.losses).toEqual(plain.losses);
    expect(plain.losses[2]).toBeLessThan(plain.losses[0]!);
    for (const [name, w] of plain.adapters) expect(ckpt.adapters.get(name), name).toEqual(w);
  });

  test('without captureBlockwise the freed activations are a ConfigError naming the layer', () => {
    expect(() => run(true, false, 1)).toThrow(ConfigError);
    expect(() => run(true, false, 1)).toThrow(/model\.layers\.\d\.[a-z_.]+lora_[AB] captured nothing/);
  });
});
