/**
 * BitFit (lib/peft/bitfit.ts, bitfit-kfac.ts): only biases train; a model without biases is a
 * typed error; the folder format round-trips byte-stably and a bad folder leaves the model as it
 * came; the bias gradient by finite differences; the K-FAC block is (G + λI)⁻¹∇b with G the dense
 * empirical Fisher of b over rows, A = [1]; it composes with KFAC and the per-parameter policy.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, KfacError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { createGpt2, createLlama } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyBitfit, BitfitError, bitfitState, loadBitfit, saveBitfit } from '../../lib/peft/bitfit.js';
import { kfacLayersForBitfit, untrackedTrainable } from '../../lib/peft/bitfit-kfac.js';
import { solve } from '../support/dense-layer.js';
import { expectClose, fdGrad, input } from '../support/nn-helpers.js';

class Net extends Module {
  readonly proj: Linear;
  constructor(din: number, dout: number) {
    super();
    this.proj = this.registerModule('proj', new Linear(din, dout, { seed: 2 }));
  }
}

const gpt2 = (seed = 1) => createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 1, numHeads: 2, maxPositions: 8 }, { seed });
const batch = { inputIds: Int32Array.from([1, 4, 7, 2, 9, 3, 5, 0, 11, 6]), shape: [2, 5] as const, labels: Int32Array.from([4, 7, 2, 9, 3, 5, 0, 11, 6, 1]) };

describe('BitFit', () => {
  it('trains the biases only; a model without biases (LLaMA) is a typed error', () => {
    using model = gpt2();
    const s = applyBitfit(model);
    const trainable = model.parameters().filter((p) => p.trainable);
    expect(trainable.length).toBeGreaterThan(0);
    expect(trainable.every((p) => p.name.endsWith('.bias'))).toBe(true);
    expect(s.counts.trainable).toBe(trainable.reduce((a, p) => a + p.tensor.size, 0));
    expect(s.summary).toMatch(/^trainable params: /);
    using llama = createLlama({ vocabSize: 16, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, numKvHeads: 1 });
    const flags = llama.parameters().map((p) => p.trainable);
    expect(() => applyBitfit(llama)).toThrow(BitfitError);
    expect(() => applyBitfit(llama)).toThrow(/no bias/);
    expect(llama.parameters().map((p) => p.trainable)).toEqual(flags);
    expect(bitfitState(llama)).toBeUndefined();
    using g2 = gpt2();
    expect(() => applyBitfit(g2, { targetModules: 'nothing_here' })).toThrow(ConfigError);
  });

  it('the folder round-trips byte-stably; a bad folder is a typed error and changes nothing', () => {
    using model = gpt2(1);
    const s = applyBitfit(model, { targetModules: /.*\.(c_attn|c_fc)/ });
    expect(s.biases.map((p) => p.name)).toEqual(['transformer.h.0.attn.c_attn.bias', 'transformer.h.0.mlp.c_fc.bias']);
    for (const p of s.biases) p.tensor.set(input(p.tensor.size, 3).f32);
    const dir = mkdtempSync(join(tmpdir(), 'bitfit-'));
    saveBitfit(model, dir);
    using m2 = gpt2(2);
    loadBitfit(m2, dir);
    const dir2 = mkdtempSync(join(tmpdir(), 'bitfit-'));
    saveBitfit(m2, dir2);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) expect(readFileSync(join(dir2, f)).equals(readFileSync(join(dir, f)))).toBe(true);
    expect(m2.parameters().find((p) => p.name === 'transformer.h.0.attn.c_attn.bias')!.tensor.toArray()).toEqual(s.biases[0]!.tensor.toArray());
    // a config that trains more biases than the file holds: refused, model untouched
    using m3 = gpt2(3);
    const before = m3.parameters().map((p) => [p.trainable, p.tensor.toArray()[0]]);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: null }));
    expect(() => loadBitfit(m3, dir)).toThrow(ConfigError);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, peft_type: 'IA3' }));
    expect(() => loadBitfit(m3, dir)).toThrow(KfacError);
    expect(bitfitState(m3)).toBeUndefined();
    expect(m3.parameters().map((p) => [p.trainable, p.tensor.toArray()[0]])).toEqual(before);
  });

  it('bias gradient by finite differences; K-FAC: G is the dense empirical Fisher of b, the step (G + λI)⁻¹∇b', () => {
    const [R, din, dout] = [9, 5, 4];
    const net = new Net(din, dout);
    applyBitfit(net);
    const x = input(R * din, 1).f32;
    const r = input(R * dout, 2).f64;
    const b = Float64Array.from(net.proj.bias!.tensor.toArray());
    const want = fdGrad(b, () => {
      net.proj.bias!.tensor.set(Float32Array.from(b));
      return net.proj.forward(Tensor.from(x, [R, din])).toArray();
    }, r, 1e-2);
    net.proj.bias!.tensor.set(Float32Array.from(b));
    const F = new Float64Array(dout * dout);
    for (let i = 0; i < R; i++) for (let a = 0; a < dout; a++) for (let c = 0; c < dout; c++) F[a * dout + c]! += r[i * dout + a]! * r[i * dout + c]!;
    net.zeroGrad();
    net.proj.forward(Tensor.from(x, [R, din]));
    net.proj.backward(Tensor.from(Float32Array.from(r), [R, dout]));
    const grad = Float64Array.from(net.proj.bias!.grad!.toArray());
    expectClose(grad, want, 'db', 2e-3, 2e-3);
    expect(net.proj.weight.grad).toBeNull();
    const layers = kfacLayersForBitfit(net);
    expect(layers.map((l) => l.name)).toEqual(['proj.bias']);
    expect(untrackedTrainable(net, layers)).toEqual([]);
    const lam = 0.2;
    const pre = new KfacPreconditioner(layers, { damping: lam, newtonClip: null, lossReduction: 'sum' });
    pre.step({ batchSize: R, lr: 0.1 });
    const fac = pre.factors('proj.bias');
    expect([...fac.A]).toEqual([1]);
    const c = fac.G[0]! / F[0]!;
    expect(c).toBeGreaterThan(0);
    expectClose(fac.G, F.map((v) => v * c), 'G ∝ dense Fisher', 1e-5, 1e-3);
    const M = F.map((v, i) => v * c + (i % (dout + 1) === 0 ? lam : 0));
    expectClose(net.proj.bias!.grad!.toArray(), solve(M, grad, dout), 'step', 1e-4, 1e-3);
  });

  it('a few KFAC steps (Newton clip on, layer-norm biases by AdamW) lower the loss of a tiny GPT-2', () => {
    using model = gpt2(4);
    applyBitfit(model);
    const layers = kfacLayersForBitfit(model);
    const extra = untrackedTrainable(model, layers);
    expect(layers.length).toBeGreaterThan(0);
    expect(extra.some((p) => p.name.includes('ln'))).toBe(true);
    const opt = new KFAC(layers, extra, { lr: 0.05 });
    const loss = () => {
      model.zeroGrad();
      const out = model.forward(batch);
      model.backward();
      return out.loss!;
    };
    const first = loss();
    for (let i = 0; i < 8; i++) {
      if (i > 0) loss();
      opt.step({ batchSize: 2 });
    }
    const last = loss();
    expect(Number.isFinite(last)).toBe(true);
    expect(last).toBeLessThan(first);
  });
});
