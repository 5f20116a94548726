/**
 * LoRA layers: y = base(x) + s·B(A(dropout(x))). Gradients of x, A and B against central
 * differences of a float64 reference forward (both weight layouts); the dropout branch against
 * the explicit formula with the mask it used; a frozen base gets no gradient; merged forward
 * equals the unmerged one within 1e-5 and unmerge restores the weights; initialisation
 * (Kaiming-uniform / Gaussian A, zero B) and scaling (alpha/r, rsLoRA alpha/√r); targeting by name,
 * list, pattern; modules to save; parameter counts; typed errors.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError, InvalidArgumentError, Tensor } from '../../lib/index.js';
import { createBert, createGpt2, createLlama } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyLora, countParameters, loraState, mergeLora, printTrainableParameters, removeLora, unmergeLora } from '../../lib/peft/index.js';
import { expectClose, fdGrad, input } from '../support/nn-helpers.js';

class Net extends Module {
  readonly proj: Linear;
  constructor(din: number, dout: number, layout: 'linear' | 'conv1d', seed = 1) {
    super();
    this.proj = this.registerModule('proj', new Linear(din, dout, { layout, seed }));
  }
  forward(x: Tensor): Tensor {
    return this.proj.forward(x);
  }
}

/** y[r, o] = Σ_i x W + b + s·Σ_k (Σ_i x[r,i] A[k,i]) B[o,k], all float64. */
function refForward(x: Float64Array, W: Float64Array, b: Float64Array, A: Float64Array, B: Float64Array, R: number, din: number, dout: number, r: number, s: number, conv: boolean): Float64Array {
  const y = new Float64Array(R * dout);
  for (let n = 0; n < R; n++) {
    const h = new Float64Array(r);
    for (let k = 0; k < r; k++) for (let i = 0; i < din; i++) h[k]! += x[n * din + i]! * A[k * din + i]!;
    for (let o = 0; o < dout; o++) {
      let v = b[o]!;
      for (let i = 0; i < din; i++) v += x[n * din + i]! * (conv ? W[i * dout + o]! : W[o * din + i]!);
      for (let k = 0; k < r; k++) v += s * h[k]! * B[o * r + k]!;
      y[n * dout + o] = v;
    }
  }
  return y;
}

describe('LoRA layer', () => {
  it.each(['linear', 'conv1d'] as const)('%s layout: dx, dA, dB match finite differences; the frozen base gets no gradient', (layout) => {
    const [R, din, dout, r, alpha] = [6, 7, 5, 3, 6];
    const net = new Net(din, dout, layout);
    const st = applyLora(net, { targetModules: 'proj', r, alpha });
    const br = st.branches[0]!;
    expect(br.scale).toBe(alpha / r);
    const Bv = input(dout * r, 11);
    br.loraB.weight.tensor.set(Bv.f32); // B ≠ 0 so that dA is not trivially zero
    const x = input(R * din, 12);
    const rr = input(R * dout, 13).f64;
    const xt = Tensor.from(x.f32, [2, 3, din]);
    net.zeroGrad();
    net.forward(xt);
    const dx = net.proj.backward(Tensor.from(Float32Array.from(rr), [2, 3, dout]))!.toArray();
    const W = Float64Array.from(net.proj.weight.tensor.toArray());
    const b = Float64Array.from(net.proj.bias!.tensor.toArray());
    const A = Float64Array.from(br.loraA.weight.tensor.toArray());
    const B = Float64Array.from(Bv.f32);
    const xs = Float64Array.from(x.f32);
    const f = () => refForward(xs, W, b, A, B, R, din, dout, r, br.scale, layout === 'conv1d');
    expectClose(net.proj.forward(xt).toArray(), f(), 'forward', 1e-5, 1e-5);
    expectClose(dx, fdGrad(xs, f, rr), 'dx');
    expectClose(br.loraA.weight.grad!.toArray(), fdGrad(A, f, rr), 'dA');
    expectClose(br.loraB.weight.grad!.toArray(), fdGrad(B, f, rr), 'dB');
    expect(net.proj.weight.grad).toBeNull();
    expect(net.proj.bias!.grad).toBeNull();
    expect(net.parameters().filter((p) => p.trainable).map((p) => p.name)).toEqual(['proj.lora_A.weight', 'proj.lora_B.weight']);
    net.dispose();
  });

  it('with dropout: the branch sees the masked input, and dx, dA, dB follow the formula with that mask', () => {
    const [R, din, dout, r, p] = [8, 9, 4, 2, 0.5];
    const net = new Net(din, dout, 'linear');
    const br = applyLora(net, { targetModules: ['proj'], r, alpha: 4, dropout: p, seed: 3 }).branches[0]!;
    br.loraB.weight.tensor.set(input(dout * r, 21).f32);
    const x = input(R * din, 22).f32;
    const g = input(R * dout, 23).f32;
    net.zeroGrad();
    net.forward(Tensor.from(x, [R, din]));
    const dx = net.proj.backward(Tensor.from(g, [R, dout]))!.toArray();
    const xd = br.loraA.input!.toArray();
    let dropped = 0;
    for (let i = 0; i < xd.length; i++) {
      if (xd[i] === 0) dropped++;
      else expect(xd[i]! / x[i]!).toBeCloseTo(1 / (1 - p), 5);
    }
    expect(dropped).toBeGreaterThan(R * din * 0.2);
    expect(dropped).toBeLessThan(R * din * 0.8);
    const W = net.proj.weight.tensor.toArray();
    const A = br.loraA.weight.tensor.toArray();
    const B = br.loraB.weight.tensor.toArray();
    const s = br.scale;
    const wantDx = new Float64Array(R * din);
    const wantDA = new Float64Array(r * din);
    const wantDB = new Float64Array(dout * r);
    for (let n = 0; n < R; n++) {
      const h = new Float64Array(r);
      for (let k = 0; k < r; k++) for (let i = 0; i < din; i++) h[k]! += xd[n * din + i]! * A[k * din + i]!;
      const gb = new Float64Array(r); // s·Bᵀg
      for (let k = 0; k < r; k++) for (let o = 0; o < dout; o++) gb[k]! += s * g[n * dout + o]! * B[o * r + k]!;
      for (let o = 0; o < dout; o++) for (let k = 0; k < r; k++) wantDB[o * r + k]! += s * g[n * dout + o]! * h[k]!;
      for (let k = 0; k < r; k++) for (let i = 0; i < din; i++) wantDA[k * din + i]! += gb[k]! * xd[n * din + i]!;
      for (let i = 0; i < din; i++) {
        let v = 0;
        for (let o = 0; o < dout; o++) v += g[n * dout + o]! * W[o * din + i]!;
        let u = 0;
        for (let k = 0; k < r; k++) u += gb[k]! * A[k * din + i]!;
        wantDx[n * din + i] = v + (xd[n * din + i] === 0 ? 0 : u / (1 - p));
      }
    }
    expectClose(dx, wantDx, 'dx', 1e-5, 1e-4);
    expectClose(br.loraA.weight.grad!.toArray(), wantDA, 'dA', 1e-5, 1e-4);
    expectClose(br.loraB.weight.grad!.toArray(), wantDB, 'dB', 1e-5, 1e-4);
    // Eval mode: no dropout, the branch reads x itself.
    net.eval();
    net.forward(Tensor.from(x, [R, din]));
    expect(br.loraA.input!.toArray()).toEqual(x);
    net.dispose();
  });

  it.each(['linear', 'conv1d'] as const)('%s layout: merged forward equals unmerged within 1e-5; unmerge restores W; backward refuses a merged layer', (layout) => {
    const net = new Net(33, 17, layout, 5);
    const W0 = net.proj.weight.tensor.toArray();
    const br = applyLora(net, { targetModules: /proj/, r: 4, alpha: 16 }).branches[0]!;
    br.loraB.weight.tensor.set(input(17 * 4, 31, 0.3).f32);
    const x = Tensor.from(input(5 * 33, 32).f32, [5, 33]);
    const un = net.forward(x).toArray();
    mergeLora(net);
    expect(br.merged).toBe(true);
    const me = net.forward(x).toArray();
    let worst = 0;
    for (let i = 0; i < un.length; i++) worst = Math.max(worst, Math.abs(un[i]! - me[i]!));
    expect(worst).toBeLessThan(1e-5);
    // the merged weight is W0 + s·B·A (conv1d stores Wᵀ), in float64
    const A = br.loraA.weight.tensor.toArray();
    const B = br.loraB.weight.tensor.toArray();
    const Wm = net.proj.weight.tensor.toArray();
    const want = new Float64Array(W0.length);
    for (let o = 0; o < 17; o++)
      for (let i = 0; i < 33; i++) {
        let ba = 0;
        for (let k = 0; k < 4; k++) ba += B[o * 4 + k]! * A[k * 33 + i]!;
        const at = layout === 'linear' ? o * 33 + i : i * 17 + o;
        want[at] = W0[at]! + br.scale * ba;
      }
    expect(br.scale).toBe(16 / 4);
    expectClose(Wm, want, 'merged weight', 1e-6, 1e-5);
    expect(() => net.proj.backward(Tensor.zeros([5, 17]))).toThrow(InvalidArgumentError);
    unmergeLora(net);
    const W1 = net.proj.weight.tensor.toArray();
    for (let i = 0; i < W0.length; i++) expect(Math.abs(W1[i]! - W0[i]!)).toBeLessThan(1e-6);
    expectClose(net.forward(x).toArray(), un, 'unmerged again', 1e-6, 1e-6);
    removeLora(net);
    expect(net.proj.adapter).toBeNull();
    expect(net.parameters().map((p) => p.name)).toEqual(['proj.weight', 'proj.bias']);
    net.dispose();
  });

  it('initialisation: Kaiming-uniform (a = √5) or Gaussian A, zero B; scale alpha/r or alpha/√r', () => {
    const din = 400;
    const net = new Net(din, 300, 'linear');
    const k = applyLora(net, { targetModules: 'proj', r: 16, alpha: 32 }).branches[0]!;
    const A = k.loraA.weight.tensor.toArray();
    const bound = 1 / Math.sqrt(din);
    let mx = 0;
    let sq = 0;
    for (const v of A) {
      mx = Math.max(mx, Math.abs(v));
      sq += v * v;
    }
    expect(mx).toBeLessThanOrEqual(bound);
    expect(mx).toBeGreaterThan(0.99 * bound);
    expect(Math.sqrt(sq / A.length)).toBeCloseTo(bound / Math.sqrt(3), 3); // variance of U(±b) is b²/3
    expect(k.loraB.weight.tensor.toArray().every((v) => v === 0)).toBe(true);
    expect(k.scale).toBe(2);
    removeLora(net);
    const g = applyLora(net, { targetModules: 'proj', r: 16, alpha: 32, init: 'gaussian', useRslora: true }).branches[0]!;
    const Ag = g.loraA.weight.tensor.toArray();
    let s2 = 0;
    for (const v of Ag) s2 += v * v;
    expect(Math.sqrt(s2 / Ag.length)).toBeCloseTo(1 / 16, 2);
    expect(g.scale).toBeCloseTo(32 / 4, 12);
    net.dispose();
  });

  it('a LoRA model starts equal to its base (B = 0); only lora and head parameters train; counts', () => {
    const cfg = { vocabSize: 30, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 };
    using m = createLlama(cfg, { seed: 3 });
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7) % 30);
    const batch = { inputIds: ids, shape: [2, 6] as const, labels: ids };
    const base = m.forward(batch);
    const before = base.logits.toArray();
    const baseLoss = base.loss!;
    const totalBefore = countParameters(m).total;
    const st = applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
    expect(st.branches.map((b) => b.path)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    const out = m.forward(batch);
    expect(out.logits.toArray()).toEqual(before);
    expect(out.loss).toBe(baseLoss);
    // q: 16 → 16 (4 heads × 4); v: 16 → 8 (2 kv heads × 4); r = 4.
    const lora = 2 * (4 * 16 + 16 * 4 + 4 * 16 + 8 * 4);
    expect(st.counts).toEqual({ trainable: lora, total: totalBefore + lora, percent: (100 * lora) / (totalBefore + lora) });
    expect(st.summary).toBe(`trainable params: ${lora.toLocaleString('en-US')} || all params: ${(totalBefore + lora).toLocaleString('en-US')} || trainable%: ${((100 * lora) / (totalBefore + lora)).toFixed(4)}`);
    expect(printTrainableParameters(m)).toBe(st.summary);
    m.zeroGrad();
    m.forward(batch);
    m.backward();
    for (const p of m.parameters()) {
      if (p.trainable) expect(p.name).toMatch(/lora_[AB]\.weight$/);
      else expect(p.grad).toBeNull();
    }
    // lora_B gets a gradient at once; lora_A's is zero while B = 0.
    const gB = m.parameters().find((p) => p.name.endsWith('q_proj.lora_B.weight'))!.grad!.toArray();
    const gA = m.parameters().find((p) => p.name.endsWith('q_proj.lora_A.weight'))!.grad!.toArray();
    expect(gB.some((v) => v !== 0)).toBe(true);
    expect(gA.every((v) => v === 0)).toBe(true);
  });

  it('targets by name, list, pattern and RegExp across model families; modules to save stay trainable', () => {
    using bert = createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 2, numHeads: 2 });
    const sb = applyLora(bert, { targetModules: ['query', 'value'], r: 2 });
    expect(sb.branches.map((b) => b.path)).toEqual([
      'bert.encoder.layer.0.attention.self.query',
      'bert.encoder.layer.0.attention.self.value',
      'bert.encoder.layer.1.attention.self.query',
      'bert.encoder.layer.1.attention.self.value',
    ]);
    // A sequence classifier keeps its head trainable, as PEFT's SEQ_CLS task does.
    expect(sb.modulesToSave).toEqual(['classifier']);
    expect(bert.parameters().filter((p) => p.trainable && !p.name.includes('lora_')).map((p) => p.name)).toEqual(['classifier.weight', 'classifier.bias']);

    using gpt = createGpt2({ vocabSize: 20, hiddenSize: 8, numLayers: 3, numHeads: 2, maxPositions: 8 });
    const sg = applyLora(gpt, { targetModules: 'transformer\\.h\\.[02]\\.attn\\.c_attn', r: 2 });
    expect(sg.branches.map((b) => b.path)).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.2.attn.c_attn']);
    expect(sg.config.fanInFanOut).toBe(true);
    expect(sg.modulesToSave).toEqual([]);
    expect(loraState(gpt)).toBe(sg);
    expect(() => applyLora(gpt, { targetModules: 'c_attn' })).toThrow(InvalidArgumentError);

    using d = createBert({ modelType: 'distilbert', vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 });
    const sd = applyLora(d, { targetModules: /.*\.(q_lin|v_lin)/, r: 2, modulesToSave: ['classifier'] });
    expect(sd.branches.map((b) => b.path)).toEqual(['distilbert.transformer.layer.0.attention.q_lin', 'distilbert.transformer.layer.0.attention.v_lin']);
    // PEFT matches modules_to_save by suffix: "classifier" also takes pre_classifier.
    expect(sd.modulesToSave).toEqual(['pre_classifier', 'classifier']);

    // 'all-linear': every Linear but the output layer (lm_head) and the heads.
    using all = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2, tieWordEmbeddings: false });
    const sa = applyLora(all, { targetModules: 'all-linear', r: 2 });
    expect(sa.branches.map((b) => b.path.split('.').at(-1))).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    using allBert = createBert({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 });
    const sab = applyLora(allBert, { targetModules: 'all-linear', r: 2 });
    expect(sab.branches.some((b) => b.path.includes('classifier'))).toBe(false);
    expect(sab.branches.map((b) => b.path)).toContain('bert.pooler.dense');

    using l = createLlama({ vocabSize: 20, hiddenSize: 8, intermediateSize: 12, numLayers: 1, numHeads: 2 });
    expect(() => applyLora(l, { targetModules: 'query' })).toThrow(ConfigError);
    expect(() => applyLora(l, { targetModules: 'self_attn' })).toThrow(ConfigError); // not a Linear
    expect(() => applyLora(l, { targetModules: 'q_proj', r: 0 })).toThrow(InvalidArgumentError);
    expect(() => applyLora(l, { targetModules: 'q_proj', dropout: 1 })).toThrow(InvalidArgumentError);
    expect(() => applyLora(l, { targetModules: 'q_proj', fanInFanOut: true })).toThrow(ConfigError);
    expect(() => applyLora(l, { targetModules: [] })).toThrow(InvalidArgumentError);
    expect(() => applyLora(l, { targetModules: 'q_proj', rank: 4 } as never)).toThrow(InvalidArgumentError);
    expect(loraState(l)).toBeUndefined();
    // Nothing was changed by the refused calls.
    expect(l.parameters().every((p) => p.trainable)).toBe(true);
  });
});
