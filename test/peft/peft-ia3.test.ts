/**
 * IA3 (lib/peft/ia3.ts, ia3-adapter.ts, ia3-kfac.ts): the branch's backward (output and input
 * scaling, torch and Conv1D layouts, with a bias) by finite differences; init at ones leaves the
 * model unchanged; merge/unmerge; typed errors for non-Linear targets; Python PEFT's IA3 adapter
 * (tools/make_peft_ia3_fixture.py) loads with the same logits; save → load → save is byte-stable;
 * a bad folder leaves the model untouched; the K-FAC block equals (G + λI)⁻¹∇l with G the dense
 * empirical Fisher of l.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError, KfacError, Tensor } from '../../lib/index.js';
import { KfacPreconditioner } from '../../lib/kfac/preconditioner.js';
import { loadModel } from '../../lib/models/index.js';
import { Linear } from '../../lib/nn/layers.js';
import { Module } from '../../lib/nn/module.js';
import { applyIa3, ia3State, mergeIa3, removeIa3, unmergeIa3 } from '../../lib/peft/ia3.js';
import { loadIa3Adapter, saveIa3Adapter } from '../../lib/peft/ia3-adapter.js';
import { kfacLayersForIa3 } from '../../lib/peft/ia3-kfac.js';
import { solve } from '../support/dense-layer.js';
import { expectClose, fdGrad, input } from '../support/nn-helpers.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'peft', 'ia3-llama');
const BASE = join(import.meta.dirname, '..', 'fixtures', 'models', 'llama-gqa');

class Net extends Module {
  readonly proj: Linear;
  readonly act: Module;
  constructor(din: number, dout: number, layout: 'linear' | 'conv1d' = 'linear') {
    super();
    this.proj = this.registerModule('proj', new Linear(din, dout, { seed: 2, layout }));
    this.act = this.registerModule('act', new (class extends Module {})());
  }
}

describe('IA3 branch', () => {
  for (const ff of [false, true])
    for (const layout of ['linear', 'conv1d'] as const)
      it(`backward by finite differences (${ff ? 'input' : 'output'} scaling, ${layout})`, () => {
        const [R, din, dout] = [5, 7, 4];
        const net = new Net(din, dout, layout);
        const br = applyIa3(net, { targetModules: 'proj', feedforwardModules: ff ? 'proj' : null }, 3).branches[0]!;
        const n = ff ? din : dout;
        const l = Float64Array.from(input(n, 4).f64, (v) => 1 + v);
        const x = input(R * din, 5).f64;
        const r = input(R * dout, 6).f64;
        const fwd = () => {
          br.vector.weight.tensor.set(Float32Array.from(l));
          return net.proj.forward(Tensor.from(Float32Array.from(x), [R, din])).toArray();
        };
        const wantL = fdGrad(l, fwd, r, 1e-2);
        const wantX = fdGrad(x, fwd, r, 1e-2);
        net.zeroGrad();
        fwd();
        const dx = net.proj.backward(Tensor.from(Float32Array.from(r), [R, dout]))!;
        expectClose(br.vector.weight.grad!.toArray(), wantL, 'dl', 2e-3, 2e-3);
        expectClose(dx.toArray(), wantX, 'dx', 2e-3, 2e-3);
        // merged forward equals the branch's; unmerge restores W and b
        const y = fwd();
        const W0 = net.proj.weight.tensor.toArray();
        const b0 = net.proj.bias!.tensor.toArray();
        mergeIa3(net);
        expectClose(net.proj.forward(Tensor.from(Float32Array.from(x), [R, din])).toArray(), y, 'merged', 1e-5, 1e-5);
        unmergeIa3(net);
        expectClose(net.proj.weight.tensor.toArray(), W0, 'W', 1e-6, 1e-6);
        expectClose(net.proj.bias!.tensor.toArray(), b0, 'b', 1e-6, 1e-6);
      });

  it('only the vectors train, they start at one, and non-Linear targets are typed errors', () => {
    const net = new Net(6, 3);
    expect(() => applyIa3(net, { targetModules: 'act' })).toThrow(ConfigError);
    expect(() => applyIa3(net, { targetModules: 'proj', feedforwardModules: 'act' })).toThrow(ConfigError);
    expect(ia3State(net)).toBeUndefined();
    expect(net.parameters().every((p) => p.trainable)).toBe(true);
    const s = applyIa3(net, { targetModules: ['proj'] });
    expect(s.counts.trainable).toBe(3);
    expect(s.counts.total).toBe(6 * 3 + 3 + 3);
    expect([...s.branches[0]!.l]).toEqual([1, 1, 1]);
    expect(net.parameters().filter((p) => p.trainable).map((p) => p.name)).toEqual(['proj.ia3_l.weight']);
    removeIa3(net);
    expect(net.parameters().map((p) => p.name)).toEqual(['proj.weight', 'proj.bias']);
  });
});

type Exp = { shape: [number, number]; inputIds: number[]; logits: number[] };
const exp = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as Exp;
const logitsOf = (m: ReturnType<typeof loadModel>) => {
  m.eval();
  return m.forward({ inputIds: Int32Array.from(exp.inputIds), shape: exp.shape }).logits.toArray();
};

describe('IA3 in the PEFT format', () => {
  it("loads Python PEFT's IA3 adapter with the same logits; save → load → save is byte-stable", () => {
    using model = loadModel(BASE);
    const plain = logitsOf(model);
    const { state } = loadIa3Adapter(model, FIX);
    expect(state.branches.map((b) => `${b.path}:${b.feedforward}`)).toContain('model.layers.0.mlp.down_proj:true');
    expect(state.branches).toHaveLength(6);
    const got = logitsOf(model);
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i]! - exp.logits[i]!));
    expect(err).toBeLessThan(1e-5);
    expect(Math.max(...plain.map((v, i) => Math.abs(v - exp.logits[i]!)))).toBeGreaterThan(1e-2); // the adapter matters
    const dir = mkdtempSync(join(tmpdir(), 'ia3-'));
    saveIa3Adapter(model, dir);
    expect(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).toContain('"peft_type": "IA3"');
    using m2 = loadModel(BASE);
    loadIa3Adapter(m2, dir);
    const dir2 = mkdtempSync(join(tmpdir(), 'ia3-'));
    saveIa3Adapter(m2, dir2);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) expect(readFileSync(join(dir2, f)).equals(readFileSync(join(dir, f)))).toBe(true);
    // merged logits equal the adapter's
    mergeIa3(m2);
    expect(Math.max(...logitsOf(m2).map((v, i) => Math.abs(v - got[i]!)))).toBeLessThan(1e-5);
  });

  it('a fresh adapter is written as PEFT names it (keys, shapes, feedforward_modules)', () => {
    using model = loadModel(BASE);
    applyIa3(model, { targetModules: ['k_proj', 'v_proj', 'down_proj'], feedforwardModules: ['down_proj'] });
    const dir = mkdtempSync(join(tmpdir(), 'ia3-'));
    saveIa3Adapter(model, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg['peft_type']).toBe('IA3');
    expect(cfg['feedforward_modules']).toEqual(['down_proj']);
    expect(cfg['task_type']).toBe('CAUSAL_LM');
    const bytes = readFileSync(join(dir, 'adapter_model.safetensors'));
    const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString()) as Record<string, { shape: number[] }>;
    expect(header['base_model.model.model.layers.1.self_attn.k_proj.ia3_l']?.shape).toEqual([16, 1]);
    expect(header['base_model.model.model.layers.1.mlp.down_proj.ia3_l']?.shape).toEqual([1, 48]);
  });

  it('a folder with a misshapen or missing vector is a typed error and leaves the model as it was', () => {
    using model = loadModel(BASE);
    const flags = model.parameters().map((p) => p.trainable);
    const dir = mkdtempSync(join(tmpdir(), 'ia3-'));
    const cfg = JSON.parse(readFileSync(join(FIX, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: ['k_proj', 'v_proj', 'down_proj', 'q_proj'] }));
    writeFileSync(join(dir, 'adapter_model.safetensors'), readFileSync(join(FIX, 'adapter_model.safetensors')));
    expect(() => loadIa3Adapter(model, dir)).toThrow(ConfigError);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, feedforward_modules: [] }));
    expect(() => loadIa3Adapter(model, dir)).toThrow(KfacError);
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...cfg, peft_type: 'PREFIX_TUNING' }));
    expect(() => loadIa3Adapter(model, dir)).toThrow(ConfigError);
    expect(ia3State(model)).toBeUndefined();
    expect(model.parameters().map((p) => p.trainable)).toEqual(flags);
    expect(model.parameters().some((p) => p.name.includes('ia3_l'))).toBe(false);
  });
});

describe('K-FAC block of IA3 vectors', () => {
  it('G is the empirical Fisher of l over rows; the step is (G + λI)⁻¹∇l, A = [1]', () => {
    for (const ff of [false, true]) {
      const [R, din, dout] = [11, 5, 4];
      const net = new Net(din, dout);
      const br = applyIa3(net, { targetModules: 'proj', feedforwardModules: ff ? 'proj' : null }).branches[0]!;
      const n = ff ? din : dout;
      br.vector.weight.tensor.set(Float32Array.from(input(n, 7).f64, (v) => 1 + v));
      const x = input(R * din, 8).f32;
      const r = input(R * dout, 9).f32;
      // Dense per-row gradients of l: backward of one row at a time.
      const F = new Float64Array(n * n);
      const grad = new Float64Array(n);
      for (let i = 0; i < R; i++) {
        net.zeroGrad();
        net.proj.forward(Tensor.from(x.subarray(i * din, (i + 1) * din), [1, din]));
        net.proj.backward(Tensor.from(r.subarray(i * dout, (i + 1) * dout), [1, dout]));
        const gi = br.vector.weight.grad!.toArray();
        for (let a = 0; a < n; a++) {
          grad[a]! += gi[a]!;
          for (let b = 0; b < n; b++) F[a * n + b]! += gi[a]! * gi[b]!;
        }
      }
      net.zeroGrad();
      net.proj.forward(Tensor.from(x, [R, din]));
      net.proj.backward(Tensor.from(r, [R, dout]));
      expectClose(br.vector.weight.grad!.toArray(), grad, 'batch gradient', 1e-5, 1e-4);
      const layers = kfacLayersForIa3(net);
      const lam = 0.3;
      const pre = new KfacPreconditioner(layers, { damping: lam, newtonClip: null, lossReduction: 'sum' });
      pre.step({ batchSize: R, lr: 0.1 });
      const fac = pre.factors('proj.ia3_l');
      expect([...fac.A]).toEqual([1]);
      // G is F up to the preconditioner's row normalisation c (fitted, then checked elementwise)
      const c = fac.G[0]! / F[0]!;
      expect(c).toBeGreaterThan(0);
      expectClose(fac.G, F.map((v) => v * c), 'G ∝ dense Fisher', 1e-5, 1e-3);
      const M = F.map((v, i) => v * c + (i % (n + 1) === 0 ? lam : 0));
      expectClose(br.vector.weight.grad!.toArray(), solve(M, grad, n), 'step', 1e-4, 1e-3);
      removeIa3(net);
    }
  });

  it('composes with Newton-step clipping (on by default): a large step is scaled down to the threshold', () => {
    const run = (clip: boolean) => {
      const net = new Net(5, 4);
      applyIa3(net, { targetModules: 'proj' });
      net.proj.forward(Tensor.from(input(20, 1).f32, [4, 5]));
      net.proj.backward(Tensor.from(input(16, 2).f32.map((v) => v * 0.01), [4, 4]));
      const pre = new KfacPreconditioner(kfacLayersForIa3(net), clip ? {} : { newtonClip: null });
      const tel = pre.step({ batchSize: 4, lr: 10 });
      const g = net.proj.parameters('proj.').find((p) => p.name === 'proj.ia3_l.weight')!.grad!.toArray();
      return { tel, norm: Math.hypot(...g) };
    };
    const free = run(false);
    const clipped = run(true);
    expect(clipped.tel.clipped).toBe(true);
    expect(clipped.tel.clipScale).toBeLessThan(1);
    expect(clipped.norm).toBeCloseTo(free.norm * clipped.tel.clipScale, 4);
    expect(clipped.norm).toBeLessThanOrEqual(clipped.tel.clipThreshold * (1 + 1e-5));
  });
});
