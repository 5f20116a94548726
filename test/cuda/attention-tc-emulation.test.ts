/**
 * Attention on tensor cores (native/cuda/nn_attention_tc_body.h): bf16 activations whose head
 * dimension is a multiple of 16, run by the CUDA emulation (each warp's 16×16×16 tile products
 * done by its lane 0 in loops, hd_mma.h), against float64 and against the CUDA-core bodies
 * (the switch `_attentionTensorCores(false)`).
 *
 * Tolerance, per element. Inputs are rounded to bf16 first and the float64 reference is computed
 * from those values, so what remains is (a) the one rounding of each stored bf16 result, u·|ref|
 * (u = 2⁻⁸); (b) the float32 sums, 1e-5·max(1, max|ref|); (c) the rounding of the tile products'
 * bf16 operands made inside the kernel — P·M before O += P V and dV += (P·M)ᵀ dO, dS before
 * dQ += dS K and dK += dSᵀ Q — each term off by at most u relative, so at most u times the sum of
 * the terms' magnitudes: out u·Σ_j P_j M_j |V_j| (the reference attention of |V|), dV
 * u·Σ_i P_i M_i |dO_i| (the reference dV of |dO|), dQ u·scale·Σ_j |dS_j||K_j|, dK
 * u·scale·Σ_i |dS_i||Q_i| (from the float64 dS below); (d) with the forward's bf16 output given,
 * D = rowsum(dO ∘ O) reads O rounded: the absolute term of cuda-emulation-bf16.test.ts. A kernel
 * that dropped a tile, mixed up a transpose or read the wrong half of a bf16 is off by O(1).
 */
import { beforeAll, afterAll, describe, expect, it } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import type { BlockCase } from '../support/attention-ref.js';
import { caseInputs, refAttentionBackward } from '../support/attention-ref.js';
import { bf16Round, emulationPossible } from '../support/emulation.js';
import { input, refAttention } from '../support/nn-helpers.js';

const F = nn.functional;
const U = 2 ** -8;
const ATOL = 1e-5;

const bf = (a: Float32Array, shape: number[]): Tensor => Tensor.from(a, shape).to('cuda', { dtype: 'bfloat16' });
const nanBf = (shape: number[]): Tensor => bf(new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), shape);
const f32 = (a: Float32Array, shape: number[]): Tensor => Tensor.from(a, shape).to('cuda');
const read = (t: Tensor): Float32Array => t.to('cpu', { dtype: 'float32' }).toArray();
const abs = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, Math.abs);

/** |got − ref| ≤ u·|ref| + u·bound + ATOL·max(1, max|ref|) + extra, element by element. */
function within(got: Float32Array, ref: ArrayLike<number>, bound: ArrayLike<number>, what: string, extra = 0): void {
  expect(got.length, `${what}: length`).toBe(ref.length);
  let mx = 1;
  for (let i = 0; i < ref.length; i++) mx = Math.max(mx, Math.abs(ref[i]!));
  for (let i = 0; i < ref.length; i++) {
    const tol = U * Math.abs(ref[i]!) + U * bound[i]! + ATOL * mx + extra;
    const e = Math.abs(got[i]! - ref[i]!);
    if (!(e <= tol)) expect.fail(`${what}: element ${i} got ${got[i]} want ${ref[i]} (error ${e.toExponential(2)}, tolerance ${tol.toExponential(2)})`);
  }
}

/** Σ_j |dS_ij|·|K_j| → dq-shaped and Σ_i |dS_ij|·|Q_i| → dk-shaped, scaled, from the float64 dS. */
function dsBounds(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null, dO: ArrayLike<number>, c: BlockCase, scale: number, drop: ArrayLike<number> | undefined, bias: ArrayLike<number> | undefined) {
  const { B, Tq, Tk, H, Hkv, D, causal } = c;
  const bq = new Float64Array(B * Tq * H * D), bk = new Float64Array(B * Tk * Hkv * D);
  const s = new Float64Array(Tk), dp = new Float64Array(Tk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      const kr = (j: number) => ((b * Tk + j) * Hkv + g) * D;
      for (let i = 0; i < Tq; i++) {
        const qr = ((b * Tq + i) * H + h) * D;
        let mx = -Infinity;
        for (let j = 0; j < Tk; j++) {
          s[j] = -Infinity;
          if ((causal && j > i + (Tk - Tq)) || (mask && mask[b * Tk + j] === 0)) continue;
          let t = 0;
          for (let e = 0; e < D; e++) t += q[qr + e]! * k[kr(j) + e]!;
          s[j] = t * scale + (bias ? bias[(h * Tq + i) * Tk + j]! : 0);
          mx = Math.max(mx, s[j]!);
        }
        if (mx === -Infinity) continue;
        let z = 0;
        for (let j = 0; j < Tk; j++) z += s[j] === -Infinity ? 0 : Math.exp(s[j]! - mx);
        let dsum = 0;
        for (let j = 0; j < Tk; j++) {
          s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j]! - mx) / z;
          let t = 0;
          for (let e = 0; e < D; e++) t += dO[qr + e]! * v[kr(j) + e]!;
          dp[j] = t * (drop ? drop[((b * H + h) * Tq + i) * Tk + j]! : 1);
          dsum += s[j]! * dp[j]!;
        }
        for (let j = 0; j < Tk; j++) {
          const ds = Math.abs(s[j]! * (dp[j]! - dsum)) * scale;
          for (let e = 0; e < D; e++) {
            bq[qr + e]! += ds * Math.abs(k[kr(j) + e]!);
            bk[kr(j) + e]! += ds * Math.abs(q[qr + e]!);
          }
        }
      }
    }
  return { bq, bk };
}

type TcCase = BlockCase & { bias?: boolean };

// Head dimensions 16…128 (the tile and several), odd lengths around the 32-row tiles, every head
// grouping, padding, Tq < Tk (causal offset), dropout, a score bias.
const CASES: TcCase[] = [
  { B: 2, Tq: 5, Tk: 5, H: 4, Hkv: 2, D: 16, causal: true, masked: true, dropout: 0 },
  { B: 1, Tq: 67, Tk: 67, H: 2, Hkv: 2, D: 32, causal: true, masked: false, dropout: 0.2 },
  { B: 1, Tq: 97, Tk: 97, H: 4, Hkv: 1, D: 64, causal: true, masked: false, dropout: 0 },
  { B: 1, Tq: 40, Tk: 130, H: 2, Hkv: 2, D: 16, causal: false, masked: true, dropout: 0.1 },
  { B: 2, Tq: 33, Tk: 70, H: 2, Hkv: 1, D: 48, causal: true, masked: true, dropout: 0 },
  { B: 1, Tq: 33, Tk: 33, H: 1, Hkv: 1, D: 128, causal: true, masked: false, dropout: 0 },
  { B: 1, Tq: 45, Tk: 45, H: 2, Hkv: 2, D: 32, causal: false, masked: true, dropout: 0, bias: true },
];

function run(c: TcCase, seed: number) {
  const { B, Tq, Tk, H, Hkv, D } = c;
  const a = caseInputs(c, seed);
  const q = bf16Round(a.q.f32), k = bf16Round(a.k.f32), v = bf16Round(a.v.f32), dO = bf16Round(a.dO.f32);
  const bias = c.bias ? input(H * Tq * Tk, seed + 9, 2).f32 : undefined;
  const qs = [B, Tq, H, D], ks = [B, Tk, Hkv, D];
  const opts = { ...a.opts, mask: a.opts.mask ? a.opts.mask.to('cuda') : null, ...(bias ? { bias: f32(bias, [H, Tq, Tk]) } : {}) };
  const out = nanBf(qs), lse = f32(new Float32Array(B * H * Tq).fill(NaN), [B, H, Tq]);
  F.attentionForward(bf(q, qs), bf(k, ks), bf(v, ks), out, lse, opts);
  const grads = [false, true].map((withOut) => {
    const g = [nanBf(qs), nanBf(ks), nanBf(ks)] as const;
    const dbias = bias ? f32(new Float32Array(B * H * Tq * Tk).fill(NaN), [B, H, Tq, Tk]) : null;
    F.attentionBackward(bf(q, qs), bf(k, ks), bf(v, ks), lse, bf(dO, qs), g[0], g[1], g[2], { ...opts, out: withOut ? out : null, ...(dbias ? { dbias } : {}) });
    return [...g.map(read), ...(dbias ? [read(dbias)] : [])];
  });
  return { a, q, k, v, dO, bias, out: read(out), lse: read(lse), grads };
}

describe.skipIf(!emulationPossible())('attention on tensor cores (emulated)', () => {
  let previous = true;
  beforeAll(() => {
    native()._cudaEmulation();
    previous = native()._attentionTensorCores();
  });
  afterAll(() => native()._attentionTensorCores(previous));

  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('%s: against float64, within the operands\' rounding', (_, c) => {
    native()._attentionTensorCores(true);
    const r = run(c, 41);
    const { a, q, k, v, dO, bias } = r;
    const d = { B: c.B, Tq: c.Tq, Tk: c.Tk, H: c.H, Hkv: c.Hkv, D: c.D };
    const b64 = bias ? Float64Array.from(bias) : undefined;
    within(r.out, refAttention(q, k, v, a.m, d, c.causal, a.scale, a.drop, b64), refAttention(q, k, abs(v), a.m, d, c.causal, a.scale, a.drop, b64), 'out');
    const ref = refAttentionBackward(q, k, v, a.m, dO, d, c.causal, a.scale, a.drop, b64);
    const dvBound = refAttentionBackward(q, k, v, a.m, abs(dO), d, c.causal, a.scale, a.drop, b64).dv;
    const { bq, bk } = dsBounds(q, k, v, a.m, dO, c, a.scale, a.drop, b64);
    let maxD = 0;
    for (let row = 0; row < c.B * c.Tq * c.H; row++) {
      let s = 0;
      for (let e = 0; e < c.D; e++) s += Math.abs(dO[row * c.D + e]! * r.out[row * c.D + e]!);
      maxD = Math.max(maxD, s);
    }
    const mq = Math.max(...abs(q)), mk = Math.max(...abs(k));
    r.grads.forEach((g, w) => {
      const withOut = w === 1;
      const extra = withOut ? a.scale * U * maxD * Math.max(mk, mq) * c.Tk : 0;
      within(g[0]!, ref.dq, bq, `dq (out ${withOut})`, extra);
      within(g[1]!, ref.dk, bk, `dk (out ${withOut})`, extra);
      within(g[2]!, ref.dv, dvBound, `dv (out ${withOut})`);
      if (ref.dbias) within(g[3]!, ref.dbias, new Float64Array(ref.dbias.length), `dbias (out ${withOut})`, extra / a.scale);
    });
  });

  it.each(CASES.slice(0, 3).map((c) => [JSON.stringify(c), c] as const))('%s: the switch picks the body, and both agree', (_, c) => {
    native()._attentionTensorCores(true);
    const tc = run(c, 7);
    native()._attentionTensorCores(false);
    const simt = run(c, 7);
    // the tile products round P·M and dS: some element differs, so the tensor-core body ran
    expect(tc.out.some((x, i) => x !== simt.out[i]), 'outputs differ by the operands\' rounding').toBe(true);
    expect(tc.grads[0]![0]!.some((x, i) => x !== simt.grads[0]![0]![i]), 'dq differs by the operands\' rounding').toBe(true);
    // the lse comes from float32 scores on both paths: equal up to the order of the sums
    tc.lse.forEach((x, i) => expect(Math.abs(x - simt.lse[i]!), `lse ${i}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(x))));
  });

  it('a head dimension that is not a multiple of 16 runs the CUDA-core body, bit for bit', () => {
    const c: TcCase = { B: 1, Tq: 37, Tk: 37, H: 2, Hkv: 1, D: 24, causal: true, masked: true, dropout: 0.1 };
    native()._attentionTensorCores(true);
    const on = run(c, 3);
    native()._attentionTensorCores(false);
    const off = run(c, 3);
    expect(Array.from(on.out)).toEqual(Array.from(off.out));
    on.grads.forEach((g, w) => g.forEach((t, j) => expect(Array.from(t), `grad ${w}.${j}`).toEqual(Array.from(off.grads[w]![j]!))));
  });

  it('float32 activations never take the tensor-core body', () => {
    const c: TcCase = { B: 1, Tq: 20, Tk: 20, H: 2, Hkv: 2, D: 32, causal: true, masked: false, dropout: 0 };
    const a = caseInputs(c, 5);
    const go = (): Float32Array => {
      const out = f32(new Float32Array(c.B * c.Tq * c.H * c.D).fill(NaN), [c.B, c.Tq, c.H, c.D]);
      F.attentionForward(f32(a.q.f32, [1, 20, 2, 32]), f32(a.k.f32, [1, 20, 2, 32]), f32(a.v.f32, [1, 20, 2, 32]), out, f32(new Float32Array(40), [1, 2, 20]), a.opts);
      return read(out);
    };
    native()._attentionTensorCores(true);
    const on = go();
    native()._attentionTensorCores(false);
    expect(Array.from(on)).toEqual(Array.from(go()));
  });

  it('the switch takes a boolean only', () => {
    expect(() => (native()._attentionTensorCores as (x: unknown) => boolean)('yes')).toThrow(/boolean/);
  });
});
