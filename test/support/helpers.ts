/** Shared test utilities: a seeded JS generator and float64 references. */

import { mulberry32 } from '../../lib/util/random.js';

/** The library's mulberry32 with salt 0 (the seed used as is): seeded test inputs, independent of the native generator. */
export function rng(seed: number): () => number {
  return mulberry32(seed, 0);
}

/** max |got − want| over max |want| (over 1 when `want` is all zero). */
export function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - want[i]!));
    den = Math.max(den, Math.abs(want[i]!));
  }
  return num / (den || 1);
}

/** n uniform values in [-1, 1) as float32. */
export function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 2 * r() - 1;
  return out;
}

/**
 * Float64 reference GEMM, row-major: C = alpha·op(A)·op(B) + beta·C0 (beta = 0 ignores C0).
 * Also returns |alpha|·Σ|a||b| + |beta||c0| per element, the scale for error bounds.
 */
export function refGemm(
  A: Float32Array,
  B: Float32Array,
  C0: Float32Array | undefined,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha: number,
  beta: number,
): { c: Float64Array; mag: Float64Array } {
  const c = new Float64Array(m * n);
  const mag = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let sa = 0;
      for (let p = 0; p < k; p++) {
        const a = transA ? A[p * m + i]! : A[i * k + p]!;
        const b = transB ? B[j * k + p]! : B[p * n + j]!;
        s += a * b;
        sa += Math.abs(a * b);
      }
      const c0 = beta !== 0 && C0 ? C0[i * n + j]! : 0;
      c[i * n + j] = alpha * s + beta * c0;
      mag[i * n + j] = Math.abs(alpha) * sa + Math.abs(beta * c0);
    }
  return { c, mag };
}

/** Largest |got − want| / (tol · (scale + tiny)) over all elements; ≤ 1 passes. */
export function worstRelative(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>, tol: number): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!;
    if (!Number.isFinite(g)) return Infinity;
    const e = Math.abs(g - want[i]!) / (tol * (scale[i]! + 1e-30));
    if (e > worst) worst = e;
  }
  return worst;
}
