/** @internal The typed shape of the native K-FAC ops (registered by native/napi/ops_kfac.cpp). */
import { describe, ShapeError } from '../errors.js';
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/addon.js';
import { Tensor } from '../tensor/tensor.js';

export interface NativePiDamping {
  pi: number;
  dampA: number;
  dampG: number;
  usedFloat64: boolean;
}

export interface NativeClipResult {
  norms: number[];
  totalNorm: number;
  scales: number[];
  clipped: boolean[];
  anyClipped: boolean;
  vg: number;
}

export interface NativeKfacOps {
  factorUpdate(x: NativeTensor, factor: NativeTensor, options: { beta: number; scale: number; bias: boolean }): void;
  dampedInverse(a: NativeTensor, damping: number, out: NativeTensor | null): { out: NativeTensor; usedFloat64: boolean };
  preconditionEigen(
    grad: NativeTensor,
    gradBias: NativeTensor | null,
    QA: NativeTensor,
    dA: NativeTensor,
    QG: NativeTensor,
    dG: NativeTensor,
    damping: number,
    out: NativeTensor,
    outBias: NativeTensor | null,
  ): void;
  preconditionInverse(grad: NativeTensor, gradBias: NativeTensor | null, Ainv: NativeTensor, Ginv: NativeTensor, out: NativeTensor, outBias: NativeTensor | null): void;
  preconditionInverseFactors(
    grad: NativeTensor,
    gradBias: NativeTensor | null,
    A: NativeTensor,
    G: NativeTensor,
    damping: number,
    out: NativeTensor,
    outBias: NativeTensor | null,
  ): NativePiDamping;
  piDamping(A: NativeTensor, G: NativeTensor, damping: number): NativePiDamping;
  clipNewtonStep(
    tensors: NativeTensor[],
    options: { mode: 'global' | 'per-tensor'; maxNorm: number } | { mode: 'fisher'; c: number; lr: number; grads: NativeTensor[] },
  ): NativeClipResult;
}

export function kfacNative(): NativeKfacOps {
  return native() as unknown as NativeKfacOps;
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Throws a ShapeError naming `name` unless t has exactly `want`. */
export function expectShape(t: Tensor, name: string, want: readonly number[]): void {
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
    throw new ShapeError(`${name}: expected shape ${fmt(want)}, got ${fmt(t.shape)}`, { argument: name, expected: `shape ${fmt(want)}`, got: fmt(t.shape) });
}

/** Throws a ShapeError unless t is a square matrix; returns its size. */
export function expectSquare(t: Tensor, name: string): number {
  if (t.rank !== 2 || t.shape[0] !== t.shape[1])
    throw new ShapeError(`${name}: expected a square matrix, got shape ${fmt(t.shape)}`, { argument: name, expected: 'a square matrix', got: fmt(t.shape) });
  return t.shape[0]!;
}

export function describeShape(t: Tensor): string {
  return fmt(t.shape);
}

export { describe };
