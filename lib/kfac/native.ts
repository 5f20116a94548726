/** @internal The typed shape of the native K-FAC ops (registered by native/napi/ops_kfac.cpp). */
import { describe, ShapeError } from '../errors.js';
import { native } from '../native/loader.js';
import type { NativeKfacOps } from '../native/addon.js';
import { Tensor } from '../tensor/tensor.js';

export type { NativeClipResult, NativeKfacOps, NativePiDamping } from '../native/addon.js';

/** The K-FAC kernels of the addon (every one takes tensors on either device). */
export function kfacNative(): NativeKfacOps {
  return native();
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
