/** Attention (MHA/GQA, causal, padding, KV cache), RoPE, and the Attention module. */
import { afterAll, describe, expect, it } from 'vitest';

import { nn, setNumThreads, Tensor } from '../../lib/index.js';
import type { AttnDims } from '../support/nn-helpers.js';
import { expectClose, fdGrad, input, poisoned, refAttention, refLinear, refRope, rng } from '../support/nn-helpers.js';

const F = nn.functional;
afterAll(() => setNumThreads(0));

function padMask(B: number, Tk: number, seed: number): Float32Array {
  // Some keys padded in every batch row, but never all of them.
  const r = rng(seed);
  const m = new Float32Array(B * Tk).fill(1);
  for (let b = 0; b < B; b++) for (let j = 0; j < Tk; j++) if (r() < 0.3 && j !== Tk - 1) m[b * Tk + j] = 0;
  return m;
}

interface Case extends AttnDims {
  causal: boolean;
  masked: boolean;
}

function runAttention(c: Case, seed: number) {
  const { B, Tq, Tk, H, Hkv, D } = c;
  const q = input(B * Tq * H * D, seed, 1.5);
  const k = input(B * Tk * Hkv * D, seed + 1, 1.5);
  const v = input(B * Tk * Hkv * D, seed + 2);
  const m = c.masked ? padMask(B, Tk, seed + 3) : null;
  const scale = 1 / Math.sqrt(D);
  const tq = Tensor.from(q.f32, [B, Tq, H, D]);
  const tk = Tensor.from(k.f32, [B, Tk, Hkv, D]);
  const tv = Tensor.from(v.f32, [B, Tk, Hkv, D]);
  const mask = m ? Tensor.from(m, [B, Tk]) : null;
  const out = poisoned([B, Tq, H, D]);
  const lse = poisoned([B, H, Tq]);
  const opts = { causal: c.causal, mask };
  F.attentionForward(tq, tk, tv, out, lse, opts);
  const ref = () => refAttention(q.f64, k.f64, v.f64, m, c, c.causal, scale);
  return { q, k, v, m, tq, tk, tv, mask, out, lse, opts, ref };
}

const CASES: Case[] = [
  { B: 1, Tq: 1, Tk: 1, H: 1, Hkv: 1, D: 1, causal: false, masked: false },
  { B: 2, Tq: 7, Tk: 7, H: 4, Hkv: 2, D: 3, causal: true, masked: false },
  { B: 3, Tq: 5, Tk: 5, H: 6, Hkv: 3, D: 8, causal: false, masked: true },
  { B: 2, Tq: 5, Tk: 5, H: 3, Hkv: 1, D: 7, causal: true, masked: true },
  { B: 1, Tq: 33, Tk: 33, H: 2, Hkv: 2, D: 5, causal: true, masked: false },
  { B: 2, Tq: 3, Tk: 7, H: 4, Hkv: 2, D: 3, causal: true, masked: false }, // KV cache: 4 cached keys
  // Longer than the 32-row query blocks of the causal kernel, with a cache and padding.
  { B: 1, Tq: 35, Tk: 40, H: 2, Hkv: 1, D: 3, causal: true, masked: true },
];

describe('attention kernel', () => {
  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('forward against a dense masked reference %s', (_, c) => {
    const a = runAttention(c, 11);
    expectClose(a.out.toArray(), a.ref(), 'out', 1e-5, 1e-5);
    expect(a.lse.toArray().every(Number.isFinite)).toBe(true);
  });

  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('dq, dk, dv by finite differences %s', (_, c) => {
    const a = runAttention(c, 23);
    const r = input(a.out.size, 99);
    const dq = poisoned(a.tq.shape);
    const dk = poisoned(a.tk.shape);
    const dv = poisoned(a.tv.shape);
    F.attentionBackward(a.tq, a.tk, a.tv, a.lse, Tensor.from(r.f32, a.out.shape), dq, dk, dv, a.opts);
    expectClose(dq.toArray(), fdGrad(a.q.f64, a.ref, r.f64), 'dq');
    expectClose(dk.toArray(), fdGrad(a.k.f64, a.ref, r.f64), 'dk');
    expectClose(dv.toArray(), fdGrad(a.v.f64, a.ref, r.f64), 'dv');
  });

  it('GQA equals MHA with each key/value head repeated over its group (forward and gradients)', () => {
    const [B, T, H, Hkv, D] = [2, 6, 6, 2, 4];
    const R = H / Hkv;
    const q = Tensor.randn([B, T, H, D], { seed: 1 });
    const k = Tensor.randn([B, T, Hkv, D], { seed: 2 });
    const v = Tensor.randn([B, T, Hkv, D], { seed: 3 });
    const rep = (t: Tensor) => {
      const s = t.toArray();
      const o = new Float32Array(B * T * H * D);
      for (let bt = 0; bt < B * T; bt++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) o[(bt * H + h) * D + d] = s[(bt * Hkv + Math.floor(h / R)) * D + d]!;
      return Tensor.from(o, [B, T, H, D]);
    };
    const k2 = rep(k);
    const v2 = rep(v);
    const o1 = Tensor.empty([B, T, H, D]);
    const o2 = Tensor.empty([B, T, H, D]);
    const l1 = Tensor.empty([B, H, T]);
    const l2 = Tensor.empty([B, H, T]);
    F.attentionForward(q, k, v, o1, l1, { causal: true });
    F.attentionForward(q, k2, v2, o2, l2, { causal: true });
    expectClose(o1.toArray(), o2.toArray(), 'out', 1e-6, 1e-6);
    const dO = Tensor.randn([B, T, H, D], { seed: 4 });
    const [dq1, dk1, dv1] = [Tensor.empty(q.shape), Tensor.empty(k.shape), Tensor.empty(v.shape)];
    const [dq2, dk2, dv2] = [Tensor.empty(q.shape), Tensor.empty(k2.shape), Tensor.empty(v2.shape)];
    F.attentionBackward(q, k, v, l1, dO, dq1, dk1, dv1, { causal: true });
    F.attentionBackward(q, k2, v2, l2, dO, dq2, dk2, dv2, { causal: true });
    expectClose(dq1.toArray(), dq2.toArray(), 'dq', 1e-5, 1e-5);
    // The GQA gradient of a shared head is the sum over its group's repeated heads.
    const sumGroups = (t: Tensor) => {
      const s = t.toArray();
      const o = new Float64Array(B * T * Hkv * D);
      for (let bt = 0; bt < B * T; bt++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) o[(bt * Hkv + Math.floor(h / R)) * D + d]! += s[(bt * H + h) * D + d]!;
      return o;
    };
    expectClose(dk1.toArray(), sumGroups(dk2), 'dk', 1e-5, 1e-5);
    expectClose(dv1.toArray(), sumGroups(dv2), 'dv', 1e-5, 1e-5);
  });

  it('causal: a query never depends on later keys; padding: padded keys are ignored and get no gradient', () => {
    const c: Case = { B: 2, Tq: 6, Tk: 6, H: 2, Hkv: 1, D: 4, causal: true, masked: true };
    const a = runAttention(c, 5);
    const base = a.out.toArray();
    // Scramble k/v at the last position and at every padded key.
    const k2 = a.k.f32.slice();
    const v2 = a.v.f32.slice();
    for (let b = 0; b < c.B; b++)
      for (let j = 0; j < c.Tk; j++)
        if (a.m![b * c.Tk + j] === 0 || j === c.Tk - 1)
          for (let d = 0; d < c.D; d++) {
            k2[(b * c.Tk + j) * c.D + d] = 50;
            v2[(b * c.Tk + j) * c.D + d] = -70;
          }
    const out2 = poisoned(a.out.shape);
    F.attentionForward(a.tq, Tensor.from(k2, a.tk.shape), Tensor.from(v2, a.tv.shape), out2, Tensor.empty(a.lse.shape), a.opts);
    const o2 = out2.toArray();
    const rowLen = c.H * c.D;
    for (let b = 0; b < c.B; b++)
      for (let i = 0; i < c.Tq - 1; i++)
        for (let e = 0; e < rowLen; e++) expect(o2[(b * c.Tq + i) * rowLen + e]).toBe(base[(b * c.Tq + i) * rowLen + e]);
    const dk = poisoned(a.tk.shape);
    const dv = poisoned(a.tv.shape);
    F.attentionBackward(a.tq, a.tk, a.tv, a.lse, Tensor.randn(a.out.shape, { seed: 8 }), poisoned(a.tq.shape), dk, dv, a.opts);
    const gk = dk.toArray();
    const gv = dv.toArray();
    for (let b = 0; b < c.B; b++)
      for (let j = 0; j < c.Tk; j++)
        if (a.m![b * c.Tk + j] === 0)
          for (let d = 0; d < c.D; d++) {
            expect(gk[(b * c.Tk + j) * c.D + d]).toBe(0);
            expect(gv[(b * c.Tk + j) * c.D + d]).toBe(0);
          }
  });

  it('a query with no visible key outputs 0 with finite, zero gradients', () => {
    const [B, T, H, D] = [1, 3, 1, 2];
    const q = Tensor.randn([B, T, H, D], { seed: 1 });
    const k = Tensor.randn([B, T, H, D], { seed: 2 });
    const mask = Tensor.from([0, 1, 1], [1, 3]); // causal + first key padded: query 0 sees nothing
    const out = poisoned([B, T, H, D]);
    const lse = poisoned([B, H, T]);
    F.attentionForward(q, k, k, out, lse, { causal: true, mask });
    expect(Array.from(out.toArray().slice(0, 2))).toEqual([0, 0]);
    const dq = poisoned(q.shape);
    F.attentionBackward(q, k, k, lse, Tensor.full(out.shape, 1), dq, Tensor.empty(k.shape), Tensor.empty(k.shape), { causal: true, mask });
    expect(Array.from(dq.toArray().slice(0, 2))).toEqual([0, 0]);
    expect(dq.toArray().every(Number.isFinite)).toBe(true);
  });

  it('results are identical for 1 and 2 threads', () => {
    const c: Case = { B: 3, Tq: 9, Tk: 9, H: 4, Hkv: 2, D: 8, causal: true, masked: true };
    const run = (threads: number) => {
      setNumThreads(threads);
      const a = runAttention(c, 3);
      const dO = Tensor.randn(a.out.shape, { seed: 4 });
      const g = [Tensor.empty(a.tq.shape), Tensor.empty(a.tk.shape), Tensor.empty(a.tv.shape)] as const;
      F.attentionBackward(a.tq, a.tk, a.tv, a.lse, dO, g[0], g[1], g[2], a.opts);
      return [a.out, ...g].map((t) => Array.from(t.toArray()));
    };
    expect(run(2)).toEqual(run(1));
    setNumThreads(0);
  });
});

describe('attention dropout', () => {
  const cases: Case[] = [
    { B: 2, Tq: 5, Tk: 5, H: 4, Hkv: 2, D: 3, causal: true, masked: true },
    { B: 1, Tq: 35, Tk: 35, H: 2, Hkv: 1, D: 2, causal: true, masked: false },
    { B: 2, Tq: 4, Tk: 6, H: 2, Hkv: 2, D: 3, causal: false, masked: false },
  ];
  it.each(cases.map((c) => [JSON.stringify(c), c] as const))('mask = dropoutForward of the same seed; forward and gradients by finite differences %s', (_, c) => {
    const p = 0.3;
    const seed = 1234;
    const { B, Tq, Tk, H } = c;
    const drop = F.dropoutForward(Tensor.full([B * H * Tq * Tk], 1), Tensor.empty([B * H * Tq * Tk]), p, seed).toArray();
    const base = runAttention(c, 31);
    const opts = { ...base.opts, dropout: p, seed };
    const out = poisoned(base.out.shape);
    const lse = poisoned(base.lse.shape);
    F.attentionForward(base.tq, base.tk, base.tv, out, lse, opts);
    expect(Array.from(lse.toArray())).toEqual(Array.from(base.lse.toArray())); // lse of the undropped softmax
    const scale = 1 / Math.sqrt(c.D);
    const ref = () => refAttention(base.q.f64, base.k.f64, base.v.f64, base.m, c, c.causal, scale, drop);
    expectClose(out.toArray(), ref(), 'out', 1e-5, 1e-5);
    const r = input(out.size, 7);
    const [dq, dk, dv] = [poisoned(base.tq.shape), poisoned(base.tk.shape), poisoned(base.tv.shape)];
    F.attentionBackward(base.tq, base.tk, base.tv, lse, Tensor.from(r.f32, out.shape), dq, dk, dv, opts);
    expectClose(dq.toArray(), fdGrad(base.q.f64, ref, r.f64), 'dq');
    expectClose(dk.toArray(), fdGrad(base.k.f64, ref, r.f64), 'dk');
    expectClose(dv.toArray(), fdGrad(base.v.f64, ref, r.f64), 'dv');
  });

  it('p = 0 is the plain kernel; the module drops only in training, with a new mask per call', () => {
    const c: Case = { B: 1, Tq: 6, Tk: 6, H: 2, Hkv: 1, D: 4, causal: true, masked: false };
    const a = runAttention(c, 3);
    const o0 = poisoned(a.out.shape);
    F.attentionForward(a.tq, a.tk, a.tv, o0, Tensor.empty(a.lse.shape), { ...a.opts, dropout: 0, seed: 9 });
    expect(Array.from(o0.toArray())).toEqual(Array.from(a.out.toArray()));
    expect(() => F.attentionForward(a.tq, a.tk, a.tv, o0, Tensor.empty(a.lse.shape), { dropout: 1 })).toThrow(/dropout/);
    const x = Tensor.randn([2, 5, 8], { seed: 1 });
    const m = new nn.Attention(8, { heads: 2, dropout: 0.5, seed: 4 });
    const plain = new nn.Attention(8, { heads: 2, seed: 4 });
    const y0 = Array.from(plain.forward(x).toArray());
    const y1 = Array.from(m.forward(x).toArray());
    const y2 = Array.from(m.forward(x).toArray());
    expect(y1).not.toEqual(y0);
    expect(y2).not.toEqual(y1);
    expect(m.backward(Tensor.randn([2, 5, 8], { seed: 2 })).toArray().every(Number.isFinite)).toBe(true);
    m.eval();
    expect(Array.from(m.forward(x).toArray())).toEqual(y0);
  });
});

describe('KV cache', () => {
  it('kernel over the first kvLength steps of a larger buffer equals the contiguous kernel (forward and backward)', () => {
    const [B, Tq, Tk, Tcap, H, Hkv, D] = [2, 3, 7, 10, 4, 2, 3];
    const q = Tensor.randn([B, Tq, H, D], { seed: 1 });
    const k = Tensor.randn([B, Tk, Hkv, D], { seed: 2 });
    const v = Tensor.randn([B, Tk, Hkv, D], { seed: 3 });
    const kc = Tensor.full([B, Tcap, Hkv, D], 9);
    const vc = Tensor.full([B, Tcap, Hkv, D], -9);
    F.kvCacheWrite(k, kc, 0);
    F.kvCacheWrite(v, vc, 0);
    const m = Tensor.from(Float32Array.from({ length: B * Tk }, (_, i) => (i % 4 === 1 ? 0 : 1)), [B, Tk]);
    const mc = Tensor.from(Float32Array.from({ length: B * Tcap }, (_, i) => (i % Tcap < Tk ? m.toArray()[Math.floor(i / Tcap) * Tk + (i % Tcap)]! : 0)), [B, Tcap]);
    const [o1, l1, o2, l2] = [Tensor.empty(q.shape), Tensor.empty([B, H, Tq]), poisoned(q.shape), poisoned([B, H, Tq])];
    F.attentionForward(q, k, v, o1, l1, { causal: true, mask: m });
    F.attentionForward(q, kc, vc, o2, l2, { causal: true, mask: mc, kvLength: Tk });
    expectClose(o2.toArray(), o1.toArray(), 'out', 1e-6, 1e-6);
    const dO = Tensor.randn(q.shape, { seed: 4 });
    const [dq1, dk1, dv1] = [Tensor.empty(q.shape), Tensor.empty(k.shape), Tensor.empty(v.shape)];
    const [dq2, dk2, dv2] = [poisoned(q.shape), poisoned(kc.shape), poisoned(vc.shape)];
    F.attentionBackward(q, k, v, l1, dO, dq1, dk1, dv1, { causal: true, mask: m });
    F.attentionBackward(q, kc, vc, l2, dO, dq2, dk2, dv2, { causal: true, mask: mc, kvLength: Tk });
    expectClose(dq2.toArray(), dq1.toArray(), 'dq', 1e-6, 1e-6);
    const firstSteps = (t: Tensor) => Array.from(t.toArray()).filter((_, i) => Math.floor(i / (Hkv * D)) % Tcap < Tk);
    const laterSteps = (t: Tensor) => Array.from(t.toArray()).filter((_, i) => Math.floor(i / (Hkv * D)) % Tcap >= Tk);
    expectClose(firstSteps(dk2), dk1.toArray(), 'dk', 1e-6, 1e-6);
    expectClose(firstSteps(dv2), dv1.toArray(), 'dv', 1e-6, 1e-6);
    expect(laterSteps(dk2).every((x) => x === 0)).toBe(true);
    expect(() => F.kvCacheWrite(k, kc, 4)).toThrow(/offset/);
    expect(() => F.attentionForward(q, kc, vc, o2, l2, { kvLength: 11 })).toThrow(/kvLength/);
  });

  it('module: decoding token by token with a cache equals the full causal forward (GQA + RoPE)', () => {
    const [B, T, C] = [2, 6, 8];
    const m = new nn.Attention(C, { heads: 4, kvHeads: 2, rope: { convention: 'interleaved' }, seed: 7 });
    const xs = input(B * T * C, 5).f32;
    const full = m.forward(Tensor.from(xs, [B, T, C])).toArray();
    const cache = m.createCache(B, T + 2);
    // A 2-token prompt, then one token at a time.
    const slice = (t0: number, t1: number) => {
      const o = new Float32Array(B * (t1 - t0) * C);
      for (let b = 0; b < B; b++) o.set(xs.subarray((b * T + t0) * C, (b * T + t1) * C), b * (t1 - t0) * C);
      return Tensor.from(o, [B, t1 - t0, C]);
    };
    const got = new Float32Array(B * T * C);
    const put = (y: Float32Array, t0: number, t1: number) => {
      for (let b = 0; b < B; b++) got.set(y.subarray(b * (t1 - t0) * C, (b + 1) * (t1 - t0) * C), (b * T + t0) * C);
    };
    put(m.forward(slice(0, 2), { cache }).toArray(), 0, 2);
    for (let t = 2; t < T; t++) put(m.forward(slice(t, t + 1), { cache }).toArray(), t, t + 1);
    expect(cache.length).toBe(T);
    expectClose(got, full, 'cached decode', 1e-5, 1e-5);
    expect(() => m.backward(Tensor.zeros([B, 1, C]))).toThrow(/after Attention.forward/);
    expect(() => m.forward(slice(0, 3), { cache })).toThrow(/cache/);
  });
});

describe('RoPE', () => {
  const [B, T, H, D] = [2, 5, 3, 6];
  for (const convention of ['half', 'interleaved'] as const)
    it(`${convention}: matches its definition (offset 0 and 7); backward is the transpose rotation`, () => {
      const x = input(B * T * H * D, 3, 2);
      const tx = Tensor.from(x.f32, [B, T, H, D]);
      for (const offset of [0, 7]) {
        const out = poisoned([B, T, H, D]);
        F.ropeForward(tx, out, { convention, offset, base: 10000 });
        const ref = () => refRope(x.f64, B, T, H, D, offset, 10000, convention);
        expectClose(out.toArray(), ref(), 'out', 1e-6, 1e-6);
        const r = input(B * T * H * D, 4);
        const dx = poisoned([B, T, H, D]);
        F.ropeBackward(Tensor.from(r.f32, [B, T, H, D]), dx, { convention, offset });
        expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
      }
    });

  it('rotate-half equals interleaved under the permutation (2i, 2i+1) → (i, i + D/2)', () => {
    const x = Tensor.randn([B, T, H, D], { seed: 9 });
    const perm = (t: Float32Array) => {
      const o = new Float32Array(t.length);
      for (let r = 0; r < B * T * H; r++)
        for (let i = 0; i < D / 2; i++) {
          o[r * D + i] = t[r * D + 2 * i]!;
          o[r * D + i + D / 2] = t[r * D + 2 * i + 1]!;
        }
      return o;
    };
    const inter = F.ropeForward(x, Tensor.empty(x.shape), { convention: 'interleaved', offset: 3, base: 500000 });
    const half = F.ropeForward(Tensor.from(perm(x.toArray()), x.shape), Tensor.empty(x.shape), { convention: 'half', offset: 3, base: 500000 });
    expect(Array.from(half.toArray())).toEqual(Array.from(perm(inter.toArray())));
  });

  it('offset continues positions (KV cache) and works in place', () => {
    const x = Tensor.randn([1, 8, 2, 4], { seed: 2 });
    const full = F.ropeForward(x, Tensor.empty(x.shape), { offset: 0 }).toArray();
    const tail = Tensor.from(x.toArray().slice(5 * 8), [1, 3, 2, 4]);
    F.ropeForward(tail, tail, { offset: 5 }); // in place
    expectClose(tail.toArray(), full.slice(5 * 8), 'tail', 1e-6, 1e-6);
    const m = new nn.RoPE({ convention: 'interleaved' });
    const y = m.forward(x, 2);
    const back = m.backward(y);
    expectClose(back.toArray(), x.toArray(), 'backward undoes forward', 1e-6, 1e-6);
  });
});

describe('Attention module', () => {
  const [B, T, C, H, Hkv, D] = [2, 4, 6, 4, 2, 4];

  function reference(m: InstanceType<typeof nn.Attention>, x: Float64Array, W: Record<string, Float64Array>, bias: Record<string, Float64Array>, rope: boolean) {
    return (): Float64Array => {
      const N = B * T;
      let q = refLinear(x, W['q']!, bias['q']!, N, C, H * D, false);
      let k = refLinear(x, W['k']!, bias['k']!, N, C, Hkv * D, false);
      const v = refLinear(x, W['v']!, bias['v']!, N, C, Hkv * D, false);
      if (rope) {
        q = refRope(q, B, T, H, D, 0, 10000, 'half');
        k = refRope(k, B, T, Hkv, D, 0, 10000, 'half');
      }
      const o = refAttention(q, k, v, null, { B, Tq: T, Tk: T, H, Hkv, D }, m.causal, 1 / Math.sqrt(D));
      return refLinear(o, W['o']!, bias['o']!, N, H * D, C, false);
    };
  }

  for (const rope of [false, true])
    it(`GQA${rope ? ' + RoPE' : ''}: forward, dx and every parameter gradient by finite differences`, () => {
      const m = new nn.Attention(C, { heads: H, kvHeads: Hkv, headDim: D, causal: true, rope: rope ? { convention: 'half' } : null, seed: 3 });
      expect(m.parameters().map((p) => p.name)).toEqual(['q_proj.weight', 'q_proj.bias', 'k_proj.weight', 'k_proj.bias', 'v_proj.weight', 'v_proj.bias', 'o_proj.weight', 'o_proj.bias']);
      const projs = { q: m.q_proj, k: m.k_proj, v: m.v_proj, o: m.o_proj };
      const W: Record<string, Float64Array> = {};
      const bias: Record<string, Float64Array> = {};
      for (const [n, p] of Object.entries(projs)) {
        W[n] = Float64Array.from(p.weight.tensor.toArray());
        bias[n] = Float64Array.from(p.bias!.tensor.toArray());
      }
      const x = input(B * T * C, 17, 1.5);
      const ref = reference(m, x.f64, W, bias, rope);
      const y = m.forward(Tensor.from(x.f32, [B, T, C]));
      expectClose(y.toArray(), ref(), 'y', 1e-5, 1e-5);
      const r = input(B * T * C, 18);
      m.zeroGrad();
      const dx = m.backward(Tensor.from(r.f32, [B, T, C]));
      expectClose(dx.toArray(), fdGrad(x.f64, ref, r.f64), 'dx');
      for (const [n, p] of Object.entries(projs)) {
        expectClose(p.weight.grad!.toArray(), fdGrad(W[n]!, ref, r.f64), `${n}_proj.weight`);
        expectClose(p.bias!.grad!.toArray(), fdGrad(bias[n]!, ref, r.f64), `${n}_proj.bias`);
      }
    });

  it('end to end in float32: finite differences of the native forward agree with backward', () => {
    // Here the forward itself runs in float32, so the step must balance truncation O(h²)
    // against round-off O(ε₃₂·√n·|y|/h): with |y| ~ 1, n = 48 outputs, ε₃₂ = 6e-8, h = 1e-2 gives
    // ~1e-5 + ~4e-5 of error; we allow 2e-3 absolute + 2e-2 relative.
    const m = new nn.Attention(C, { heads: H, kvHeads: Hkv, headDim: D, rope: { convention: 'interleaved' }, seed: 5 });
    const xs = input(B * T * C, 21).f32;
    const r = input(B * T * C, 22).f64;
    const L = (xv: Float32Array): number => {
      const y = m.forward(Tensor.from(xv, [B, T, C])).toArray();
      let s = 0;
      for (let i = 0; i < y.length; i++) s += r[i]! * y[i]!;
      return s;
    };
    m.forward(Tensor.from(xs, [B, T, C]));
    const dx = m.backward(Tensor.from(Float32Array.from(r), [B, T, C])).toArray();
    const h = 1e-2;
    for (const i of [0, 5, 13, 22, 31, 40, 47]) {
      const xp = xs.slice();
      xp[i] = xp[i]! + h;
      const xm = xs.slice();
      xm[i] = xm[i]! - h;
      const fd = (L(xp) - L(xm)) / (2 * h);
      expect(Math.abs(fd - dx[i]!)).toBeLessThanOrEqual(2e-3 + 2e-2 * Math.abs(fd));
    }
  });

  it('frozen projections get no gradient; the input gradient still flows; buffers reused', () => {
    const m = new nn.Attention(C, { heads: H, kvHeads: Hkv, headDim: D, seed: 1 });
    const x = Tensor.randn([B, T, C], { seed: 2 });
    const dy = Tensor.randn([B, T, C], { seed: 3 });
    m.zeroGrad();
    m.freeze();
    const y1 = m.forward(x);
    const dx1 = m.backward(dy);
    expect(dx1.toArray().some((v) => v !== 0)).toBe(true);
    for (const p of m.parameters()) expect(p.grad!.toArray().every((v) => v === 0)).toBe(true);
    m.unfreeze();
    const y2 = m.forward(x);
    const dx2 = m.backward(dy);
    expect(y2).toBe(y1);
    expect(dx2).toBe(dx1);
    expect(m.parameters().every((p) => p.grad!.toArray().some((v) => v !== 0))).toBe(true);
  });
});
