/**
 * Float64 references and finite-difference tools for the nn suites.
 *
 * Gradient checks: the analytic gradient comes from the native float32 backward with
 * dOut = r (a fixed random projection), and is compared with central differences of
 * L(x) = Σ r·f(x) where f is the float64 JS reference forward (itself checked against the
 * native forward). In float64, a step h = 1e-5 makes the truncation error O(h²) ≈ 1e-10 and the
 * round-off O(ε₆₄·|L|/h) ≈ 1e-11, so the finite difference is exact to ~1e-9 and the tolerance
 * only has to cover float32 arithmetic in the kernel: relative errors of a few ε₃₂·√n ≈ 1e-7–1e-6
 * of the magnitude of the summed terms. We allow |got − want| ≤ 2e-5·max(1, max|want|) + 1e-4·|want|.
 * Measured: correct kernels use at most ~0.5% of that allowance (worst ratio 5.4e-3 over every
 * gradient check), while a formula that is off by 1% in one term (tried on RMSNorm's dx) exceeds
 * it ~70×; so the bound is ~200× above float32 noise and ~100× below a 1% bug.
 */
import { expect } from 'vitest';

import { Tensor } from '../../lib/index.js';
import { randomF32, rng } from './helpers.js';

export { randomF32, rng };

/** A float32 input and its float64 copy (the same values). */
export function input(n: number, seed: number, scale = 1): { f32: Float32Array; f64: Float64Array } {
  const f32 = randomF32(n, seed);
  if (scale !== 1) for (let i = 0; i < n; i++) f32[i] = f32[i]! * scale;
  return { f32, f64: Float64Array.from(f32) };
}

/** A tensor full of NaN: outputs are poisoned before a call so unwritten elements show. */
export function poisoned(shape: readonly number[]): Tensor {
  return Tensor.from(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(NaN), shape);
}

/** Central differences of Σ r·f() with respect to every element of `arr` (perturbed in place). */
export function fdGrad(arr: Float64Array, f: () => ArrayLike<number>, r: ArrayLike<number>, h = 1e-5): Float64Array {
  const g = new Float64Array(arr.length);
  const L = (): number => {
    const y = f();
    let s = 0;
    for (let i = 0; i < y.length; i++) s += r[i]! * y[i]!;
    return s;
  };
  for (let i = 0; i < arr.length; i++) {
    const x0 = arr[i]!;
    const hi = h * Math.max(1, Math.abs(x0));
    arr[i] = x0 + hi;
    const lp = L();
    arr[i] = x0 - hi;
    const lm = L();
    arr[i] = x0;
    g[i] = (lp - lm) / (2 * hi);
  }
  return g;
}

/** Elementwise |got − want| ≤ atol·max(1, max|want|) + rtol·|want|, with a readable failure. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, atol = 2e-5, rtol = 1e-4): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let mx = 1;
  for (let i = 0; i < want.length; i++) mx = Math.max(mx, Math.abs(want[i]!));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    const e = Number.isFinite(g) ? Math.abs(g - w) / (atol * mx + rtol * Math.abs(w)) : Infinity;
    if (e > worst) {
      worst = e;
      at = i;
    }
  }
  if (worst > 1) expect.fail(`${what}: element ${at} got ${got[at]} want ${want[at]} (${worst.toFixed(2)}× the tolerance)`);
}

// ---------------------------------------------------------------- references (float64)

export function refLinear(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number> | null, N: number, IN: number, OUT: number, conv1d: boolean): Float64Array {
  const y = new Float64Array(N * OUT);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < OUT; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < IN; i++) s += x[n * IN + i]! * (conv1d ? W[i * OUT + o]! : W[o * IN + i]!);
      y[n * OUT + o] = s;
    }
  return y;
}

export function refLayerNorm(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, N: number, C: number, eps: number): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += x[n * C + c]!;
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[n * C + c]! - m) ** 2;
    v /= C;
    const r = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) y[n * C + c] = (x[n * C + c]! - m) * r * w[c]! + (b ? b[c]! : 0);
  }
  return y;
}

export function refRmsNorm(x: ArrayLike<number>, w: ArrayLike<number>, N: number, C: number, eps: number): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += x[n * C + c]! ** 2;
    const r = 1 / Math.sqrt(s / C + eps);
    for (let c = 0; c < C; c++) y[n * C + c] = x[n * C + c]! * r * w[c]!;
  }
  return y;
}

/** erf by its Maclaurin series (|x| ≤ 3.5: ~1e-13 absolute in float64). */
export function erf(x: number): number {
  if (Math.abs(x) > 3.5) throw new Error('erf reference used outside |x| ≤ 3.5');
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export const geluErf = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
export const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
export const silu = (x: number): number => x / (1 + Math.exp(-x));

export interface AttnDims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  Hkv: number;
  D: number;
}

/**
 * Dense reference attention (rows that see no key give 0). Returns out [B, Tq, H, D].
 * drop: optional multipliers [B, H, Tq, Tk] applied to the probabilities (dropout).
 */
export function refAttention(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null, d: AttnDims, causal: boolean, scale: number, drop?: ArrayLike<number>, bias?: ArrayLike<number>): Float64Array {
  const { B, Tq, Tk, H, Hkv, D } = d;
  const R = H / Hkv;
  const out = new Float64Array(B * Tq * H * D);
  const s = new Float64Array(Tk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / R);
      for (let i = 0; i < Tq; i++) {
        let mx = -Infinity;
        for (let j = 0; j < Tk; j++) {
          const visible = (!causal || j <= i + (Tk - Tq)) && (!mask || mask[b * Tk + j] !== 0);
          if (!visible) {
            s[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let c = 0; c < D; c++) dot += q[((b * Tq + i) * H + h) * D + c]! * k[((b * Tk + j) * Hkv + g) * D + c]!;
          s[j] = dot * scale + (bias ? bias[(h * Tq + i) * Tk + j]! : 0);
          mx = Math.max(mx, s[j]!);
        }
        if (mx === -Infinity) continue;
        let z = 0;
        for (let j = 0; j < Tk; j++) z += s[j] === -Infinity ? 0 : Math.exp(s[j]! - mx);
        for (let j = 0; j < Tk; j++) {
          if (s[j] === -Infinity) continue;
          const p = (Math.exp(s[j]! - mx) / z) * (drop ? drop[((b * H + h) * Tq + i) * Tk + j]! : 1);
          for (let c = 0; c < D; c++) out[((b * Tq + i) * H + h) * D + c]! += p * v[((b * Tk + j) * Hkv + g) * D + c]!;
        }
      }
    }
  return out;
}

/** RoPE by definition on [B, T, H, D]. */
export function refRope(x: ArrayLike<number>, B: number, T: number, H: number, D: number, offset: number, base: number, convention: 'half' | 'interleaved'): Float64Array {
  const y = new Float64Array(B * T * H * D);
  const half = D / 2;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * D;
        for (let i = 0; i < half; i++) {
          const a = (offset + t) * base ** ((-2 * i) / D);
          const [i1, i2] = convention === 'half' ? [i, i + half] : [2 * i, 2 * i + 1];
          const x1 = x[o + i1]!;
          const x2 = x[o + i2]!;
          y[o + i1] = x1 * Math.cos(a) - x2 * Math.sin(a);
          y[o + i2] = x1 * Math.sin(a) + x2 * Math.cos(a);
        }
      }
  return y;
}

/** Mean cross-entropy over non-ignored rows (0 when none). */
export function refCrossEntropy(z: ArrayLike<number>, t: ArrayLike<number>, N: number, V: number, ignore: number): number {
  let s = 0;
  let cnt = 0;
  for (let n = 0; n < N; n++) {
    if (t[n] === ignore) continue;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, z[n * V + v]!);
    let e = 0;
    for (let v = 0; v < V; v++) e += Math.exp(z[n * V + v]! - mx);
    s += mx + Math.log(e) - z[n * V + t[n]!]!;
    cnt++;
  }
  return cnt ? s / cnt : 0;
}
