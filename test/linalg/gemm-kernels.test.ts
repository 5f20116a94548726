/**
 * The CPU sgemm on every micro-kernel this CPU can run (generic, avx2, avx512), with 1 and 2
 * threads, against a float64 reference. Loads the built addon directly so each kernel path
 * can be forced with setCpuKernel.
 *
 * Error bound: an inner product of length k in float32, summed in any order (blocked, FMA,
 * split over threads), satisfies |ŝ − s| ≤ γ_k Σ|a||b| with γ_n = n·u/(1 − n·u), u = 2⁻²⁴
 * (the standard forward error bound for summation). Scaling by alpha, beta·c and the final
 * addition add three roundings, so each element must satisfy
 *   |C − C_ref| ≤ γ_{k+3}·(|alpha|·Σ|a||b| + |beta|·|c|).
 * That is the rigorous worst case for any correct kernel; a packing or edge bug gives O(1)
 * errors.
 */
import { createRequire } from 'node:module';

import { afterAll, describe, expect, it } from 'vitest';

import { CPU, KERNELS, recordKernel } from '../support/isa.js';

interface NativeTensorLike {
  toFloat32Array(): Float32Array;
  dispose(): void;
}
interface Addon {
  NativeTensor: { fromFloat32Array(data: Float32Array, shape: number[]): NativeTensorLike };
  matmul(
    a: NativeTensorLike,
    b: NativeTensorLike,
    out: NativeTensorLike | null,
    opts: { transA: boolean; transB: boolean; alpha: number; beta: number },
  ): NativeTensorLike;
  setNumThreads(n: number): number;
  setCpuKernel(name: string): string;
  info(): { cpu: { avx2: boolean; fma: boolean; avx512f: boolean; defaultThreads: number } };
}

// KFAC_PEFT_BINARY: the binary under test when one is named (the sanitizer run names its own).
const addon = createRequire(import.meta.url)(process.env['KFAC_PEFT_BINARY'] || '../../build/Release/kfac_peft.node') as Addon;

/** Seeded uniform values in [-1, 1) as float32 (mulberry32). */
function randomF32(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (2 * ((t ^ (t >>> 14)) >>> 0)) / 4294967296 - 1;
  }
  return out;
}

interface Case {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** 0: plain 2-D; otherwise a batch count, with which operands are 3-D. */
  batch: number;
  batchA: boolean;
  batchB: boolean;
}

const DIMS: [number, number, number][] = [
  [1, 1, 1],
  [2, 3, 1],
  [3, 2, 7],
  [7, 7, 7],
  [17, 33, 63],
  [33, 17, 65],
  [63, 65, 127],
  [127, 129, 3],
  [257, 33, 65],
  [31, 257, 17],
  [13, 37, 401],
  [1, 1000, 3],
  [1000, 1, 1000],
  [5, 4096, 7],
  [101, 103, 1031],
  [7, 2000, 300],
  [257, 257, 257],
  [1, 37, 1000],
  [45, 1, 9],
  [1, 3, 70],
  [2, 1, 33],
  [9, 4500, 20],
  [40, 4200, 40],
];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];
const ALPHA_BETA: [number, number][] = [
  [1, 0],
  [-0.75, 0.5],
  [2, 1],
  [0, 0],
  [0, -1.5],
];

function caseMatrix(): Case[] {
  const cases: Case[] = [];
  let i = 0;
  for (const [m, n, k] of DIMS)
    for (const [transA, transB] of TRANSPOSES) {
      const [alpha, beta] = ALPHA_BETA[i++ % ALPHA_BETA.length]!;
      cases.push({ m, n, k, transA, transB, alpha, beta, batch: 0, batchA: false, batchB: false });
    }
  for (const [alpha, beta] of ALPHA_BETA)
    for (const [transA, transB] of TRANSPOSES)
      cases.push({ m: 33, n: 47, k: 29, transA, transB, alpha, beta, batch: 0, batchA: false, batchB: false });
  for (const [transA, transB] of TRANSPOSES) {
    const base = { transA, transB };
    cases.push({ ...base, m: 7, n: 9, k: 11, alpha: 1, beta: 0, batch: 5, batchA: true, batchB: true });
    cases.push({ ...base, m: 7, n: 9, k: 11, alpha: 0.5, beta: 1, batch: 4, batchA: false, batchB: true });
    cases.push({ ...base, m: 65, n: 33, k: 70, alpha: 1, beta: 0, batch: 3, batchA: true, batchB: false });
    cases.push({ ...base, m: 3, n: 130, k: 300, alpha: -1, beta: 2, batch: 3, batchA: false, batchB: true });
  }
  return cases;
}

interface Prepared {
  A: Float32Array;
  B: Float32Array;
  C0: Float32Array;
  ref: Float64Array;
  bound: Float64Array;
}

/** Inputs and the float64 reference with its per-element bound (computed once per case). */
function prepare(c: Case, seed: number): Prepared {
  const nb = Math.max(c.batch, 1);
  const sizeA = c.m * c.k, sizeB = c.k * c.n, sizeC = c.m * c.n;
  const A = randomF32((c.batchA ? nb : 1) * sizeA, seed);
  const B = randomF32((c.batchB ? nb : 1) * sizeB, seed + 1);
  const C0 = randomF32(nb * sizeC, seed + 2);
  const ref = new Float64Array(nb * sizeC);
  const bound = new Float64Array(nb * sizeC);
  const u = 2 ** -24;
  const gamma = ((c.k + 3) * u) / (1 - (c.k + 3) * u);
  for (let b = 0; b < nb; b++) {
    const oa = c.batchA ? b * sizeA : 0, ob = c.batchB ? b * sizeB : 0, oc = b * sizeC;
    for (let i = 0; i < c.m; i++)
      for (let j = 0; j < c.n; j++) {
        let s = 0, mag = 0;
        for (let p = 0; p < c.k; p++) {
          const x = A[oa + (c.transA ? p * c.m + i : i * c.k + p)]!;
          const y = B[ob + (c.transB ? j * c.k + p : p * c.n + j)]!;
          s += x * y;
          mag += Math.abs(x * y);
        }
        const c0 = c.beta === 0 ? 0 : C0[oc + i * c.n + j]!;
        ref[oc + i * c.n + j] = c.alpha * s + c.beta * c0;
        bound[oc + i * c.n + j] = gamma * (Math.abs(c.alpha) * mag + Math.abs(c.beta * c0)) + 1e-30;
      }
  }
  return { A, B, C0, ref, bound };
}

/** Runs one case through the addon; returns the worst |C − C_ref| / bound (NaN counts as ∞). */
function runCase(c: Case, p: Prepared): number {
  const nb = Math.max(c.batch, 1);
  const shapeA = c.transA ? [c.k, c.m] : [c.m, c.k];
  const shapeB = c.transB ? [c.n, c.k] : [c.k, c.n];
  const a = addon.NativeTensor.fromFloat32Array(p.A, c.batch && c.batchA ? [nb, ...shapeA] : shapeA);
  const b = addon.NativeTensor.fromFloat32Array(p.B, c.batch && c.batchB ? [nb, ...shapeB] : shapeB);
  // beta = 0 must not read C: poison it so a read shows up as NaN.
  const init = c.beta === 0 ? new Float32Array(p.C0.length).fill(Number.NaN) : p.C0;
  const out = addon.NativeTensor.fromFloat32Array(init, c.batch ? [nb, c.m, c.n] : [c.m, c.n]);
  addon.matmul(a, b, out, { transA: c.transA, transB: c.transB, alpha: c.alpha, beta: c.beta });
  const got = out.toFloat32Array();
  a.dispose();
  b.dispose();
  out.dispose();
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - p.ref[i]!) / p.bound[i]!;
    worst = Number.isNaN(r) ? Number.POSITIVE_INFINITY : Math.max(worst, r);
  }
  return worst;
}

const CASES = caseMatrix();
const prepared = new Map<number, Prepared>();
const preparedFor = (i: number): Prepared => {
  let p = prepared.get(i);
  if (!p) {
    p = prepare(CASES[i]!, 1000 + 7 * i);
    prepared.set(i, p);
  }
  return p;
};
const label = (c: Case) =>
  `${c.m}x${c.n}x${c.k} ${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'} alpha=${c.alpha} beta=${c.beta}` +
  (c.batch ? ` batch=${c.batch}${c.batchA ? '' : ' (A broadcast)'}${c.batchB ? '' : ' (B broadcast)'}` : '');

afterAll(() => {
  addon.setCpuKernel('auto');
  addon.setNumThreads(0);
});

for (const { name: kernel, available, skip } of KERNELS) {
  describe(`sgemm kernel ${kernel}${skip}`, () => {
    it.skipIf(!available).each([1, 2])('matches the float64 reference on every case with %i thread(s)', (threads) => {
      expect(addon.setCpuKernel(kernel)).toBe(kernel);
      addon.setNumThreads(threads);
      const failures: string[] = [];
      CASES.forEach((c, i) => {
        const worst = runCase(c, preparedFor(i));
        if (!(worst <= 1)) failures.push(`${label(c)}: error/bound ${worst}`);
      });
      addon.setCpuKernel('auto');
      addon.setNumThreads(0);
      expect(failures).toEqual([]);
      recordKernel('sgemm', kernel, `${threads} thread${threads > 1 ? 's' : ''}`);
    });
  });
}

describe('kernel selection', () => {
  it('reports the kernel in use and rejects unknown names with a typed error', () => {
    for (const k of KERNELS) {
      if (k.available) expect(addon.setCpuKernel(k.name)).toBe(k.name);
      else expect(() => addon.setCpuKernel(k.name)).toThrow(k.name === 'avx512' ? /AVX-512/ : /AVX2\/FMA/);
    }
    expect(() => addon.setCpuKernel('avx9000')).toThrow(/avx512/);
    expect(CPU.brand.length).toBeGreaterThan(0);
    addon.setCpuKernel('auto');
  });
});
