/** Argument checks run in TypeScript before native code is reached. */
import { describe, invalidArgument, NotFiniteError, ShapeError } from '../errors.js';

export const MAX_RANK = 8;

/** A shape: an array of at most 8 non-negative safe integers. Returns a frozen copy. */
export function checkShape(shape: unknown, name = 'shape'): readonly number[] {
  if (!Array.isArray(shape)) throw new ShapeError(`${name}: expected an array of dimensions, got ${describe(shape)}`, { argument: name, expected: 'an array of dimensions', got: describe(shape) });
  if (shape.length > MAX_RANK)
    throw new ShapeError(`${name}: expected at most ${MAX_RANK} dimensions, got ${shape.length}`, { argument: name, expected: `at most ${MAX_RANK} dimensions`, got: String(shape.length) });
  shape.forEach((d: unknown, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw new ShapeError(`${name}: expected non-negative integer dimensions, got dimension ${i} = ${describe(d)}`, {
        argument: name,
        expected: 'non-negative integer dimensions',
        got: `dimension ${i} = ${describe(d)}`,
      });
  });
  return Object.freeze([...(shape as number[])]);
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function checkBoolean(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') invalidArgument(name, 'a boolean', describe(v));
  return v;
}

export function checkFinite(v: unknown, name: string): number {
  if (typeof v !== 'number') invalidArgument(name, 'a number', describe(v));
  if (!Number.isFinite(v)) throw new NotFiniteError(`${name}: expected a finite number, got ${describe(v)}`, { argument: name, expected: 'a finite number', got: describe(v) });
  return v;
}

export function checkInteger(v: unknown, name: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) invalidArgument(name, `an integer in [${lo}, ${hi}]`, describe(v));
  return v;
}

export function checkOptions(v: unknown, name = 'options'): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) invalidArgument(name, 'an options object', describe(v));
  return v as Record<string, unknown>;
}

/** `o` (checked by checkOptions) with no key outside `known` that holds a value: a misspelt option is an InvalidArgumentError naming it, never ignored. */
export function checkKnownOptions(o: Record<string, unknown>, known: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (o[k] !== undefined && !known.includes(k)) invalidArgument(k, `one of the ${what} options (${known.join(', ')})`, 'an unknown option');
}
