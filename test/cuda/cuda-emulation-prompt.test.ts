/**
 * Prompt tuning on the device: the prompt hook writes its rows into the embedding output and
 * gathers their gradient with the embedding and KV-cache-write kernels (no host arrays), so a
 * K-FAC + prompt-tuning step of a tiny GPT-2 under the CUDA emulation follows the CPU (losses
 * 1e-6, prompt table 2e-5 relative, as test/cuda/cuda-emulation-train.test.ts).
 */
import { beforeAll, describe, expect, test } from 'vitest';

import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createGpt2 } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { untrackedTrainable } from '../../lib/peft/bitfit-kfac.js';
import { applyPromptTuning } from '../../lib/peft/prompt.js';
import { kfacLayersForPrompt } from '../../lib/peft/prompt-kfac.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';

type Model = Module & { forward(b: unknown): { loss?: number | null }; backward(): void };

describe.skipIf(!emulationPossible())('prompt tuning under the CUDA emulation', () => {
  beforeAll(() => native()._cudaEmulation());

  test('tiny GPT-2, K-FAC + prompt tuning (3 virtual tokens): three steps follow the CPU', () => {
    const run = (device: 'cpu' | 'cuda') => {
      using m = createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 2, numHeads: 2, maxPositions: 16 }, { seed: 7 }).eval() as unknown as Model;
      if (device === 'cuda') m.to('cuda');
      const s = applyPromptTuning(m, { numVirtualTokens: 3, seed: 2 });
      const layers = kfacLayersForPrompt(m);
      const opt = new KFAC(layers, untrackedTrainable(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2 });
      const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 3 + 1) % 20);
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        m.zeroGrad();
        losses.push(m.forward({ inputIds: ids, shape: [2, 5], labels: ids }).loss!);
        m.backward();
        opt.step({ batchSize: 2 });
      }
      opt.dispose();
      const t = s.hook.prompt.weight.tensor;
      return { losses, table: t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray() };
    };
    const c = run('cpu'), e = run('cuda');
    expect(c.losses[2]).not.toBe(c.losses[0]);
    for (const [i, l] of e.losses.entries()) expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(1e-6);
    expect(maxRel(e.table, c.table)).toBeLessThan(2e-5);
  });
});
