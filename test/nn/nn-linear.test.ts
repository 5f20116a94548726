/** Linear (both weight layouts) and Embedding against float64 references and finite differences. */
import { afterAll, describe, expect, it } from 'vitest';

import { InvalidArgumentError, nn, setNumThreads, Tensor } from '../../lib/index.js';
import { expectClose, fdGrad, input, poisoned, refLinear } from '../support/nn-helpers.js';

const F = nn.functional;
afterAll(() => setNumThreads(0));

describe('linear', () => {
  const cases: [number, number, number][] = [
    [1, 1, 1],
    [3, 7, 5],
    [7, 33, 3],
    [33, 17, 65],
  ];
  for (const layout of ['linear', 'conv1d'] as const)
    for (const bias of [true, false])
      it.each(cases)(`${layout}, bias=${bias}: N=%i in=%i out=%i forward, dx, dW, db`, (N, IN, OUT) => {
        const conv1d = layout === 'conv1d';
        const x = input(N * IN, N * 7 + IN);
        const W = input(IN * OUT, IN * 13 + OUT);
        const b = input(OUT, OUT + 99);
        const r = input(N * OUT, 5);
        const wShape = conv1d ? [IN, OUT] : [OUT, IN];
        const tx = Tensor.from(x.f32, [N, IN]);
        const tW = Tensor.from(W.f32, wShape);
        const tb = bias ? Tensor.from(b.f32, [OUT]) : null;
        const y = poisoned([N, OUT]);
        F.linearForward(tx, tW, tb, y, layout);
        const ref = () => refLinear(x.f64, W.f64, bias ? b.f64 : null, N, IN, OUT, conv1d);
        expectClose(y.toArray(), ref(), 'y', 1e-5, 1e-5);

        const dx = poisoned([N, IN]);
        // Parameter gradients accumulate: start them at a known value and subtract it after.
        const dW = Tensor.full(wShape, 0.5);
        const db = Tensor.full([OUT], -0.25);
        F.linearBackward(tx, tW, Tensor.from(r.f32, [N, OUT]), { dx, dW, db: bias ? db : null }, layout);
        expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
        expectClose(dW.toArray().map((v) => v - 0.5), fdGrad(W.f64, ref, r.f64), 'dW');
        if (bias) expectClose(db.toArray().map((v) => v + 0.25), fdGrad(b.f64, ref, r.f64), 'db');
        else expect(Array.from(db.toArray()).every((v) => v === -0.25)).toBe(true);
      });

  it('accumulateDx adds into dx; frozen parts (null) are skipped', () => {
    const [N, IN, OUT] = [5, 4, 3];
    const x = Tensor.randn([N, IN], { seed: 1 });
    const W = Tensor.randn([OUT, IN], { seed: 2 });
    const dy = Tensor.randn([N, OUT], { seed: 3 });
    const dx1 = Tensor.zeros([N, IN]);
    F.linearBackward(x, W, dy, { dx: dx1, dW: null, db: null });
    const dx2 = Tensor.full([N, IN], 1);
    F.linearBackward(x, W, dy, { dx: dx2, dW: null, db: null, accumulateDx: true });
    expectClose(dx2.toArray(), dx1.toArray().map((v) => v + 1), 'dx accumulated', 1e-6, 1e-6);
  });

  it('module: parameters, Conv1D layout, 3-D input, frozen weight gets no gradient, buffers reused', () => {
    const [B, T, IN, OUT] = [2, 3, 5, 7];
    for (const layout of ['linear', 'conv1d'] as const) {
      const lin = new nn.Linear(IN, OUT, { layout, seed: 4 });
      const names = lin.parameters().map((p) => [p.name, p.tensor.shape]);
      expect(names).toEqual([
        ['weight', layout === 'conv1d' ? [IN, OUT] : [OUT, IN]],
        ['bias', [OUT]],
      ]);
      const xs = input(B * T * IN, 9);
      const x = Tensor.from(xs.f32, [B, T, IN]);
      const y1 = lin.forward(x);
      expect(y1.shape).toEqual([B, T, OUT]);
      const ref = refLinear(xs.f64, Float64Array.from(lin.weight.tensor.toArray()), Float64Array.from(lin.bias!.tensor.toArray()), B * T, IN, OUT, layout === 'conv1d');
      expectClose(y1.toArray(), ref, 'module y', 1e-5, 1e-5);
      y1.set(new Float32Array(B * T * OUT).fill(NaN)); // poison the reused buffer
      const y2 = lin.forward(x);
      expect(y2).toBe(y1); // same shape → same buffer
      expectClose(y2.toArray(), ref, 'module y again', 1e-5, 1e-5);

      lin.zeroGrad();
      const dy = Tensor.randn([B, T, OUT], { seed: 5 });
      const dx = lin.backward(dy)!;
      expect(dx.shape).toEqual([B, T, IN]);
      const g1 = lin.weight.grad!.toArray();
      lin.backward(dy);
      expectClose(lin.weight.grad!.toArray(), g1.map((v) => 2 * v), 'dW accumulates', 1e-6, 1e-6);

      lin.freeze();
      lin.zeroGrad();
      const before = lin.weight.grad!.toArray();
      lin.weight.grad!.set(new Float32Array(before.length).fill(7));
      lin.forward(x);
      lin.backward(dy);
      expect(Array.from(lin.weight.grad!.toArray()).every((v) => v === 7)).toBe(true);
      expect(lin.parameters().every((p) => !p.trainable)).toBe(true);
      lin.unfreeze();
      expect(lin.parameters().every((p) => p.trainable)).toBe(true);
      lin.dispose();
    }
  });
});

describe('embedding', () => {
  it.each([
    [1, 1, 1],
    [7, 3, 5],
    [33, 17, 9],
  ])('N=%i V=%i C=%i: forward gathers rows, backward scatter-adds', (N, V, C) => {
    const W = input(V * C, V + C);
    const ids = Int32Array.from({ length: N }, (_, i) => (i * 7 + 3) % V);
    const out = poisoned([N, C]);
    F.embeddingForward(ids, Tensor.from(W.f32, [V, C]), out);
    const ref = () => {
      const y = new Float64Array(N * C);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) y[n * C + c] = W.f64[ids[n]! * C + c]!;
      return y;
    };
    expectClose(out.toArray(), ref(), 'out', 0, 0.0);
    const r = input(N * C, 3);
    const dW = Tensor.zeros([V, C]);
    F.embeddingBackward(ids, Tensor.from(r.f32, [N, C]), dW);
    expectClose(dW.toArray(), fdGrad(W.f64, ref, r.f64), 'dW');
  });

  it('scatter-add is bitwise identical for 1 and 2 threads (repeated ids)', () => {
    const [N, V, C] = [4096, 5, 64];
    const ids = Int32Array.from({ length: N }, (_, i) => (i * i) % V);
    const dout = Tensor.randn([N, C], { seed: 11 });
    const run = (threads: number) => {
      setNumThreads(threads);
      const dW = Tensor.zeros([V, C]);
      F.embeddingBackward(ids, dout, dW);
      return dW.toArray();
    };
    expect(Array.from(run(2))).toEqual(Array.from(run(1)));
    setNumThreads(0);
  });

  it('module: [B, T] ids → [B, T, C]; out-of-range ids are typed errors; frozen table untouched', () => {
    const emb = new nn.Embedding(10, 4, { seed: 1 });
    const ids = Int32Array.from([1, 2, 3, 9, 0, 1]);
    const y = emb.forward(ids, [2, 3]);
    expect(y.shape).toEqual([2, 3, 4]);
    emb.zeroGrad();
    expect(emb.backward(Tensor.full([2, 3, 4], 1))).toBeNull();
    const g = emb.weight.grad!.toArray();
    expect(g[1 * 4]).toBe(2); // id 1 appears twice
    expect(g[5 * 4]).toBe(0);
    expect(() => emb.forward(Int32Array.from([10]))).toThrow(/ids: expected integers in \[0, 10\)/);
    expect(() => emb.forward(Int32Array.from([-1]))).toThrow(InvalidArgumentError);
    emb.freeze();
    emb.forward(ids, [2, 3]);
    emb.backward(Tensor.full([2, 3, 4], 1));
    expect(Array.from(emb.weight.grad!.toArray())).toEqual(Array.from(g));
  });
});
