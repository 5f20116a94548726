/** LayerNorm, RMSNorm, GELU, SiLU, SwiGLU (kernel and Llama MLP) and Dropout. */
import { describe, expect, it } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import { expectClose, fdGrad, geluErf, geluTanh, input, poisoned, refLayerNorm, refLinear, refRmsNorm, silu } from '../support/nn-helpers.js';

const F = nn.functional;
const SIZES: [number, number][] = [
  [1, 1],
  [3, 7],
  [7, 33],
  [33, 5],
];

describe('LayerNorm', () => {
  for (const bias of [true, false])
    it.each(SIZES)(`bias=${bias}: N=%i C=%i forward, mean/rstd, dx, dw, db`, (N, C) => {
      const eps = 1e-5;
      const x = input(N * C, N * 31 + C, 2);
      const w = input(C, C + 1);
      const b = input(C, C + 2);
      const r = input(N * C, 77);
      const tx = Tensor.from(x.f32, [N, C]);
      const tw = Tensor.from(w.f32, [C]);
      const out = poisoned([N, C]);
      const mean = poisoned([N]);
      const rstd = poisoned([N]);
      F.layerNormForward(tx, tw, bias ? Tensor.from(b.f32, [C]) : null, eps, out, mean, rstd);
      const ref = () => refLayerNorm(x.f64, w.f64, bias ? b.f64 : null, N, C, eps);
      expectClose(out.toArray(), ref(), 'out', 1e-5, 1e-5);
      const m = mean.toArray();
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let c = 0; c < C; c++) s += x.f64[n * C + c]!;
        expect(m[n]).toBeCloseTo(s / C, 5);
      }
      const dx = poisoned([N, C]);
      const dw = Tensor.zeros([C]);
      const db = Tensor.zeros([C]);
      F.layerNormBackward(tx, tw, mean, rstd, Tensor.from(r.f32, [N, C]), { dx, dw, db: bias ? db : null });
      expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
      expectClose(dw.toArray(), fdGrad(w.f64, ref, r.f64), 'dw');
      if (bias) expectClose(db.toArray(), fdGrad(b.f64, ref, r.f64), 'db');
    });

  it('module: weight 1 / bias 0 at start, in-place-safe buffers, frozen gets nothing', () => {
    const ln = new nn.LayerNorm(6);
    expect(ln.parameters().map((p) => p.name)).toEqual(['weight', 'bias']);
    const x = Tensor.randn([2, 3, 6], { seed: 3 });
    const y = ln.forward(x);
    expect(y.shape).toEqual([2, 3, 6]);
    ln.zeroGrad();
    const dx = ln.backward(Tensor.randn([2, 3, 6], { seed: 4 }));
    expect(dx.shape).toEqual([2, 3, 6]);
    expect(ln.weight.grad!.toArray().some((v) => v !== 0)).toBe(true);
    ln.freeze();
    ln.zeroGrad();
    ln.forward(x);
    ln.backward(Tensor.randn([2, 3, 6], { seed: 4 }));
    expect(Array.from(ln.weight.grad!.toArray()).every((v) => v === 0)).toBe(true);
  });
});

describe('in-place calls', () => {
  it('norm backward with dx = dout, activations with out = x, give the out-of-place results', () => {
    const [N, C] = [5, 9];
    const x = Tensor.randn([N, C], { seed: 1 });
    const w = Tensor.randn([C], { seed: 2 });
    const b = Tensor.randn([C], { seed: 3 });
    const g = Tensor.randn([N, C], { seed: 4 });
    const [out, mean, rstd] = [Tensor.empty([N, C]), Tensor.empty([N]), Tensor.empty([N])];
    F.layerNormForward(x, w, b, 1e-5, out, mean, rstd);
    const dx = Tensor.empty([N, C]);
    const dw1 = Tensor.zeros([C]);
    F.layerNormBackward(x, w, mean, rstd, g, { dx, dw: dw1, db: null });
    const gi = g.clone();
    const dw2 = Tensor.zeros([C]);
    F.layerNormBackward(x, w, mean, rstd, gi, { dx: gi, dw: dw2, db: null });
    expect(Array.from(gi.toArray())).toEqual(Array.from(dx.toArray()));
    expect(Array.from(dw2.toArray())).toEqual(Array.from(dw1.toArray()));
    F.rmsNormForward(x, w, 1e-6, out, rstd);
    F.rmsNormBackward(x, w, rstd, g, { dx, dw: null });
    const gr = g.clone();
    F.rmsNormBackward(x, w, rstd, gr, { dx: gr, dw: null });
    expect(Array.from(gr.toArray())).toEqual(Array.from(dx.toArray()));
    const xi = x.clone();
    F.geluForward(x, out, 'tanh');
    F.geluForward(xi, xi, 'tanh');
    expect(Array.from(xi.toArray())).toEqual(Array.from(out.toArray()));
  });
});

describe('RMSNorm', () => {
  it.each(SIZES)('N=%i C=%i forward, rstd, dx, dw', (N, C) => {
    const eps = 1e-6;
    const x = input(N * C, N * 17 + C, 2);
    const w = input(C, C + 3);
    const r = input(N * C, 78);
    const tx = Tensor.from(x.f32, [N, C]);
    const tw = Tensor.from(w.f32, [C]);
    const out = poisoned([N, C]);
    const rstd = poisoned([N]);
    F.rmsNormForward(tx, tw, eps, out, rstd);
    const ref = () => refRmsNorm(x.f64, w.f64, N, C, eps);
    expectClose(out.toArray(), ref(), 'out', 1e-5, 1e-5);
    const dx = poisoned([N, C]);
    const dw = Tensor.zeros([C]);
    F.rmsNormBackward(tx, tw, rstd, Tensor.from(r.f32, [N, C]), { dx, dw });
    expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
    expectClose(dw.toArray(), fdGrad(w.f64, ref, r.f64), 'dw');
  });
});

describe('pointwise activations', () => {
  const fns = {
    'gelu erf': geluErf,
    'gelu tanh': geluTanh,
    silu,
  } as const;
  for (const [name, f] of Object.entries(fns))
    it.each([1, 7, 33, 257])(`${name}: n=%i forward and dx (inputs in [-3, 3])`, (n) => {
      const x = input(n, n + name.length, 3);
      const r = input(n, 5);
      const tx = Tensor.from(x.f32, [n]);
      const out = poisoned([n]);
      const dx = poisoned([n]);
      const tr = Tensor.from(r.f32, [n]);
      if (name === 'silu') {
        F.siluForward(tx, out);
        F.siluBackward(tx, tr, dx);
      } else {
        const a = name === 'gelu erf' ? 'erf' : 'tanh';
        F.geluForward(tx, out, a);
        F.geluBackward(tx, tr, dx, a);
      }
      const ref = () => Float64Array.from(x.f64, f);
      expectClose(out.toArray(), ref(), 'out', 2e-6, 2e-6);
      expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
    });

  it('large inputs stay finite (tanh GELU guard, SiLU saturation)', () => {
    const x = Tensor.from([-1e30, -100, 100, 1e30]);
    const d = Tensor.from([1, 1, 1, 1]);
    for (const a of ['erf', 'tanh'] as const) expect(F.geluBackward(x, d, Tensor.empty([4]), a).toArray().every(Number.isFinite)).toBe(true);
    expect(F.siluBackward(x, d, Tensor.empty([4])).toArray().every(Number.isFinite)).toBe(true);
  });

  it('SwiGLU kernel: out = silu(gate)·up, dgate and dup', () => {
    const n = 33;
    const g = input(n, 1, 3);
    const u = input(n, 2, 2);
    const r = input(n, 3);
    const tg = Tensor.from(g.f32, [3, 11]);
    const tu = Tensor.from(u.f32, [3, 11]);
    const out = poisoned([3, 11]);
    F.swigluForward(tg, tu, out);
    const ref = () => Float64Array.from(g.f64, (v, i) => silu(v) * u.f64[i]!);
    expectClose(out.toArray(), ref(), 'out', 2e-6, 2e-6);
    const dg = poisoned([3, 11]);
    const du = poisoned([3, 11]);
    F.swigluBackward(tg, tu, Tensor.from(r.f32, [3, 11]), dg, du);
    expectClose(dg.toArray(), fdGrad(g.f64, ref, r.f64), 'dgate');
    expectClose(du.toArray(), fdGrad(u.f64, ref, r.f64), 'dup');
  });

  it('SwiGLU MLP module: forward and dx / parameter grads by finite differences', () => {
    const [N, C, Hd] = [5, 6, 7];
    const mlp = new nn.SwiGLUMLP(C, Hd, { seed: 3 });
    expect(mlp.parameters().map((p) => p.name)).toEqual(['gate_proj.weight', 'up_proj.weight', 'down_proj.weight']);
    const Wg = Float64Array.from(mlp.gate_proj.weight.tensor.toArray());
    const Wu = Float64Array.from(mlp.up_proj.weight.tensor.toArray());
    const Wd = Float64Array.from(mlp.down_proj.weight.tensor.toArray());
    const x = input(N * C, 8, 2);
    const ref = () => {
      const g = refLinear(x.f64, Wg, null, N, C, Hd, false);
      const u = refLinear(x.f64, Wu, null, N, C, Hd, false);
      return refLinear(g.map((v, i) => silu(v) * u[i]!), Wd, null, N, Hd, C, false);
    };
    const y = mlp.forward(Tensor.from(x.f32, [N, C]));
    expectClose(y.toArray(), ref(), 'y', 1e-5, 1e-5);
    const r = input(N * C, 9);
    mlp.zeroGrad();
    const dx = mlp.backward(Tensor.from(r.f32, [N, C]));
    expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
    expectClose(mlp.gate_proj.weight.grad!.toArray(), fdGrad(Wg, ref, r.f64), 'dW gate');
    expectClose(mlp.up_proj.weight.grad!.toArray(), fdGrad(Wu, ref, r.f64), 'dW up');
    expectClose(mlp.down_proj.weight.grad!.toArray(), fdGrad(Wd, ref, r.f64), 'dW down');
  });

  it('GELU / SiLU modules wrap the kernels', () => {
    const x = Tensor.from(input(12, 4, 3).f32, [3, 4]);
    for (const m of [new nn.GELU({ approximate: 'tanh' }), new nn.SiLU()]) {
      const y = m.forward(x);
      expect(y.shape).toEqual([3, 4]);
      expect(m.backward(Tensor.full([3, 4], 1)).toArray().every(Number.isFinite)).toBe(true);
    }
  });
});

describe('Dropout', () => {
  const n = 20000;
  const x = Tensor.randn([n], { seed: 1 });
  const xs = x.toArray();

  it('kept elements are scaled by 1/(1−p), about p of them dropped, reproducible per seed', () => {
    const p = 0.3;
    const a = F.dropoutForward(x, poisoned([n]), p, 42).toArray();
    const b = F.dropoutForward(x, poisoned([n]), p, 42).toArray();
    const c = F.dropoutForward(x, poisoned([n]), p, 43).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    let dropped = 0;
    for (let i = 0; i < n; i++) {
      if (a[i] === 0) dropped++;
      else expect(Math.abs(a[i]! - xs[i]! / (1 - p))).toBeLessThanOrEqual(1e-6 * Math.abs(xs[i]!) + 1e-12);
    }
    // Binomial(n, p): sd = sqrt(n p (1 − p)) ≈ 65; allow 5 sd.
    expect(Math.abs(dropped - n * p)).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
  });

  it('backward uses the forward mask; p = 0 is the identity; p = 1 zeros', () => {
    const p = 0.5;
    const y = F.dropoutForward(x, Tensor.empty([n]), p, 7).toArray();
    const d = F.dropoutBackward(Tensor.full([n], 1), Tensor.empty([n]), p, 7).toArray();
    for (let i = 0; i < n; i += 97) expect(d[i]).toBe(y[i] === 0 ? 0 : 2);
    expect(Array.from(F.dropoutForward(x, poisoned([n]), 0, 7).toArray())).toEqual(Array.from(xs));
    expect(F.dropoutForward(x, poisoned([n]), 1, 7).toArray().every((v) => v === 0)).toBe(true);
  });

  it('module: new mask per call, reproducible from the seed, identity in eval and at p = 0', () => {
    const d1 = new nn.Dropout(0.2, { seed: 5 });
    const d2 = new nn.Dropout(0.2, { seed: 5 });
    const a1 = d1.forward(x).toArray();
    const a2 = d1.forward(x).toArray();
    expect(Array.from(a1)).not.toEqual(Array.from(a2));
    expect(Array.from(d2.forward(x).toArray())).toEqual(Array.from(a1));
    const g = d1.backward(Tensor.full([n], 1)).toArray();
    for (let i = 0; i < n; i += 101) expect(g[i] === 0).toBe(a2[i] === 0 && xs[i] !== 0);
    d1.eval();
    expect(d1.forward(x)).toBe(x);
    const z = new nn.Dropout(0);
    expect(z.forward(x)).toBe(x);
    const dy = Tensor.full([n], 3);
    expect(z.backward(dy)).toBe(dy);
  });
});
