/**
 * K-FAC for LoRA layers (docs/KFAC.md#lora): lora_A sees input a and output gradient s·Bᵀg (factors
 * din×din and r×r), lora_B sees A·a and s·g (r×r and dout×dout), checked against explicit
 * products; lora_A layers reading one input (q, k, v) share one A factor, equal to the one each
 * would have built alone, and the sharing is checked at every update; with B = 0 the first KFAC
 * step is finite and moves B only; a few KFAC steps lower the causal-LM loss of a tiny LLaMA with
 * LoRA on q_proj and v_proj.
 */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { createLlama } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyLora, kfacLayersForLora, untrackedParameters } from '../../lib/peft/index.js';
import { expectClose, input } from '../support/nn-helpers.js';

class Net extends Module {
  readonly proj: Linear;
  constructor(din: number, dout: number) {
    super();
    this.proj = this.registerModule('proj', new Linear(din, dout, { seed: 2 }));
  }
}

const tinyLlama = (seed = 5) => createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed });

function fixedBatch(B: number, T: number, seed: number) {
  let s = seed;
  const ids = Int32Array.from({ length: B * T }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s % 32;
  });
  return { inputIds: ids, shape: [B, T] as const, labels: ids };
}

describe('K-FAC views of LoRA layers', () => {
  it('lora_A sees (a, s·Bᵀg), lora_B sees (A·a, s·g); factor sizes din, r and r, dout', () => {
    const [R, din, dout, r] = [9, 7, 5, 3];
    const net = new Net(din, dout);
    const br = applyLora(net, { targetModules: 'proj', r, alpha: 6 }).branches[0]!;
    const s = br.scale;
    const Bw = input(dout * r, 1).f32;
    br.loraB.weight.tensor.set(Bw);
    const x = input(R * din, 2).f32;
    const g = input(R * dout, 3).f32;
    net.zeroGrad();
    net.proj.forward(Tensor.from(x, [R, din]));
    net.proj.backward(Tensor.from(g, [R, dout]));
    const layers = kfacLayersForLora(net);
    expect(layers.map((l) => l.name)).toEqual(['proj.lora_A', 'proj.lora_B']);
    expect(layers.map((l) => l.weight.name)).toEqual(['proj.lora_A.weight', 'proj.lora_B.weight']);
    expect(layers.every((l) => l.inputKey === undefined)).toBe(true);
    const [la, lb] = layers as [(typeof layers)[0], (typeof layers)[0]];
    const A = br.loraA.weight.tensor.toArray();
    const Aa = new Float64Array(R * r);
    const sBg = new Float64Array(R * r);
    const sg = new Float64Array(R * dout);
    for (let n = 0; n < R; n++) {
      for (let k = 0; k < r; k++) for (let i = 0; i < din; i++) Aa[n * r + k]! += A[k * din + i]! * x[n * din + i]!;
      for (let k = 0; k < r; k++) for (let o = 0; o < dout; o++) sBg[n * r + k]! += s * Bw[o * r + k]! * g[n * dout + o]!;
      for (let o = 0; o < dout; o++) sg[n * dout + o] = s * g[n * dout + o]!;
    }
    expect(la.input().toArray()).toEqual(x);
    expectClose(la.outputGrad().toArray(), sBg, 'lora_A output grad', 1e-6, 1e-5);
    expectClose(lb.input().toArray(), Aa, 'lora_B input', 1e-6, 1e-5);
    expectClose(lb.outputGrad().toArray(), sg, 'lora_B output grad', 1e-6, 1e-6);
    const pre = new KfacPreconditioner(layers, { factorDecay: 0, newtonClip: null });
    pre.step({ batchSize: 1 });
    const fa = pre.factors('proj.lora_A');
    const fb = pre.factors('proj.lora_B');
    expect([fa.A.length, fa.G.length, fb.A.length, fb.G.length]).toEqual([din * din, r * r, r * r, dout * dout]);
    // Every factor is (1/R) Σ_n u_n u_nᵀ of its rows u (batch size 1, so no N² on G):
    // lora_A: A from x, G from s·Bᵀg; lora_B: A from A·x, G from s·g.
    const gram = (u: ArrayLike<number>, d: number) => {
      const out = new Float64Array(d * d);
      for (let n = 0; n < R; n++) for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) out[i * d + j]! += (u[n * d + i]! * u[n * d + j]!) / R;
      return out;
    };
    expectClose(fa.A, gram(x, din), 'A factor of lora_A', 1e-6, 1e-5);
    expectClose(fa.G, gram(sBg, r), 'G factor of lora_A', 1e-6, 1e-5);
    expectClose(fb.A, gram(Aa, r), 'A factor of lora_B', 1e-6, 1e-5);
    expectClose(fb.G, gram(sg, dout), 'G factor of lora_B', 1e-6, 1e-5);
    pre.dispose();
    net.dispose();
  });

  it('q, k, v lora_A layers share one A factor per block (equal to the unshared one); o_proj and dropout do not share; a wrong sharing is caught', () => {
    using m = tinyLlama();
    applyLora(m, { targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'], r: 2 });
    const layers = kfacLayersForLora(m);
    const key = (n: string) => layers.find((l) => l.name === n)!.inputKey;
    const p0 = 'model.layers.0.self_attn';
    expect(key(`${p0}.q_proj.lora_A`)).toBeDefined();
    expect(key(`${p0}.k_proj.lora_A`)).toBe(key(`${p0}.q_proj.lora_A`));
    expect(key(`${p0}.v_proj.lora_A`)).toBe(key(`${p0}.q_proj.lora_A`));
    expect(key('model.layers.1.self_attn.q_proj.lora_A')).not.toBe(key(`${p0}.q_proj.lora_A`));
    expect(key(`${p0}.o_proj.lora_A`)).toBeUndefined();
    expect(key(`${p0}.q_proj.lora_B`)).toBeUndefined();
    const alone = kfacLayersForLora(m, { shareInputs: false });
    expect(alone.every((l) => l.inputKey === undefined)).toBe(true);

    const batch = fixedBatch(2, 6, 1);
    m.zeroGrad();
    m.forward(batch);
    m.backward();
    const shared = new KfacPreconditioner(layers, { factorDecay: 0, newtonClip: null });
    const separate = new KfacPreconditioner(alone, { factorDecay: 0, newtonClip: null });
    shared.step({ batchSize: 2 });
    separate.step({ batchSize: 2 });
    for (const n of ['q_proj', 'k_proj', 'v_proj']) expect(shared.factors(`${p0}.${n}.lora_A`).A).toEqual(separate.factors(`${p0}.${n}.lora_A`).A);
    // Per block: one shared A factor for q/k/v lora_A, one for o_proj's lora_A, four for the lora_B layers.
    const st = shared.stateDict();
    expect(Object.keys(st.meta['factors'] as object).filter((f) => f.startsWith('A:')).length).toBe(2 * 6);
    for (const t of Object.values(st.tensors)) t.dispose();
    // A member that read another tensor: the shared factor is refused.
    const other = Tensor.zeros([2, 6, 16]);
    const kLora = (m.namedModules().find(([p]) => p === `${p0}.k_proj.lora_A`)![1] as Linear);
    kLora.forward(other);
    expect(() => layers.find((l) => l.name === `${p0}.q_proj.lora_A`)!.input()).toThrow(InvalidArgumentError);
    other.dispose();
    shared.dispose();
    separate.dispose();

    using d = tinyLlama();
    applyLora(d, { targetModules: ['q_proj', 'k_proj', 'v_proj'], r: 2, dropout: 0.1 });
    expect(kfacLayersForLora(d).every((l) => l.inputKey === undefined)).toBe(true);
  });

  it('B = 0: the first KFAC step is finite, leaves A and moves B; heads can be tracked too', () => {
    using m = createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 1, numHeads: 4 }, { task: 'sequence-classification', numLabels: 3, seed: 8 });
    const st = applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 4 });
    const layers = kfacLayersForLora(m, { heads: true });
    expect(layers.map((l) => l.name)).toContain('score');
    expect(untrackedParameters(m, layers)).toEqual([]);
    const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.05, damping: 1e-2 });
    const A0 = st.branches.map((b) => b.loraA.weight.tensor.toArray());
    const batch = { inputIds: fixedBatch(3, 5, 2).inputIds, shape: [3, 5] as const, labels: Int32Array.from([0, 2, 1]) };
    m.zeroGrad();
    m.forward(batch);
    m.backward();
    const tel = opt.step({ batchSize: 3 });
    expect(tel.preconditioned).toBe(true);
    expect(Number.isFinite(tel.preClipNorm)).toBe(true);
    for (const [i, b] of st.branches.entries()) {
      const A = b.loraA.weight.tensor.toArray();
      const B = b.loraB.weight.tensor.toArray();
      expect(A).toEqual(A0[i]);
      expect(B.every(Number.isFinite)).toBe(true);
      expect(B.some((v) => v !== 0)).toBe(true);
    }
    // The second step moves A as well.
    m.zeroGrad();
    m.forward(batch);
    m.backward();
    opt.step({ batchSize: 3 });
    expect(st.branches[0]!.loraA.weight.tensor.toArray()).not.toEqual(A0[0]);
    expect(st.branches.every((b) => b.loraA.weight.tensor.toArray().every(Number.isFinite))).toBe(true);
    opt.dispose();
  });

  it('a few KFAC steps lower the causal-LM loss of a tiny LLaMA with LoRA on q_proj and v_proj', () => {
    using m = tinyLlama(11);
    applyLora(m, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
    const layers = kfacLayersForLora(m);
    const opt = new KFAC(layers, untrackedParameters(m, layers), { lr: 0.2, damping: 1e-2, inverseEvery: 2, newtonClip: { maxNorm: 1 } });
    const batch = fixedBatch(4, 8, 3);
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      m.zeroGrad();
      losses.push(m.forward(batch).loss!);
      m.backward();
      opt.step({ batchSize: 4 });
    }
    losses.push(m.forward(batch).loss!);
    expect(losses.every(Number.isFinite)).toBe(true);
    // Seen: 3.57 → 3.39 → 3.22 → … → 3.12, lower at every step.
    for (let i = 1; i < losses.length; i++) expect(losses[i]!).toBeLessThan(losses[i - 1]!);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.2);
    opt.dispose();
  });
});
