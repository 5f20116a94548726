/**
 * bfloat16 activations in the CUDA kernel bodies (native/cuda/nn_*_body.h instantiated with
 * T = hd::bf16), run by the CUDA emulation on the host.
 *
 * Tolerance. Inputs are made bf16 first (rounded to nearest even), and the float64 reference is
 * computed from those rounded values, so the only differences left are (a) the kernels' float32
 * arithmetic (the 1e-5·max absolute slack the float32 suites use) and (b) the one rounding of
 * each stored bf16 result: round to nearest even with an 8-bit significand is off by at most
 * u = 2⁻⁸ of the value. So: |got − ref| ≤ u·|ref| + 1e-5·max(1, max|ref|), nothing looser.
 * Results kept in float32 (the loss, the norms' rstd, parameter gradients, lse) get the float32
 * tolerance only. A kernel that read bf16 as float32 (or wrote the wrong half) is off by O(1).
 * The float32 instantiation is the code it was: the float32 emulation suites
 * (cuda-emulation*.test.ts, attention-emulation.test.ts) still pass against the CPU unchanged,
 * and here the dropout and embedding rows are checked bit for bit against the float32 kernel
 * run on the same rounded values.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { DTypeError, kfac, nn, ops, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import { BLOCK_CASES, caseInputs, refAttentionBackward } from '../support/attention-ref.js';
import { bf16Round, emulationPossible } from '../support/emulation.js';
import { expectClose, input, refAttention, refCrossEntropy, refLayerNorm, refLinear, refRmsNorm, refRope, silu } from '../support/nn-helpers.js';

const F = nn.functional;
const U = 2 ** -8; // bf16 unit roundoff (round to nearest even, 8 significant bits)
const ATOL = 1e-5; // float32 arithmetic, relative to max(1, max|ref|)

const bf = (a: Float32Array, shape: number[]): Tensor => Tensor.from(a, shape).to('cuda', { dtype: 'bfloat16' });
const nanBf = (shape: number[]): Tensor => bf(new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), shape);
const f32 = (a: Float32Array, shape: number[]): Tensor => Tensor.from(a, shape).to('cuda');
const read = (t: Tensor): Float32Array => t.to('cpu', { dtype: 'float32' }).toArray();
/** Rounded input: the float32 values the bf16 tensor holds, and as float64. */
const rin = (n: number, seed: number, scale = 1): { f32: Float32Array; f64: Float64Array } => {
  const r = bf16Round(input(n, seed, scale).f32);
  return { f32: r, f64: Float64Array.from(r) };
};
const closeBf = (got: Tensor, ref: ArrayLike<number>, what: string): void => {
  expect(got.dtype, `${what}: dtype`).toBe('bfloat16');
  expectClose(read(got), ref, what, ATOL, U);
};

describe.skipIf(!emulationPossible())('bf16 activations in the CUDA kernels (emulated)', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each([
    [1, 1],
    [7, 129],
    [33, 1000],
  ])('silu, swiglu, gelu forward and backward [%i, %i], in place too', (N, C) => {
    const s = [N, C];
    const x = rin(N * C, N * 31 + C, 2.5), u = rin(N * C, N + 5), d = rin(N * C, C + 9);
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    const dsilu = (v: number): number => sig(v) * (1 + v * (1 - sig(v)));
    closeBf(F.siluForward(bf(x.f32, s), nanBf(s)), x.f64.map(silu), 'silu forward');
    closeBf(F.siluBackward(bf(x.f32, s), bf(d.f32, s), nanBf(s)), x.f64.map((v, i) => d.f64[i]! * dsilu(v)), 'silu backward');
    const xi = bf(x.f32, s);
    closeBf(F.siluForward(xi, xi), x.f64.map(silu), 'silu forward in place');
    closeBf(F.swigluForward(bf(x.f32, s), bf(u.f32, s), nanBf(s)), x.f64.map((v, i) => silu(v) * u.f64[i]!), 'swiglu forward');
    const dg = nanBf(s), du = nanBf(s);
    F.swigluBackward(bf(x.f32, s), bf(u.f32, s), bf(d.f32, s), dg, du);
    closeBf(dg, x.f64.map((v, i) => d.f64[i]! * u.f64[i]! * dsilu(v)), 'swiglu dgate');
    closeBf(du, x.f64.map((v, i) => d.f64[i]! * silu(v)), 'swiglu dup');
    const relu = F.reluForward(bf(x.f32, s), nanBf(s));
    expect(Array.from(read(relu)), 'relu is exact').toEqual(Array.from(x.f32, (v) => Math.max(v, 0)));
  });

  it.each([
    [1, 3],
    [7, 129],
    [33, 1000],
  ])('rmsnorm and layernorm [%i, %i]: bf16 rows, float32 statistics and parameter gradients', (N, C) => {
    const s = [N, C];
    const x = rin(N * C, N * 7 + C, 2), d = rin(N * C, N + C), w = input(C, C + 3).f32;
    const wt = f32(w, [C]);
    const out = nanBf(s), rstd = f32(new Float32Array(N).fill(NaN), [N]);
    F.rmsNormForward(bf(x.f32, s), wt, 1e-5, out, rstd);
    closeBf(out, refRmsNorm(x.f64, w, N, C, 1e-5), 'rmsnorm forward');
    // backward by definition: y = x·r·w, r = (mean x² + eps)^-½ → dx = r·(dout·w − x·r²·mean(dout·w·x))
    const dx = nanBf(s), dw = f32(new Float32Array(C), [C]);
    F.rmsNormBackward(bf(x.f32, s), wt, rstd, bf(d.f32, s), { dx, dw });
    const rdx = new Float64Array(N * C), rdw = new Float64Array(C);
    for (let n = 0; n < N; n++) {
      let ms = 0, dot = 0;
      for (let c = 0; c < C; c++) ms += x.f64[n * C + c]! ** 2;
      const r = 1 / Math.sqrt(ms / C + 1e-5);
      for (let c = 0; c < C; c++) dot += d.f64[n * C + c]! * w[c]! * x.f64[n * C + c]!;
      for (let c = 0; c < C; c++) {
        rdx[n * C + c] = r * (d.f64[n * C + c]! * w[c]! - x.f64[n * C + c]! * r * r * (dot / C));
        rdw[c]! += d.f64[n * C + c]! * x.f64[n * C + c]! * r;
      }
    }
    closeBf(dx, rdx, 'rmsnorm dx');
    expectClose(read(dw), rdw, 'rmsnorm dw (float32)', 1e-4, 1e-4);
    const lo = nanBf(s), mean = f32(new Float32Array(N), [N]), lr = f32(new Float32Array(N), [N]);
    F.layerNormForward(bf(x.f32, s), wt, f32(w, [C]), 1e-5, lo, mean, lr);
    closeBf(lo, refLayerNorm(x.f64, w, w, N, C, 1e-5), 'layernorm forward');
  });

  it.each(['half', 'interleaved'] as const)('rope %s forward and backward (inverse rotations)', (convention) => {
    const [B, T, H, D] = [2, 5, 3, 8];
    const s = [B, T, H, D];
    const x = rin(B * T * H * D, 41);
    const y = F.ropeForward(bf(x.f32, s), nanBf(s), { offset: 3, convention });
    closeBf(y, refRope(x.f64, B, T, H, D, 3, 10000, convention), 'rope forward');
    // the backward rotates by −angle: negating the second of each pair, rotating by +angle and
    // negating it again is that rotation
    const second = (i: number): boolean => (convention === 'half' ? i % D >= D / 2 : i % 2 === 1);
    const flip = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, (v, i) => (second(i) ? -v : v));
    const back = F.ropeBackward(bf(x.f32, s), nanBf(s), { offset: 3, convention });
    closeBf(back, flip(refRope(flip(x.f64), B, T, H, D, 3, 10000, convention)), 'rope backward');
  });

  it('dropout: the same mask as float32, each kept value rounded once', () => {
    const n = 4099;
    const x = rin(n, 5);
    const y16 = read(F.dropoutForward(bf(x.f32, [n]), nanBf([n]), 0.3, 1234));
    const y32 = read(F.dropoutForward(f32(x.f32, [n]), f32(new Float32Array(n), [n]), 0.3, 1234));
    expect(Array.from(y16)).toEqual(Array.from(bf16Round(y32)));
    expect(y16.filter((v) => v === 0).length).toBeGreaterThan(n * 0.2);
  });

  it('embedding rows: gather rounds W once; scatter widens dout exactly', () => {
    const [V, C, n] = [11, 37, 23];
    const W = input(V * C, 8).f32;
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 7) % V);
    const out = F.embeddingForward(ids, f32(W, [V, C]), nanBf([n, C]));
    const want = new Float32Array(n * C);
    for (let r = 0; r < n; r++) want.set(W.subarray(ids[r]! * C, ids[r]! * C + C), r * C);
    expect(Array.from(read(out))).toEqual(Array.from(bf16Round(want)));
    const d = rin(n * C, 9);
    const dW16 = f32(new Float32Array(V * C), [V, C]), dW32 = f32(new Float32Array(V * C), [V, C]);
    F.embeddingBackward(ids, bf(d.f32, [n, C]), dW16);
    F.embeddingBackward(ids, f32(d.f32, [n, C]), dW32);
    expect(Array.from(read(dW16))).toEqual(Array.from(read(dW32)));
  });

  it.each([1, 7, 33])('cross-entropy on bf16 logits (%i rows): float32 loss, bf16 dlogits (in place too)', (N) => {
    const V = 257;
    const z = rin(N * V, N + 100, 3);
    const t = Int32Array.from({ length: N }, (_, i) => (i === 1 ? -100 : (i * 37) % V));
    const dz = nanBf([N, V]);
    const r = F.crossEntropy(bf(z.f32, [N, V]), t, dz);
    expect(r.loss).toBeCloseTo(refCrossEntropy(z.f64, t, N, V, -100), 5);
    const cnt = t.filter((v) => v !== -100).length;
    const ref = new Float64Array(N * V);
    for (let n = 0; n < N; n++) {
      if (t[n] === -100) continue;
      let mx = -Infinity, se = 0;
      for (let v = 0; v < V; v++) mx = Math.max(mx, z.f64[n * V + v]!);
      for (let v = 0; v < V; v++) se += Math.exp(z.f64[n * V + v]! - mx);
      for (let v = 0; v < V; v++) ref[n * V + v] = (Math.exp(z.f64[n * V + v]! - mx) / se - (v === t[n] ? 1 : 0)) / cnt;
    }
    closeBf(dz, ref, 'dlogits');
    const zi = bf(z.f32, [N, V]);
    F.crossEntropy(zi, t, zi);
    closeBf(zi, ref, 'dlogits in place');
  });

  it.each([
    [1, 1, 1],
    [7, 33, 5],
    [33, 129, 67],
  ])('linear N=%i IN=%i OUT=%i: bf16 x and y, bf16 or float32 weight; backward dx (bf16, accumulating), dW and db (float32)', (N, IN, OUT) => {
    const x = rin(N * IN, N + IN), W = rin(OUT * IN, OUT), b = input(OUT, 3).f32, dy = rin(N * OUT, 77);
    const ref = refLinear(x.f64, W.f64, b, N, IN, OUT, false);
    const Wb = Tensor.from(W.f32, [OUT, IN]).to('cuda', { dtype: 'bfloat16' });
    closeBf(F.linearForward(bf(x.f32, [N, IN]), Wb, f32(b, [OUT]), nanBf([N, OUT])), ref, 'y (bf16 W)');
    closeBf(F.linearForward(bf(x.f32, [N, IN]), f32(W.f32, [OUT, IN]), f32(b, [OUT]), nanBf([N, OUT])), ref, 'y (f32 W)');
    // no bias: the bf16 result straight from the GEMM (gemm_bf16_bf16c, cuBLASLt's bf16 D on a GPU)
    closeBf(F.linearForward(bf(x.f32, [N, IN]), Wb, null, nanBf([N, OUT])), refLinear(x.f64, W.f64, null, N, IN, OUT, false), 'y (bf16 W, no bias)');
    // float32 y from bf16 x: no output rounding
    const y32 = F.linearForward(bf(x.f32, [N, IN]), Wb, null, f32(new Float32Array(N * OUT).fill(NaN), [N, OUT]));
    expectClose(read(y32), refLinear(x.f64, W.f64, null, N, IN, OUT, false), 'y float32 from bf16 x', ATOL, 1e-5);
    const rdx = new Float64Array(N * IN), rdW = new Float64Array(OUT * IN), rdb = new Float64Array(OUT);
    for (let n = 0; n < N; n++)
      for (let o = 0; o < OUT; o++) {
        const g = dy.f64[n * OUT + o]!;
        rdb[o]! += g;
        for (let i = 0; i < IN; i++) {
          rdx[n * IN + i]! += g * W.f64[o * IN + i]!;
          rdW[o * IN + i]! += g * x.f64[n * IN + i]!;
        }
      }
    const dx = nanBf([N, IN]);
    F.linearBackward(bf(x.f32, [N, IN]), Wb, bf(dy.f32, [N, OUT]), { dx, dW: null, db: null });
    closeBf(dx, rdx, 'dx (bf16 W)');
    // accumulating into a bf16 dx: dx = bf16(dx + dy·W)
    const base = rin(N * IN, 5);
    const acc = bf(base.f32, [N, IN]);
    F.linearBackward(bf(x.f32, [N, IN]), Wb, bf(dy.f32, [N, OUT]), { dx: acc, dW: null, db: null, accumulateDx: true });
    closeBf(acc, rdx.map((v, i) => v + base.f64[i]!), 'dx accumulated');
    const dW = f32(new Float32Array(OUT * IN), [OUT, IN]), db = f32(new Float32Array(OUT), [OUT]), dx2 = nanBf([N, IN]);
    F.linearBackward(bf(x.f32, [N, IN]), f32(W.f32, [OUT, IN]), bf(dy.f32, [N, OUT]), { dx: dx2, dW, db });
    closeBf(dx2, rdx, 'dx (f32 W)');
    expectClose(read(dW), rdW, 'dW float32 from bf16 x and dy', ATOL, 1e-5);
    expectClose(read(db), rdb, 'db float32 from bf16 dy', ATOL, 1e-5);
  });

  // Attention. The forward's output and dq/dk/dv are rounded once: u·|ref|. Given the forward's
  // (bf16) output, the backward's D = rowsum(dO ∘ O) reads O rounded, off by at most
  // u·Σ_c |dO_c·O_c|; dS = P ∘ (dP − D) carries that into dq = scale·dS K (and dk) as at most
  // scale·u·maxD·max|k|·Σ_j P_j = scale·u·maxD·max|k| (likewise max|q|): an absolute term we
  // compute from the data and add, on top of the rounding of dq itself.
  it.each(BLOCK_CASES.slice(0, 4).map((c, i) => [i, c] as const))('attention case %i: forward and backward', (_, c) => {
    const { B, Tq, Tk, H, Hkv, D } = c;
    const a = caseInputs(c, 300);
    const q = bf16Round(a.q.f32), k = bf16Round(a.k.f32), v = bf16Round(a.v.f32), dO = bf16Round(a.dO.f32);
    const opts = { ...a.opts, mask: a.opts.mask ? a.opts.mask.to('cuda') : null };
    const [qs, ks] = [[B, Tq, H, D], [B, Tk, Hkv, D]];
    const out = nanBf(qs), lse = f32(new Float32Array(B * H * Tq).fill(NaN), [B, H, Tq]);
    F.attentionForward(bf(q, qs), bf(k, ks), bf(v, ks), out, lse, opts);
    const d = { B, Tq, Tk, H, Hkv, D };
    closeBf(out, refAttention(q, k, v, a.m, d, c.causal, a.scale, a.drop), 'out');
    const ref = refAttentionBackward(q, k, v, a.m, dO, d, c.causal, a.scale, a.drop);
    const o = read(out);
    let maxD = 0;
    for (let r = 0; r < B * Tq * H; r++) {
      let s = 0;
      for (let cc = 0; cc < D; cc++) s += Math.abs(dO[r * D + cc]! * o[r * D + cc]!);
      maxD = Math.max(maxD, s);
    }
    const maxAbs = (t: Float32Array): number => t.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (const withOut of [false, true]) {
      const g = [nanBf(qs), nanBf(ks), nanBf(ks)] as const;
      F.attentionBackward(bf(q, qs), bf(k, ks), bf(v, ks), lse, bf(dO, qs), g[0], g[1], g[2], { ...opts, out: withOut ? out : null });
      const extra = withOut ? a.scale * U * maxD * Math.max(maxAbs(k), maxAbs(q)) * Tk : 0;
      const want = [ref.dq, ref.dk, ref.dv];
      g.forEach((t, i) => {
        const w = want[i]!;
        const mx = w.reduce((m, x) => Math.max(m, Math.abs(x)), 1);
        expect(t.dtype).toBe('bfloat16');
        expectClose(read(t), w, `${['dq', 'dk', 'dv'][i]} (out ${withOut})`, ATOL + extra / mx, U);
      });
    }
  });

  // The K-FAC factor of a layer whose input is a bf16 activation: F ← βF + (1 − β)·scale/R·x̃ᵀx̃
  // in float32 from the bf16 values (products exact, float32 sums: the float32 tolerance); the
  // device's GEMM is cuBLASLt with bf16 inputs, here the CPU kernel on the exactly widened copy.
  it.each([
    [1, 7, false],
    [33, 5, true],
    [67, 33, true],
  ])('factor update from a bf16 x [%i, %i], bias %s', (R, d, bias) => {
    const x = rin(R * d, R + d);
    const D = d + (bias ? 1 : 0);
    const F0 = input(D * D, 4).f32;
    for (let i = 0; i < D; i++) for (let j = 0; j < i; j++) F0[i * D + j] = F0[j * D + i]!;
    const F = f32(F0, [D, D]);
    kfac.updateFactor(F, bf(x.f32, [R, d]), { beta: 0.9, scale: 2, bias });
    const ref = new Float64Array(D * D);
    for (let i = 0; i < D; i++)
      for (let j = 0; j < D; j++) {
        let s = 0;
        for (let r = 0; r < R; r++) s += (i < d ? x.f64[r * d + i]! : 1) * (j < d ? x.f64[r * d + j]! : 1);
        ref[i * D + j] = 0.9 * F0[i * D + j]! + (0.1 * 2 * s) / R;
      }
    expectClose(read(F), ref, 'factor', ATOL, 1e-5);
  });

  it('fill on bf16: every element the value rounded once to bf16 (zeroing a bf16 gradient buffer); on the CPU a DTypeError', () => {
    const t = bf(input(1000 + 7, 5).f32, [1007]);
    ops.fill(t, 0);
    expect(Array.from(read(t)).every((v) => v === 0 && !Object.is(v, -0))).toBe(true);
    ops.fill(t, 1 / 3);
    expect(Array.from(new Set(read(t)))).toEqual(Array.from(bf16Round(Float32Array.of(1 / 3))));
    expect(() => ops.fill(Tensor.from(new Float32Array(3), [3]).to('cpu', { dtype: 'bfloat16' }), 0)).toThrow(/fill takes bfloat16 only/);
  });

  it('bf16 activations on the CPU are a DTypeError naming the op and the argument', () => {
    const x = Tensor.from(new Float32Array(6), [2, 3]).to('cpu', { dtype: 'bfloat16' });
    const y = Tensor.from(new Float32Array(6), [2, 3]).to('cpu', { dtype: 'bfloat16' });
    expect(() => F.siluForward(x, y)).toThrow(DTypeError);
    expect(() => F.siluForward(x, y)).toThrow(/silu_forward.*bfloat16|x/);
    expect(() => F.rmsNormForward(x, Tensor.zeros([3]), 1e-5, y, Tensor.zeros([2]))).toThrow(/rmsnorm_forward/);
    // and on the cuda device, one storage type per call
    const xb = bf(new Float32Array(6), [2, 3]);
    expect(() => F.siluForward(xb, f32(new Float32Array(6), [2, 3]))).toThrow(DTypeError);
    expect(() => kfac.updateFactor(Tensor.zeros([3, 3]), x)).toThrow(/factor_update takes bfloat16 inputs only on cuda/);
  });
});
