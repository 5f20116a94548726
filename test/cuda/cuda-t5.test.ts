/**
 * T5 on the second device: without a GPU that is the CPU loopback (the CPU kernels registered
 * under the cuda id), so a model moved there must give the CPU's loss, gradients and generated
 * ids exactly — which checks that every value T5 reads or writes from JS (the position bias, its
 * gradient, the decoding logits) goes through a device-safe copy. On a real GPU the nn ops have no
 * cuda kernel, so this suite is skipped there (test/cuda/cuda-placement.test.ts checks that error).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, test } from 'vitest';

import { generateSeq2Seq, loadModel, type T5Model } from '../../lib/models/index.js';
import { applyLora } from '../../lib/peft/index.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { enableLoopback, gpuStatus } from './parity.mjs';

const gpu = gpuStatus();
if (!gpu.ok) enableLoopback();
const DIR = join(import.meta.dirname, '..', 'fixtures', 'models', 't5-v1_1');
const exp = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as { inputIds: number[][]; attentionMask: number[][]; labels: number[][] };

const host = (t: Tensor): number[] => {
  if (t.device === 'cpu') return Array.from(t.toArray());
  using h = t.to('cpu');
  return Array.from(h.toArray());
};

function run(device: 'cpu' | 'cuda') {
  using m = loadModel(DIR) as unknown as T5Model & Disposable;
  if (device === 'cuda') m.to('cuda');
  applyLora(m, { targetModules: 'all-linear', r: 2, seed: 1 });
  for (const p of m.parameters()) if (p.name.includes('relative_attention_bias')) p.trainable = true;
  m.train();
  m.zeroGrad();
  const out = m.forward({ inputIds: Int32Array.from(exp.inputIds.flat()), shape: [2, 7], attentionMask: exp.attentionMask.flat(), labels: Int32Array.from(exp.labels.flat()) });
  m.backward();
  const grads = Object.fromEntries(m.trainableParameters().map((p) => [p.name, host(p.grad!)]));
  const devices = new Set(m.parameters().map((p) => p.tensor.device));
  const ids = Array.from(generateSeq2Seq(m, exp.inputIds[0]!, { maxNewTokens: 5, numBeams: 2 }));
  return { loss: out.loss, grads, devices, ids };
}

describe.skipIf(gpu.ok)('T5 on the CPU loopback device', () => {
  test('loss, LoRA and position-bias gradients, and beam search equal the CPU run exactly', () => {
    const a = run('cpu');
    const b = run('cuda');
    expect([...b.devices]).toEqual(['cuda']);
    expect(b.loss).toBe(a.loss);
    expect(Object.keys(b.grads)).toEqual(Object.keys(a.grads));
    expect(Object.keys(a.grads)).toContain('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight');
    for (const k of Object.keys(a.grads)) expect(b.grads[k], k).toEqual(a.grads[k]);
    expect(b.ids).toEqual(a.ids);
  });
});
