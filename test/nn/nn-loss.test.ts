/** Softmax cross-entropy with an ignore index, and the CrossEntropyLoss module. */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, nn, NotFiniteError, ShapeError, Tensor } from '../../lib/index.js';
import { expectClose, fdGrad, input, poisoned, refCrossEntropy, rng } from '../support/nn-helpers.js';

const F = nn.functional;

function targetsFor(N: number, V: number, seed: number, ignoreShare = 0.25): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: N }, () => (r() < ignoreShare ? -100 : Math.floor(r() * V)));
}

describe('cross-entropy', () => {
  it.each([
    [1, 1],
    [3, 7],
    [7, 33],
    [33, 5],
    [5, 257],
  ])('N=%i V=%i: mean loss over non-ignored rows and dlogits by finite differences', (N, V) => {
    const z = input(N * V, N * 3 + V, 4);
    const t = targetsFor(N, V, N + V);
    if (t.every((v) => v === -100)) t[0] = 0;
    const logits = Tensor.from(z.f32, [N, V]);
    const d = poisoned([N, V]);
    const { loss, count } = F.crossEntropy(logits, t, d);
    expect(count).toBe(t.filter((v) => v !== -100).length);
    const ref = () => [refCrossEntropy(z.f64, t, N, V, -100)];
    expect(Math.abs(loss - ref()[0]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(ref()[0]!)));
    expectClose(d.toArray(), fdGrad(z.f64, ref, [1]), 'dlogits');
    const g = d.toArray();
    for (let n = 0; n < N; n++) if (t[n] === -100) for (let v = 0; v < V; v++) expect(g[n * V + v]).toBe(0);
  });

  it('3-D logits, dscale, in-place gradient, custom ignore index', () => {
    const z = Tensor.randn([2, 3, 5], { seed: 1 });
    const t = Int32Array.from([0, 4, 7, 2, 7, 1]);
    const a = poisoned([2, 3, 5]);
    const r1 = F.crossEntropy(z, t, a, { ignoreIndex: 7, dscale: 3 });
    expect(r1.count).toBe(4);
    const b = z.clone();
    const r2 = F.crossEntropy(b, t, b, { ignoreIndex: 7, dscale: 3 });
    expect(r2.loss).toBe(r1.loss);
    expect(Array.from(b.toArray())).toEqual(Array.from(a.toArray()));
    const c = poisoned([2, 3, 5]);
    F.crossEntropy(z, t, c, { ignoreIndex: 7 });
    expectClose(a.toArray(), c.toArray().map((v) => 3 * v), 'dscale', 1e-6, 1e-6);
  });

  it('all rows ignored: loss 0, count 0, zero gradient (never NaN)', () => {
    const d = poisoned([3, 4]);
    const r = F.crossEntropy(Tensor.randn([3, 4]), Int32Array.from([-100, -100, -100]), d);
    expect(r).toEqual({ loss: 0, count: 0 });
    expect(d.toArray().every((v) => v === 0)).toBe(true);
  });

  it('stable for huge logits (log-sum-exp); non-finite logits are a typed error', () => {
    const z = Tensor.from([1e4, 0, -1e4, 3e4, 3e4, 3e4], [2, 3]);
    const d = Tensor.empty([2, 3]);
    const r = F.crossEntropy(z, Int32Array.from([1, 2]), d);
    expect(r.loss).toBeCloseTo((1e4 + Math.log(3)) / 2, 2);
    expect(d.toArray().every(Number.isFinite)).toBe(true);
    const bad = Tensor.from(new Float32Array([0, Infinity, 1, 2]), [2, 2]);
    expect(() => F.crossEntropy(bad, Int32Array.from([0, 1]))).toThrow(NotFiniteError);
  });

  it('lossTo: the same float64 in two floats, also returned on the CPU; a non-finite loss is left to the reader; bad lossTo is a typed error', () => {
    const N = 9, V = 13;
    const z = input(N * V, 31, 4);
    const t = targetsFor(N, V, 32);
    const d1 = poisoned([N, V]), d2 = poisoned([N, V]);
    const r1 = F.crossEntropy(Tensor.from(z.f32, [N, V]), t, d1);
    const to = Tensor.from(new Float32Array(2).fill(NaN), [2]);
    const r2 = F.crossEntropy(Tensor.from(z.f32, [N, V]), t, d2, { lossTo: to });
    expect(r2).toEqual(r1);
    const pair = to.toArray();
    expect(new Float64Array(pair.buffer, pair.byteOffset, 1)[0]).toBe(r1.loss);
    expect(d2.toArray()).toEqual(d1.toArray());
    // with lossTo the call does not throw on Inf logits: the value is the reader's to check
    const bad = Tensor.from(new Float32Array([0, Infinity, 1, 2]), [2, 2]);
    const r3 = F.crossEntropy(bad, Int32Array.from([0, 1]), null, { lossTo: to });
    expect(Number.isFinite(r3.loss)).toBe(false);
    const p3 = to.toArray();
    expect(Number.isFinite(new Float64Array(p3.buffer, p3.byteOffset, 1)[0]!)).toBe(false);
    const zz = Tensor.randn([2, 3]);
    expect(() => F.crossEntropy(zz, Int32Array.from([0, 1]), null, { lossTo: Tensor.zeros([3]) })).toThrow(ShapeError);
    expect(() => F.crossEntropy(zz, Int32Array.from([0, 1]), null, { lossTo: Tensor.zeros([3]) })).toThrow(/lossTo: expected 2 elements/);
    const pair6 = Tensor.zeros([2, 3]);
    expect(() => F.crossEntropy(pair6, Int32Array.from([0, 1]), null, { lossTo: pair6 })).toThrow(/lossTo: expected memory separate from logits|lossTo/);
    expect(() => F.crossEntropy(zz, Int32Array.from([0, 1]), null, { lossTo: Tensor.zeros([2], { dtype: 'bfloat16' }) })).toThrow(/lossTo/);
  });

  it('targets out of range or of the wrong type are typed errors', () => {
    const z = Tensor.randn([2, 3]);
    expect(() => F.crossEntropy(z, Int32Array.from([0, 3]))).toThrow(/targets: expected integers in \[0, 3\) or the ignore index -100, got 3 at position 1/);
    expect(() => F.crossEntropy(z, Int32Array.from([0]))).toThrow(/targets/);
    expect(() => F.crossEntropy(z, [0, 1] as never)).toThrow(InvalidArgumentError);
  });

  it('module: forward gives the loss, backward(dLoss) the scaled gradient; eval computes it on demand', () => {
    const ce = new nn.CrossEntropyLoss();
    const z = Tensor.randn([4, 6], { seed: 2 });
    const t = Int32Array.from([1, -100, 5, 0]);
    const loss = ce.forward(z, t);
    expect(ce.count).toBe(3);
    const g1 = ce.backward().toArray();
    const g2 = ce.backward(2).toArray();
    expectClose(g2, g1.map((v) => 2 * v), 'scaled', 1e-6, 1e-6);
    ce.eval();
    expect(ce.forward(z, t)).toBe(loss);
    expectClose(ce.backward().toArray(), g1, 'eval backward', 1e-6, 1e-6);
  });
});
