/** ReLU, gated units (act(gate)·up) and attention with an additive [H, Tq, Tk] score bias (T5). */
import { describe, expect, it } from 'vitest';

import { InvalidArgumentError, nn, ShapeError, Tensor } from '../../lib/index.js';
import type { AttnDims } from '../support/nn-helpers.js';
import { expectClose, fdGrad, input, poisoned, refAttention } from '../support/nn-helpers.js';

const F = nn.functional;

const erf = (x: number): number => {
  // Abramowitz & Stegun 7.1.26 is not enough for a float64 reference: integrate the series.
  let s = 0;
  let t = x;
  for (let n = 0; n < 60; n++) {
    s += t / (2 * n + 1);
    t *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * s;
};
const ACTS: Record<nn.functional.GateActivation, (x: number) => number> = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  relu: (x) => Math.max(0, x),
  silu: (x) => x / (1 + Math.exp(-x)),
};

describe('ReLU and gated units', () => {
  it('ReLU forward and backward (zero gradient at and below 0)', () => {
    const x = Tensor.from([-2, -0, 0, 0.5, 3], [5]);
    const out = poisoned([5]);
    expect(Array.from(F.reluForward(x, out).toArray())).toEqual([0, 0, 0, 0.5, 3]);
    const dx = poisoned([5]);
    expect(Array.from(F.reluBackward(x, Tensor.from([1, 2, 3, 4, 5]), dx).toArray())).toEqual([0, 0, 0, 4, 5]);
  });

  it.each(Object.keys(ACTS) as nn.functional.GateActivation[])('%s: out = act(gate)·up, dgate and dup by finite differences', (act) => {
    const n = 39;
    const g = input(n, 1, 3);
    // Keep the gate away from ReLU's kink so that central differences are exact there.
    if (act === 'relu') for (let i = 0; i < n; i++) if (Math.abs(g.f64[i]!) < 1e-3) g.f32[i] = g.f64[i] = 0.5;
    const u = input(n, 2, 2);
    const r = input(n, 3);
    const tg = Tensor.from(g.f32, [3, 13]);
    const tu = Tensor.from(u.f32, [3, 13]);
    const out = poisoned([3, 13]);
    F.gatedForward(tg, tu, out, act);
    const ref = () => Float64Array.from(g.f64, (v, i) => ACTS[act](v) * u.f64[i]!);
    expectClose(out.toArray(), ref(), 'out', 2e-6, 2e-6);
    const dg = poisoned([3, 13]);
    const du = poisoned([3, 13]);
    F.gatedBackward(tg, tu, Tensor.from(r.f32, [3, 13]), dg, du, act);
    expectClose(dg.toArray(), fdGrad(g.f64, ref, r.f64), 'dgate');
    expectClose(du.toArray(), fdGrad(u.f64, ref, r.f64), 'dup');
  });

  it('silu gating equals the SwiGLU kernel; bad activations and shapes are typed errors', () => {
    const g = Tensor.randn([4, 5], { seed: 1 });
    const u = Tensor.randn([4, 5], { seed: 2 });
    const a = F.gatedForward(g, u, Tensor.empty([4, 5]), 'silu').toArray();
    const b = F.swigluForward(g, u, Tensor.empty([4, 5])).toArray();
    expectClose(a, Float64Array.from(b), 'silu', 1e-6, 1e-6);
    expect(() => F.gatedForward(g, u, Tensor.empty([4, 5]), 'tanh' as never)).toThrow(InvalidArgumentError);
    expect(() => F.gatedForward(g, Tensor.empty([4, 4]), Tensor.empty([4, 5]), 'relu')).toThrow(ShapeError);
  });
});

interface BiasCase extends AttnDims {
  causal: boolean;
  masked: boolean;
  /** Time steps allocated in k/v beyond Tk (a KV cache read through kvLength). */
  extra: number;
}

const BIAS_CASES: BiasCase[] = [
  { B: 2, Tq: 5, Tk: 5, H: 3, Hkv: 3, D: 4, causal: false, masked: true, extra: 0 }, // encoder self-attention
  { B: 2, Tq: 6, Tk: 6, H: 2, Hkv: 2, D: 3, causal: true, masked: false, extra: 0 }, // decoder self-attention
  { B: 3, Tq: 4, Tk: 7, H: 2, Hkv: 1, D: 5, causal: false, masked: true, extra: 0 }, // cross-attention shapes
  { B: 1, Tq: 34, Tk: 35, H: 1, Hkv: 1, D: 2, causal: true, masked: true, extra: 0 }, // past one causal block
  { B: 2, Tq: 1, Tk: 4, H: 2, Hkv: 2, D: 3, causal: true, masked: false, extra: 3 }, // one cached decoding step
];

describe('attention with a score bias', () => {
  it.each(BIAS_CASES.map((c) => [JSON.stringify(c), c] as const))('forward, dq/dk/dv and dbias against a float64 reference %s', (_, c) => {
    const { B, Tq, Tk, H, Hkv, D } = c;
    const Tcap = Tk + c.extra;
    const q = input(B * Tq * H * D, 5, 1.5);
    const k = input(B * Tk * Hkv * D, 6, 1.5);
    const v = input(B * Tk * Hkv * D, 7);
    const bias = input(H * Tq * Tk, 8, 2);
    let m: Float32Array | null = null;
    if (c.masked) {
      m = new Float32Array(B * Tk).fill(1);
      for (let b = 0; b < B; b++) m[b * Tk + ((b + 1) % (Tk - 1))] = 0;
    }
    // k, v (and the mask) padded to Tcap steps: only the first Tk are read.
    const pad = (x: Float32Array, rowLen: number): Float32Array => {
      const y = new Float32Array(B * Tcap * rowLen).fill(1e3);
      for (let b = 0; b < B; b++) y.set(x.subarray(b * Tk * rowLen, (b + 1) * Tk * rowLen), b * Tcap * rowLen);
      return y;
    };
    const tq = Tensor.from(q.f32, [B, Tq, H, D]);
    const tk = Tensor.from(pad(k.f32, Hkv * D), [B, Tcap, Hkv, D]);
    const tv = Tensor.from(pad(v.f32, Hkv * D), [B, Tcap, Hkv, D]);
    const mask = m ? Tensor.from(pad(m, 1), [B, Tcap]) : null;
    const tb = Tensor.from(bias.f32, [H, Tq, Tk]);
    const opts = { causal: c.causal, mask, scale: 1, bias: tb, ...(c.extra > 0 ? { kvLength: Tk } : {}) };
    const out = poisoned([B, Tq, H, D]);
    const lse = poisoned([B, H, Tq]);
    F.attentionForward(tq, tk, tv, out, lse, opts);
    const ref = () => refAttention(q.f64, k.f64, v.f64, m, c, c.causal, 1, undefined, bias.f64);
    expectClose(out.toArray(), ref(), 'out', 1e-5, 1e-5);
    // The bias matters: without it the output differs.
    const plain = poisoned([B, Tq, H, D]);
    F.attentionForward(tq, tk, tv, plain, poisoned([B, H, Tq]), { ...opts, bias: null });
    expect(Math.max(...plain.toArray().map((x, i) => Math.abs(x - out.toArray()[i]!)))).toBeGreaterThan(1e-3);

    const r = input(out.size, 9);
    const dq = poisoned(tq.shape);
    const dk = poisoned(tk.shape);
    const dv = poisoned(tv.shape);
    const dbias = poisoned([B, H, Tq, Tk]);
    F.attentionBackward(tq, tk, tv, lse, Tensor.from(r.f32, out.shape), dq, dk, dv, { ...opts, dbias });
    const unpad = (x: Float32Array, rowLen: number): Float32Array => {
      const y = new Float32Array(B * Tk * rowLen);
      for (let b = 0; b < B; b++) y.set(x.subarray(b * Tcap * rowLen, b * Tcap * rowLen + Tk * rowLen), b * Tk * rowLen);
      return y;
    };
    expectClose(dq.toArray(), fdGrad(q.f64, ref, r.f64), 'dq');
    expectClose(unpad(dk.toArray(), Hkv * D), fdGrad(k.f64, ref, r.f64), 'dk');
    expectClose(unpad(dv.toArray(), Hkv * D), fdGrad(v.f64, ref, r.f64), 'dv');
    const db = dbias.toArray();
    const summed = new Float32Array(H * Tq * Tk);
    for (let b = 0; b < B; b++) for (let i = 0; i < summed.length; i++) summed[i]! += db[b * summed.length + i]!;
    expectClose(summed, fdGrad(bias.f64, ref, r.f64), 'dbias');
  });

  it('a misshapen bias or dbias is a ShapeError naming it; dbias without bias or in a forward is refused', () => {
    const q = Tensor.randn([1, 3, 2, 4]);
    const k = Tensor.randn([1, 5, 2, 4]);
    const out = Tensor.empty([1, 3, 2, 4]);
    const lse = Tensor.empty([1, 2, 3]);
    const bad = (f: () => void, arg: string, type: new (...a: never[]) => Error): void => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(type);
      expect((err as { argument?: string }).argument).toBe(arg);
    };
    bad(() => F.attentionForward(q, k, k, out, lse, { bias: Tensor.zeros([2, 5, 3]) }), 'bias', ShapeError);
    bad(() => F.attentionForward(q, k, k, out, lse, { dbias: Tensor.zeros([1, 2, 3, 5]) }), 'dbias', InvalidArgumentError);
    F.attentionForward(q, k, k, out, lse, { bias: Tensor.zeros([2, 3, 5]) });
    const g = () => [Tensor.empty(q.shape), Tensor.empty(k.shape), Tensor.empty(k.shape)] as const;
    bad(() => F.attentionBackward(q, k, k, lse, out, ...g(), { dbias: Tensor.zeros([1, 2, 3, 5]) }), 'dbias', InvalidArgumentError);
    bad(() => F.attentionBackward(q, k, k, lse, out, ...g(), { bias: Tensor.zeros([2, 3, 5]), dbias: Tensor.zeros([2, 3, 5]) }), 'dbias', ShapeError);
  });
});
