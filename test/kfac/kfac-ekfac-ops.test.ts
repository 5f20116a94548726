/**
 * EKFAC's two ops, kfac.ekfacMoments and kfac.preconditionEkfac, against a float64 evaluation of
 * their formulas on random inputs of odd sizes, with and without the bias column, with β = 0
 * (acc never read: it starts as NaN) and β > 0; on the CPU and on the emulated cuda device (the
 * CUDA kernels' bodies, native/cuda/ekfac_body.h), which also agrees with the CPU. Bad arguments
 * are typed errors naming the argument.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { DeviceError, kfac, linalg, ShapeError, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import { bf16Round, emulationPossible, nanT, onBoth, put, type Dev } from '../support/emulation.js';
import { expectClose, input } from '../support/nn-helpers.js';

const eye = (n: number): Tensor => Tensor.from(Float32Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 1 : 0)), [n, n]);
const ones = (shape: number[]): Tensor => Tensor.from(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape);

/** An orthogonal n×n matrix (eigenvectors of a random symmetric matrix), row-major float32. */
function orthogonal(n: number, seed: number): Float32Array {
  const r = input(n * n, seed).f32;
  const s = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = r[i * n + j]! + r[j * n + i]!;
  const { vectors } = linalg.eigh(Tensor.from(s, [n, n]));
  return vectors.toArray();
}

/** float64 acc' = β·acc + α·(g Q_G)²ᵀ (x̃ Q_A)². */
function momentsRef(x: Float32Array, g: Float32Array, R: number, din: number, dout: number, QA: Float32Array, QG: Float32Array, bias: boolean, alpha: number, beta: number, acc: Float32Array | null): Float64Array {
  const Da = din + (bias ? 1 : 0);
  const out = new Float64Array(dout * Da);
  if (acc && beta !== 0) for (let k = 0; k < out.length; k++) out[k] = beta * acc[k]!;
  for (let r = 0; r < R; r++) {
    const pa = new Float64Array(Da);
    for (let j = 0; j < Da; j++) {
      let s = bias ? QA[din * Da + j]! : 0;
      for (let k = 0; k < din; k++) s += x[r * din + k]! * QA[k * Da + j]!;
      pa[j] = s * s;
    }
    for (let i = 0; i < dout; i++) {
      let s = 0;
      for (let k = 0; k < dout; k++) s += g[r * dout + k]! * QG[k * dout + i]!;
      for (let j = 0; j < Da; j++) out[i * Da + j]! += alpha * s * s * pa[j]!;
    }
  }
  return out;
}

/** float64 [P_W | P_b] = Q_G [(Q_Gᵀ [gW|gb] Q_A) ⊘ (c·S + λ)] Q_Aᵀ, 0 where c·S + λ ≤ 0. */
function stepRef(gW: Float32Array, gb: Float32Array | null, dout: number, din: number, QA: Float32Array, QG: Float32Array, S: Float32Array, c: number, lambda: number): { W: Float64Array; b: Float64Array } {
  const Da = din + (gb ? 1 : 0);
  const V = (i: number, k: number) => (k < din ? gW[i * din + k]! : gb![i]!);
  const T = new Float64Array(dout * Da);
  for (let i = 0; i < dout; i++)
    for (let j = 0; j < Da; j++) {
      let v = 0;
      for (let a = 0; a < dout; a++) for (let b = 0; b < Da; b++) v += QG[a * dout + i]! * V(a, b) * QA[b * Da + j]!;
      const den = c * S[i * Da + j]! + lambda;
      T[i * Da + j] = den > 0 ? v / den : 0;
    }
  const W = new Float64Array(dout * din);
  const b = new Float64Array(dout);
  for (let a = 0; a < dout; a++)
    for (let k = 0; k < Da; k++) {
      let v = 0;
      for (let i = 0; i < dout; i++) for (let j = 0; j < Da; j++) v += QG[a * dout + i]! * T[i * Da + j]! * QA[k * Da + j]!;
      if (k < din) W[a * din + k] = v;
      else b[a] = v;
    }
  return { W, b };
}

const CASES: [string, number, number, number, boolean][] = [
  // name, R, din, dout, bias
  ['one row, bias', 1, 5, 3, true],
  ['odd sizes, no bias', 13, 7, 9, false],
  ['odd sizes, bias', 37, 11, 6, true],
  ['wide rows (LoRA r side)', 29, 3, 17, false],
];

/** The inputs of one moments call for a seed: x [R, din], g [R, dout], Q_A, Q_G and a non-negative acc. */
function momentsArgs(R: number, din: number, dout: number, bias: boolean, alpha: number, beta: number, seed: number): Parameters<typeof momentsRef> {
  const Da = din + (bias ? 1 : 0);
  const acc0 = input(dout * Da, seed + 4).f32.map(Math.abs);
  return [input(R * din, seed).f32, input(R * dout, seed + 1, 0.5).f32, R, din, dout, orthogonal(Da, seed + 2), orthogonal(dout, seed + 3), bias, alpha, beta, acc0];
}

function momentsOn(dev: Dev, R: number, din: number, dout: number, bias: boolean, alpha: number, beta: number, seed: number) {
  const args = momentsArgs(R, din, dout, bias, alpha, beta, seed);
  const [x, g, , , , QA, QG, , , , acc0] = args;
  const Da = din + (bias ? 1 : 0);
  const acc = beta === 0 ? nanT([dout, Da], dev) : put(acc0!, [dout, Da], dev);
  // x with leading dimensions [R, 1, din] (every leading index is a row)
  kfac.ekfacMoments(acc, put(x, [R, 1, din], dev), put(g, [R, dout], dev), { QA: put(QA, [Da, Da], dev), QG: put(QG, [dout, dout], dev), alpha, beta, bias });
  return { acc, ref: momentsRef(...args) };
}

function stepOn(dev: Dev, din: number, dout: number, bias: boolean, c: number, lambda: number, seed: number, zeroS = false) {
  const Da = din + (bias ? 1 : 0);
  const gW = input(dout * din, seed).f32;
  const gb = bias ? input(dout, seed + 1).f32 : null;
  const QA = orthogonal(Da, seed + 2);
  const QG = orthogonal(dout, seed + 3);
  const S = input(dout * Da, seed + 4).f32.map((v, k) => (zeroS && k % 3 === 0 ? 0 : Math.abs(v) + 0.05));
  const out = nanT([dout, din], dev);
  const outBias = bias ? nanT([dout], dev) : undefined;
  kfac.preconditionEkfac({
    grad: put(gW, [dout, din], dev),
    ...(gb && outBias ? { gradBias: put(gb, [dout], dev), outBias } : {}),
    out,
    QA: put(QA, [Da, Da], dev),
    QG: put(QG, [dout, dout], dev),
    S: put(S, [dout, Da], dev),
    scale: c,
    damping: lambda,
  });
  return { out, outBias, ref: stepRef(gW, gb, dout, din, QA, QG, S, c, lambda) };
}

describe('kfac.ekfacMoments and kfac.preconditionEkfac on the CPU', () => {
  it.each(CASES)('moments, %s: float64 reference for β = 0 and β > 0', (_, R, din, dout, bias) => {
    for (const [alpha, beta] of [[1 / R, 0], [0.3, 0.6]] as const) {
      const { acc, ref } = momentsOn('cpu', R, din, dout, bias, alpha, beta, 100 + R);
      expectClose(acc.toArray(), ref, `moments α ${alpha} β ${beta}`, 1e-5, 1e-5);
    }
  });

  it.each(CASES)('step, %s: float64 reference', (_, __, din, dout, bias) => {
    const { out, outBias, ref } = stepOn('cpu', din, dout, bias, 1.7, 1e-3, 200 + din);
    expectClose(out.toArray(), ref.W, 'P_W', 1e-5, 1e-4);
    if (outBias) expectClose(outBias.toArray(), ref.b, 'P_b', 1e-5, 1e-4);
  });

  it('a component whose denominator is 0 (S = 0, λ = 0) is 0: a finite step', () => {
    const { out, outBias, ref } = stepOn('cpu', 6, 5, true, 1, 0, 300, true);
    expect(out.toArray().every(Number.isFinite)).toBe(true);
    expectClose(out.toArray(), ref.W, 'P_W', 1e-5, 1e-4);
    expectClose(outBias!.toArray(), ref.b, 'P_b', 1e-5, 1e-4);
  });

  it('new outputs when none are given, on the gradient’s device', () => {
    const r = kfac.preconditionEkfac({ grad: ones([2, 3]), QA: eye(3), QG: eye(2), S: ones([2, 3]), damping: 1 });
    expect(r.weight.shape).toEqual([2, 3]);
    expect(r.weight.toArray().every((v) => Math.abs(v - 0.5) < 1e-7)).toBe(true);
  });

  it('bad arguments are typed errors naming the argument', () => {
    const QA = eye(4);
    const QG = eye(2);
    const acc = Tensor.zeros([2, 4]);
    const x = ones([5, 3]);
    const g = ones([5, 2]);
    expect(() => kfac.ekfacMoments(acc, x, g, { QA, QG, bias: true })).not.toThrow();
    expect(() => kfac.ekfacMoments(acc, x, g, { QA, QG })).toThrow(/QA/); // no bias: QA must be 3×3
    expect(() => kfac.ekfacMoments(acc, x, ones([4, 2]), { QA, QG, bias: true })).toThrow(ShapeError);
    expect(() => kfac.ekfacMoments(acc, x, ones([4, 2]), { QA, QG, bias: true })).toThrow(/\bg\b/);
    expect(() => kfac.ekfacMoments(Tensor.zeros([2, 3]), x, g, { QA, QG, bias: true })).toThrow(/acc/);
    expect(() => kfac.ekfacMoments(acc, x, g, { QA, QG, bias: true, beta: 1.5 })).toThrow(/beta/);
    expect(() => kfac.ekfacMoments(acc, x, g, { QA, QG, bias: true, alpha: -1 })).toThrow(/alpha/);
    expect(() => kfac.ekfacMoments(acc, x.to('cpu', { dtype: 'bfloat16' }), g, { QA, QG, bias: true })).toThrow(/x/);
    expect(() => kfac.ekfacMoments(acc, acc, ones([2, 2]), { QA: eye(4), QG, bias: false })).toThrow(/acc|x/);
    const grad = ones([2, 3]);
    expect(() => kfac.preconditionEkfac({ grad, QA: eye(3), QG, S: ones([3, 2]), damping: 0 })).toThrow(/\bS\b/);
    expect(() => kfac.preconditionEkfac({ grad, QA: eye(3), QG, S: ones([2, 3]), damping: -1 })).toThrow(/damping/);
    expect(() => kfac.preconditionEkfac({ grad, QA: eye(3), QG, S: ones([2, 3]), scale: -1, damping: 0 })).toThrow(/scale/);
    expect(() => kfac.preconditionEkfac({ grad, QA: eye(4), QG, S: ones([2, 3]), damping: 0 })).toThrow(/QA/);
  });
});

describe.skipIf(!emulationPossible())('kfac.ekfacMoments and kfac.preconditionEkfac on the emulated cuda device', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each(CASES)('moments, %s: float64 reference and the CPU', (_, R, din, dout, bias) => {
    for (const [alpha, beta] of [[1 / R, 0], [0.3, 0.6]] as const) {
      const ref = momentsRef(...momentsArgs(R, din, dout, bias, alpha, beta, 100 + R));
      onBoth((dev) => [momentsOn(dev, R, din, dout, bias, alpha, beta, 100 + R).acc], [ref], `moments β ${beta}`, 1e-5, 1e-5);
    }
  });

  it.each(CASES)('step, %s: float64 reference and the CPU', (_, __, din, dout, bias) => {
    const ref = stepOn('cpu', din, dout, bias, 1.7, 1e-3, 200 + din).ref;
    onBoth((dev) => {
      const r = stepOn(dev, din, dout, bias, 1.7, 1e-3, 200 + din);
      return r.outBias ? [r.out, r.outBias] : [r.out];
    }, bias ? [ref.W, ref.b] : [ref.W], 'step', 1e-5, 1e-4);
  });

  // bf16 rows (bf16 activations): the projection is a bf16 GEMM with Q_A[:din] / Q_G rounded to bf16
  // (the bias row stays float32). Against float64 with those roundings the only error left is the
  // float32 accumulation; against the unrounded Q it is bounded per entry by the rounding of Q
  // (u = 2⁻⁹ per entry, 2⁻⁸ allowed): |p̂ − p| ≤ u·Σ_k |x_k q_k| for each projection p, so
  // |ĝ²â² − g²a²| ≤ (|g| + e_g)²(|a| + e_a)² − g²a².
  describe.each([
    ['x and g', true, true],
    ['x', true, false],
    ['g', false, true],
  ] as const)('bf16 rows (%s)', (_, xb, gb) => {
    it.each(CASES)('moments, %s: the bf16-rounded Q to float32 accumulation, the exact Q within the rounding bound', (__, R, din, dout, bias) => {
      const [x0, g0, , , , QA, QG, , alpha, beta, acc0] = momentsArgs(R, din, dout, bias, 0.3, 0.6, 500 + R);
      const Da = din + (bias ? 1 : 0);
      const x = xb ? bf16Round(x0) : x0;
      const g = gb ? bf16Round(g0) : g0;
      const QAr = xb ? Float32Array.from(QA, (v, k) => (k < din * Da ? bf16Round(Float32Array.of(v))[0]! : v)) : QA;
      const QGr = gb ? bf16Round(QG) : QG;
      const acc = put(acc0!, [dout, Da], 'cuda');
      const rows = (a: Float32Array, shape: number[], b: boolean) => (b ? Tensor.from(a, shape).to('cuda', { dtype: 'bfloat16' }) : put(a, shape, 'cuda'));
      kfac.ekfacMoments(acc, rows(x, [R, din], xb), rows(g, [R, dout], gb), { QA: put(QA, [Da, Da], 'cuda'), QG: put(QG, [dout, dout], 'cuda'), alpha, beta, bias });
      const got = acc.to('cpu').toArray();
      expectClose(got, momentsRef(x, g, R, din, dout, QAr, QGr, bias, alpha, beta, acc0!), 'with the bf16-rounded Q', 1e-5, 1e-5);
      // the exact Q: the per-entry bound of the rounding
      const u = 2 ** -8;
      const want = momentsRef(x, g, R, din, dout, QA, QG, bias, alpha, beta, acc0!);
      const bound = new Float64Array(dout * Da);
      for (let r = 0; r < R; r++) {
        const pa = Array.from({ length: Da }, (_, j) => {
          let s = bias ? QA[din * Da + j]! : 0;
          let e = 0;
          for (let k = 0; k < din; k++) {
            s += x[r * din + k]! * QA[k * Da + j]!;
            e += Math.abs(x[r * din + k]! * QA[k * Da + j]!);
          }
          return [Math.abs(s), xb ? u * e : 0] as const;
        });
        for (let i = 0; i < dout; i++) {
          let s = 0;
          let e = 0;
          for (let k = 0; k < dout; k++) {
            s += g[r * dout + k]! * QG[k * dout + i]!;
            e += Math.abs(g[r * dout + k]! * QG[k * dout + i]!);
          }
          const [gv, ge] = [Math.abs(s), gb ? u * e : 0];
          for (let j = 0; j < Da; j++) {
            const [av, ae] = pa[j]!;
            bound[i * Da + j]! += alpha * ((gv + ge) ** 2 * (av + ae) ** 2 - gv * gv * av * av);
          }
        }
      }
      let worst = 0;
      for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(got[k]! - want[k]!) / (bound[k]! + 1e-5 * Math.abs(want[k]!) + 1e-30));
      expect(worst, 'error / (rounding bound + float32 slack)').toBeLessThanOrEqual(1);
      // and the bound is not vacuous: the rounding moved some entry by more than float32 slack
      if (xb || gb) expect(Math.max(...got.map((v, k) => Math.abs(v - want[k]!) / (Math.abs(want[k]!) + 1e-30)))).toBeGreaterThan(1e-6);
    });
  });

  it('bf16 rows on the CPU are a DTypeError naming them', () => {
    const x = ones([4, 3]).to('cpu', { dtype: 'bfloat16' });
    expect(() => kfac.ekfacMoments(Tensor.zeros([2, 3]), x, ones([4, 2]), { QA: eye(3), QG: eye(2) })).toThrow(/\bx\b.*bfloat16|bfloat16.*\bx\b/);
    expect(() => kfac.ekfacMoments(Tensor.zeros([2, 3]), ones([4, 3]), ones([4, 2]).to('cpu', { dtype: 'bfloat16' }), { QA: eye(3), QG: eye(2) })).toThrow(/\bg\b/);
  });

  it('a tensor on the other device is a DeviceError naming it', () => {
    const QA = eye(3).to('cuda');
    const QG = eye(2).to('cuda');
    const x = ones([4, 3]).to('cuda');
    const g = ones([4, 2]).to('cuda');
    expect(() => kfac.ekfacMoments(Tensor.zeros([2, 3]), x, g, { QA, QG })).toThrow(DeviceError);
    expect(() => kfac.ekfacMoments(Tensor.zeros([2, 3]), x, g, { QA, QG })).toThrow(/acc/);
    expect(() => kfac.preconditionEkfac({ grad: ones([2, 3]).to('cuda'), QA, QG, S: ones([2, 3]), damping: 0 })).toThrow(/\bS\b/);
  });
});

