/**
 * kfac.kroneckerQuadratic, adaptive damping's curvature term ⟨D, G D A⟩ for D = [dW | db], against
 * a float64 evaluation on random inputs of odd sizes, with and without the bias column, on the CPU
 * and on the emulated cuda device (native/cuda/quadratic_body.h run on the host: one download of
 * the row sums, nothing else crosses). Bad arguments are typed errors naming the argument.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { DeviceError, kfac, ShapeError, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import { emulationPossible, put, type Dev } from '../support/emulation.js';
import { input } from '../support/nn-helpers.js';

/** A symmetric n×n matrix (float32 values). */
function sym(n: number, seed: number): Float32Array {
  const r = input(n * n, seed).f32;
  return Float32Array.from({ length: n * n }, (_, k) => r[k]! + r[(k % n) * n + Math.floor(k / n)]!);
}

function ref(dW: Float32Array, db: Float32Array | null, dout: number, din: number, A: Float32Array, G: Float32Array): number {
  const Da = din + (db ? 1 : 0);
  const D = (i: number, j: number) => (j < din ? dW[i * din + j]! : db![i]!);
  let q = 0;
  for (let i = 0; i < dout; i++)
    for (let j = 0; j < Da; j++) {
      let t = 0;
      for (let a = 0; a < dout; a++) for (let b = 0; b < Da; b++) t += G[i * dout + a]! * D(a, b) * A[b * Da + j]!;
      q += D(i, j) * t;
    }
  return q;
}

const CASES: [number, number, boolean][] = [
  [1, 1, false],
  [7, 5, true],
  [3, 17, false],
  [33, 9, true],
];

function on(dev: Dev, dout: number, din: number, bias: boolean, seed: number): { got: number; want: number; scale: number } {
  const Da = din + (bias ? 1 : 0);
  const dW = input(dout * din, seed).f32;
  const db = bias ? input(dout, seed + 1).f32 : null;
  const A = sym(Da, seed + 2);
  const G = sym(dout, seed + 3);
  const got = kfac.kroneckerQuadratic(put(dW, [dout, din], dev), db ? put(db, [dout], dev) : null, put(A, [Da, Da], dev), put(G, [dout, dout], dev));
  // the size of the terms: Σ |D| |G D A| bounds the rounding
  const abs = (a: Float32Array) => a.map(Math.abs);
  const scale = ref(abs(dW), db ? abs(db) : null, dout, din, abs(A), abs(G));
  return { got, want: ref(dW, db, dout, din, A, G), scale };
}

describe('kfac.kroneckerQuadratic on the CPU', () => {
  it.each(CASES)('dout %i, din %i, bias %s: float64 reference', (dout, din, bias) => {
    const { got, want, scale } = on('cpu', dout, din, bias, 10 * dout + din);
    expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-6 * scale);
  });

  it('bad arguments are typed errors naming the argument', () => {
    const dW = Tensor.zeros([2, 3]);
    expect(() => kfac.kroneckerQuadratic(dW, null, Tensor.zeros([4, 4]), Tensor.zeros([2, 2]))).toThrow(ShapeError);
    expect(() => kfac.kroneckerQuadratic(dW, null, Tensor.zeros([4, 4]), Tensor.zeros([2, 2]))).toThrow(/\bA\b/);
    expect(() => kfac.kroneckerQuadratic(dW, Tensor.zeros([3]), Tensor.zeros([4, 4]), Tensor.zeros([2, 2]))).toThrow(/\bdb\b/);
    expect(() => kfac.kroneckerQuadratic(dW, null, Tensor.zeros([3, 3]), Tensor.zeros([3, 3]))).toThrow(/\bG\b/);
    expect(kfac.kroneckerQuadratic(dW, Tensor.zeros([2]), Tensor.zeros([4, 4]), Tensor.zeros([2, 2]))).toBe(0);
  });
});

describe.skipIf(!emulationPossible())('kfac.kroneckerQuadratic on the emulated cuda device', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each(CASES)('dout %i, din %i, bias %s: float64 reference and the CPU, one download', (dout, din, bias) => {
    const cpu = on('cpu', dout, din, bias, 10 * dout + din);
    const before = native()._loopbackTransfers();
    const dev = on('cuda', dout, din, bias, 10 * dout + din);
    const after = native()._loopbackTransfers();
    expect(Math.abs(dev.got - dev.want)).toBeLessThanOrEqual(1e-6 * dev.scale);
    expect(Math.abs(dev.got - cpu.got)).toBeLessThanOrEqual(1e-6 * dev.scale);
    expect(after.downloads - before.downloads).toBe(1); // the row sums (the inputs were uploaded)
  });

  it('a tensor on the other device is a DeviceError naming it', () => {
    const dW = Tensor.zeros([2, 3]).to('cuda');
    expect(() => kfac.kroneckerQuadratic(dW, null, Tensor.zeros([3, 3]), Tensor.zeros([2, 2]).to('cuda'))).toThrow(DeviceError);
    expect(() => kfac.kroneckerQuadratic(dW, null, Tensor.zeros([3, 3]), Tensor.zeros([2, 2]).to('cuda'))).toThrow(/\bA\b/);
  });
});
