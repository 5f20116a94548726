/**
 * Bottleneck adapters (lib/peft/bottleneck.ts, bottleneck-io.ts, bottleneck-kfac.ts): the
 * branch's backward by finite differences (each non-linearity, with and without residual, torch
 * and Conv1D layouts); a fresh adapter leaves the model's logits unchanged; Houlsby adapts
 * attention and feed-forward outputs, Pfeiffer feed-forward only; unknown layouts are typed
 * errors that leave the model untouched; the folder round-trips byte-stably and a bad folder
 * changes nothing; the K-FAC blocks are ordinary linear blocks whose factors are the grams of the
 * adapter's rows, and for one row A ⊗ G is the dense empirical Fisher of the weight.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, KfacError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyBottleneck, bottleneckState, removeBottleneck } from '../../lib/peft/bottleneck.js';
import { loadBottleneck, saveBottleneck } from '../../lib/peft/bottleneck-io.js';
import { kfacLayersForBottleneck } from '../../lib/peft/bottleneck-kfac.js';
import { untrackedTrainable } from '../../lib/peft/bitfit-kfac.js';
import { expectClose, fdGrad, input } from '../support/nn-helpers.js';

class Net extends Module {
  readonly proj: Linear;
  constructor(din: number, dout: number, layout: 'linear' | 'conv1d' = 'linear') {
    super();
    this.proj = this.registerModule('proj', new Linear(din, dout, { seed: 2, layout }));
  }
}

const gpt2 = (seed = 1) => createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 2, numHeads: 2, maxPositions: 8 }, { seed });
const llama = (seed = 5) => createLlama({ vocabSize: 20, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed });
const batch = { inputIds: Int32Array.from([1, 4, 7, 2, 9, 3, 5, 0, 11, 6]), shape: [2, 5] as const, labels: Int32Array.from([4, 7, 2, 9, 3, 5, 0, 11, 6, 1]) };

function randomise(s: ReturnType<typeof applyBottleneck>, seed: number): void {
  for (const [i, b] of s.branches.entries())
    for (const [j, p] of [b.down.weight, b.down.bias!, b.up.weight, b.up.bias!].entries()) p.tensor.set(input(p.tensor.size, seed + 10 * i + j, 0.5).f32);
}

describe('bottleneck adapter branch', () => {
  const cases = [
    ['relu', true, 'linear'],
    ['gelu', true, 'conv1d'],
    ['silu', false, 'linear'],
    ['gelu', false, 'conv1d'],
  ] as const;
  for (const [act, residual, layout] of cases)
    it(`backward by finite differences (${act}, residual ${residual}, ${layout})`, () => {
      const [R, din, dout] = [5, 7, 6];
      const net = new Net(din, dout, layout);
      const s = applyBottleneck(net, { ffnModules: 'proj', reductionFactor: 2, nonLinearity: act, residual, scaling: 0.7 });
      const b = s.branches[0]!;
      expect([b.size, b.down.weight.tensor.shape, b.up.weight.tensor.shape]).toEqual([3, [3, dout], [dout, 3]]);
      randomise(s, 20);
      const params = [b.down.weight, b.down.bias!, b.up.weight, b.up.bias!];
      const vals = params.map((p) => Float64Array.from(p.tensor.toArray()));
      const x = input(R * din, 5).f64;
      const r = input(R * dout, 6).f64;
      const fwd = () => {
        params.forEach((p, i) => p.tensor.set(Float32Array.from(vals[i]!)));
        return net.proj.forward(Tensor.from(Float32Array.from(x), [R, din])).toArray();
      };
      const h = act === 'relu' ? 2e-3 : 1e-2; // a small step keeps relu's differences off its kink
      const want = [...vals.map((v) => fdGrad(v, fwd, r, h)), fdGrad(x, fwd, r, h)];
      net.zeroGrad();
      fwd();
      const dx = net.proj.backward(Tensor.from(Float32Array.from(r), [R, dout]))!;
      params.forEach((p, i) => expectClose(p.grad!.toArray(), want[i]!, `d param ${i}`, 3e-3, 3e-3));
      expectClose(dx.toArray(), want[4]!, 'dx', 3e-3, 3e-3);
      removeBottleneck(net);
    });

  it('a fresh residual adapter is the identity; Houlsby adapts attention and FFN outputs, Pfeiffer FFN only', () => {
    for (const make of [gpt2, llama]) {
      using model = make();
      const before = model.logits(batch);
      const h = applyBottleneck(model, { kind: 'houlsby', reductionFactor: 4 });
      expect(h.branches.map((b) => b.site)).toEqual(['attention', 'ffn', 'attention', 'ffn']);
      expect(h.counts.trainable).toBe(h.branches.reduce((n, b) => n + 2 * b.size * b.base.outFeatures + b.size + b.base.outFeatures, 0));
      expectClose(model.logits(batch), before, 'identity at start', 1e-6, 1e-6);
      removeBottleneck(model);
      const p = applyBottleneck(model, { reductionFactor: 4, nonLinearity: 'gelu' });
      expect(p.branches.map((b) => b.path)).toEqual(make === gpt2 ? ['transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_proj'] : ['model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj']);
      removeBottleneck(model);
    }
    using bert = createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, maxPositions: 8 }, { seed: 1 });
    const s = applyBottleneck(bert, { kind: 'houlsby' });
    expect(s.branches.map((b) => b.path)).toEqual(['bert.encoder.layer.0.attention.output.dense', 'bert.encoder.layer.0.output.dense']);
    expect(s.modulesToSave).toContain('classifier');
  });

  it('an unknown module layout or a non-Linear site is a typed error that leaves the model as it was', () => {
    const net = new Net(4, 4);
    const flags = () => net.parameters().map((p) => p.trainable);
    const f0 = flags();
    expect(() => applyBottleneck(net)).toThrow(ConfigError);
    expect(() => applyBottleneck(net)).toThrow(/not one bottleneck adapters know/);
    expect(() => applyBottleneck(net, { kind: 'houlsby', ffnModules: 'proj' })).toThrow(/no attention output projection/);
    expect(() => applyBottleneck(net, { ffnModules: '' })).toThrow(KfacError);
    expect(() => applyBottleneck(net, { nonLinearity: 'tanh' as never, ffnModules: 'proj' })).toThrow(/nonLinearity/);
    expect(flags()).toEqual(f0);
    expect(net.proj.adapter).toBeNull();
    expect(bottleneckState(net)).toBeUndefined();
  });
});

describe('bottleneck adapter folder', () => {
  it('round-trips byte-stably with the same logits; a bad folder is a typed error and changes nothing', () => {
    using model = gpt2();
    const s = applyBottleneck(model, { kind: 'houlsby', reductionFactor: 2, nonLinearity: 'silu', scaling: 2 });
    randomise(s, 40);
    const want = model.logits(batch);
    const dir = mkdtempSync(join(tmpdir(), 'bn-'));
    saveBottleneck(model, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'BOTTLENECK', format_version: 1, kind: 'houlsby', reduction_factor: 2, non_linearity: 'silu', residual: true, scaling: 2 });
    expect(cfg.attention_modules).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']);
    using m2 = gpt2();
    loadBottleneck(m2, dir);
    expectClose(m2.logits(batch), want, 'loaded logits', 1e-6, 1e-6);
    const dir2 = mkdtempSync(join(tmpdir(), 'bn-'));
    saveBottleneck(m2, dir2);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) expect(readFileSync(join(dir2, f))).toEqual(readFileSync(join(dir, f)));
    // a misshapen tensor (reduction factor changed in the config), then a missing adapter path
    using m3 = gpt2();
    const flags = m3.parameters().map((p) => p.trainable);
    const bad = (edit: (c: Record<string, unknown>) => void, msg: RegExp) => {
      const d = mkdtempSync(join(tmpdir(), 'bn-'));
      const c = structuredClone(cfg);
      edit(c);
      writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(c));
      writeFileSync(join(d, 'adapter_model.safetensors'), readFileSync(join(dir, 'adapter_model.safetensors')));
      expect(() => loadBottleneck(m3, d)).toThrow(msg);
      expect(bottleneckState(m3)).toBeUndefined();
      expect(m3.namedModules().some(([p]) => p.includes('adapter_'))).toBe(false);
      expect(m3.parameters().map((p) => p.trainable)).toEqual(flags);
    };
    bad((c) => (c['reduction_factor'] = 4), /shape/);
    bad((c) => (c['attention_modules'] = ['transformer.h.0.attn.c_proj', 'transformer.h.9.attn.c_proj']), /not an output projection/);
    bad((c) => {
      c['kind'] = 'pfeiffer';
      c['attention_modules'] = [];
    }, /neither an adapter parameter/);
    bad((c) => (c['peft_type'] = 'LORA'), /not a bottleneck-adapter folder/);
  });
});

describe('K-FAC blocks of bottleneck adapters', () => {
  it('down and up are linear blocks with bias: factors are the grams of their rows; one row gives the dense Fisher', () => {
    const [R, din, dout] = [6, 5, 8];
    const net = new Net(din, dout);
    const s = applyBottleneck(net, { ffnModules: 'proj', reductionFactor: 4, nonLinearity: 'gelu' });
    randomise(s, 60);
    const b = s.branches[0]!;
    const layers = kfacLayersForBottleneck(net);
    expect(layers.map((l) => [l.name, l.weight.name, l.bias?.name])).toEqual([
      ['proj.adapter_down', 'proj.adapter_down.weight', 'proj.adapter_down.bias'],
      ['proj.adapter_up', 'proj.adapter_up.weight', 'proj.adapter_up.bias'],
    ]);
    let grads: { dW: Float32Array; db: Float32Array }[] = [];
    const run = (rows: number) => {
      net.zeroGrad();
      net.proj.forward(Tensor.from(input(rows * din, 2).f32, [rows, din]));
      net.proj.backward(Tensor.from(input(rows * dout, 3).f32, [rows, dout]));
      grads = [b.down, b.up].map((m) => ({ dW: m.weight.grad!.toArray(), db: m.bias!.grad!.toArray() })); // before the step rewrites them
      const pre = new KfacPreconditioner(layers, { factorDecay: 0, newtonClip: null });
      pre.step({ batchSize: 1 });
      const f = layers.map((l) => pre.factors(l.name));
      pre.dispose();
      return f;
    };
    const gram = (u: ArrayLike<number>, rows: number, d: number, bias: boolean) => {
      const D = d + (bias ? 1 : 0);
      const out = new Float64Array(D * D);
      const at = (n: number, i: number) => (i < d ? u[n * d + i]! : 1);
      for (let n = 0; n < rows; n++) for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) out[i * D + j]! += (at(n, i) * at(n, j)) / rows;
      return out;
    };
    const f = run(R);
    const m = b.size;
    // down: input h (the projection's output), output gradient f′ ⊙ upᵀ s g; up: input f(down h), output gradient s g
    expectClose(f[0]!.A, gram(b.down.input!.toArray(), R, dout, true), 'A of down', 1e-6, 1e-5);
    expectClose(f[0]!.G, gram(b.down.outputGrad!.toArray(), R, m, false), 'G of down', 1e-6, 1e-5);
    expectClose(f[1]!.A, gram(b.up.input!.toArray(), R, m, true), 'A of up', 1e-6, 1e-5);
    expectClose(f[1]!.G, gram(b.up.outputGrad!.toArray(), R, dout, false), 'G of up', 1e-6, 1e-5);
    // one row: the empirical Fisher vec(∇[W|b]) vec(∇[W|b])ᵀ equals A ⊗ G exactly (row-major [W|b] index o·(din+1)+i)
    const one = run(1);
    for (const [k, mod] of [b.down, b.up].entries()) {
      const { dW, db } = grads[k]!;
      const [o, i] = [mod.outFeatures, mod.inFeatures];
      const v = Float64Array.from({ length: o * (i + 1) }, (_, n) => (n % (i + 1) < i ? dW[Math.floor(n / (i + 1)) * i + (n % (i + 1))]! : db[Math.floor(n / (i + 1))]!));
      const { A, G } = one[k]!;
      const kron = new Float64Array(v.length * v.length);
      const dense = new Float64Array(v.length * v.length);
      for (let p = 0; p < v.length; p++)
        for (let q = 0; q < v.length; q++) {
          const [op, ip, oq, iq] = [Math.floor(p / (i + 1)), p % (i + 1), Math.floor(q / (i + 1)), q % (i + 1)];
          kron[p * v.length + q] = G[op * o + oq]! * A[ip * (i + 1) + iq]!;
          dense[p * v.length + q] = v[p]! * v[q]!;
        }
      expectClose(kron, dense, `A ⊗ G = dense Fisher (${mod === b.down ? 'down' : 'up'})`, 1e-5, 1e-4);
    }
    net.dispose();
  });

  it('a few KFAC steps (Newton clip on) lower the loss of a tiny LLaMA with Houlsby adapters', () => {
    using model = llama();
    applyBottleneck(model, { kind: 'houlsby', reductionFactor: 4 });
    const layers = kfacLayersForBottleneck(model);
    expect(layers.length).toBe(8);
    expect(untrackedTrainable(model, layers)).toEqual([]);
    const opt = new KFAC(layers, [], { lr: 0.05 });
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
