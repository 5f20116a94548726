/**
 * AdamW and SGD against PyTorch: test/fixtures/optim-torch.json holds torch.optim trajectories
 * (20 steps, two parameters, seeded gradients, one parameter without a gradient at steps 5 and
 * 11) written by tools/make-optim-fixtures.py with torch 2.13 (foreach=False, float32).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, NotFiniteError, optim, Tensor } from '../../lib/index.js';
import type { Param } from '../../lib/optim/types.js';

interface Fixture {
  torch: string;
  steps: number;
  shapes: number[][];
  configs: {
    name: string;
    optimizer: 'AdamW' | 'SGD';
    options: Record<string, number | boolean | number[]>;
    init: number[][];
    grads: (number[] | null)[][];
    params: number[][][];
  }[];
}

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'optim-torch.json'), 'utf8')) as Fixture;

function makeOptimizer(kind: string, params: Param[], o: Record<string, number | boolean | number[]>) {
  if (kind === 'AdamW') {
    const opts: optim.AdamWOptions = {};
    if (o['lr'] !== undefined) opts.lr = o['lr'] as number;
    if (o['betas'] !== undefined) opts.betas = o['betas'] as [number, number];
    if (o['eps'] !== undefined) opts.eps = o['eps'] as number;
    if (o['weight_decay'] !== undefined) opts.weightDecay = o['weight_decay'] as number;
    if (o['amsgrad'] !== undefined) opts.amsgrad = o['amsgrad'] as boolean;
    if (o['maximize'] !== undefined) opts.maximize = o['maximize'] as boolean;
    return new optim.AdamW(params, opts);
  }
  const opts: optim.SGDOptions = {};
  if (o['lr'] !== undefined) opts.lr = o['lr'] as number;
  if (o['momentum'] !== undefined) opts.momentum = o['momentum'] as number;
  if (o['dampening'] !== undefined) opts.dampening = o['dampening'] as number;
  if (o['weight_decay'] !== undefined) opts.weightDecay = o['weight_decay'] as number;
  if (o['nesterov'] !== undefined) opts.nesterov = o['nesterov'] as boolean;
  if (o['maximize'] !== undefined) opts.maximize = o['maximize'] as boolean;
  return new optim.SGD(params, opts);
}

function setup(cfg: Fixture['configs'][number]): Param[] {
  return cfg.init.map((v, i) => ({ name: `p${i}`, tensor: Tensor.from(Float32Array.from(v), fixture.shapes[i]!), grad: null }));
}

function setGrads(params: Param[], grads: (number[] | null)[]): void {
  params.forEach((p, i) => {
    p.grad?.dispose();
    const g = grads[i];
    p.grad = g ? Tensor.from(Float32Array.from(g), p.tensor.shape) : null;
  });
}

describe('optimizers match torch.optim', () => {
  it.each(fixture.configs.map((c) => c.name))('%s over 20 steps to 1e-6', (name) => {
    const cfg = fixture.configs.find((c) => c.name === name)!;
    const params = setup(cfg);
    const opt = makeOptimizer(cfg.optimizer, params, cfg.options);
    let worst = 0;
    for (let s = 0; s < fixture.steps; s++) {
      setGrads(params, cfg.grads[s]!);
      opt.step();
      params.forEach((p, i) => {
        const got = p.tensor.toArray();
        const want = cfg.params[s]![i]!;
        for (let j = 0; j < want.length; j++) worst = Math.max(worst, Math.abs(got[j]! - want[j]!) / Math.max(1, Math.abs(want[j]!)));
      });
    }
    expect(worst).toBeLessThanOrEqual(1e-6);
    opt.dispose();
  });

  it('a state dict restores a run exactly (resume = uninterrupted, bit for bit)', () => {
    for (const cfg of fixture.configs) {
      const a = setup(cfg);
      const optA = makeOptimizer(cfg.optimizer, a, cfg.options);
      const b = setup(cfg);
      const optB = makeOptimizer(cfg.optimizer, b, cfg.options);
      for (let s = 0; s < 10; s++) {
        setGrads(a, cfg.grads[s]!);
        optA.step();
        setGrads(b, cfg.grads[s]!);
        optB.step();
      }
      const state = optB.stateDict();
      const values = b.map((p) => p.tensor.toArray());
      optB.dispose();
      const c = cfg.init.map((_, i) => ({ name: `p${i}`, tensor: Tensor.from(values[i]!, fixture.shapes[i]!), grad: null as Tensor | null }));
      const optC = makeOptimizer(cfg.optimizer, c, cfg.options);
      optC.loadStateDict(state);
      for (let s = 10; s < fixture.steps; s++) {
        setGrads(a, cfg.grads[s]!);
        optA.step();
        setGrads(c, cfg.grads[s]!);
        optC.step();
      }
      a.forEach((p, i) => expect(c[i]!.tensor.toArray()).toEqual(p.tensor.toArray()));
    }
  });

  it('learning rates may be functions of the step', () => {
    const p: Param = { name: 'w', tensor: Tensor.from([1, 1]), grad: Tensor.from([1, -1]) };
    const seen: number[] = [];
    const opt = new optim.SGD([p], { lr: (s) => (seen.push(s), 0.1 * (s + 1)) });
    opt.step();
    opt.step();
    expect(seen).toEqual([0, 1]);
    const v = p.tensor.toArray();
    expect(v[0]).toBeCloseTo(1 - 0.1 - 0.2, 6);
    expect(v[1]).toBeCloseTo(1 + 0.1 + 0.2, 6);
  });

  it('rejects bad options and bad learning rates with typed errors', () => {
    const p: Param = { name: 'w', tensor: Tensor.zeros([2]), grad: Tensor.zeros([2]) };
    expect(() => new optim.AdamW([p], { betas: [1, 0.9] })).toThrow(InvalidArgumentError);
    expect(() => new optim.AdamW([p], { lr: -1 })).toThrow(InvalidArgumentError);
    expect(() => new optim.SGD([p], { nesterov: true })).toThrow(InvalidArgumentError);
    expect(() => new optim.SGD([p, p])).toThrow(InvalidArgumentError);
    const bad = new optim.SGD([p], { lr: () => NaN });
    expect(() => bad.step()).toThrow(NotFiniteError);
    const wrong: Param = { name: 'w', tensor: Tensor.zeros([2]), grad: Tensor.zeros([3]) };
    expect(() => new optim.AdamW([wrong]).step()).toThrow(/grad/);
  });

  it('refuses an option it does not have, naming it (a misspelt option is never ignored)', () => {
    const p: Param = { name: 'w', tensor: Tensor.zeros([2]), grad: Tensor.zeros([2]) };
    const unknown = (make: () => unknown, key: string) => {
      let err: unknown;
      try {
        make();
      } catch (e) {
        err = e;
      }
      expect(err, key).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).argument).toBe(key);
      expect((err as Error).message).toMatch(/an unknown option/);
    };
    unknown(() => new optim.AdamW([p], { lr: 1e-3, weight_decay: 0.1 } as never), 'weight_decay');
    unknown(() => new optim.SGD([p], { lr: 1e-3, damping: 0.1 } as never), 'damping');
    unknown(() => new optim.Shampoo([p], { variant: 'soap', inverseEvery: 5 } as never), 'inverseEvery');
    // an option set to undefined is as if absent
    expect(() => new optim.AdamW([p], { lr: 1e-3, momentum: undefined } as never)).not.toThrow();
  });
});

describe('clipGradNorm', () => {
  it('matches torch.nn.utils.clip_grad_norm_ semantics', () => {
    const g1 = Tensor.from([3, 0]);
    const g2 = Tensor.from([0, 4]);
    const r = optim.clipGradNorm([g1, null, g2], 1);
    expect(r.norm).toBeCloseTo(5, 10);
    expect(r.clipped).toBe(true);
    expect(r.scale).toBeCloseTo(1 / (5 + 1e-6), 10);
    const n = Math.hypot(...g1.toArray(), ...g2.toArray());
    expect(n).toBeCloseTo(1, 5);
    const s = optim.clipGradNorm([Tensor.from([0.1])], 1);
    expect(s).toEqual({ norm: expect.closeTo(0.1, 7) as unknown as number, scale: 1, clipped: false });
    expect(() => optim.clipGradNorm([Tensor.from([NaN])], 1)).toThrow(NotFiniteError);
  });
});

describe('schedules', () => {
  it('warm up linearly and decay to the final fraction', () => {
    const f = optim.schedules.warmupCosine(1, 10, 110, 0.1);
    expect(f(0)).toBeCloseTo(0.1);
    expect(f(9)).toBeCloseTo(1);
    expect(f(60)).toBeCloseTo(0.55);
    expect(f(110)).toBeCloseTo(0.1);
    expect(f(500)).toBeCloseTo(0.1);
    const l = optim.schedules.warmupLinear(2, 0, 100);
    expect(l(0)).toBe(2);
    expect(l(50)).toBeCloseTo(1);
    expect(optim.schedules.warmupConstant(1, 4)(1)).toBeCloseTo(0.5);
  });
});
