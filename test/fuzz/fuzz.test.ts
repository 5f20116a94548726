/**
 * Malformed calls against every function the native addon exports (and every method of its
 * tensor handles). The process must survive each one, and every error that comes back must be
 * one of the library's typed errors with a code. New op families are covered automatically:
 * the list of functions is read from the addon itself.
 */
import { afterAll, describe, expect, it } from 'vitest';

import { KfacError } from '../../lib/index.js';
import { errorFromCode } from '../../lib/errors.js';
import type { NativeTensor } from '../../lib/native/addon.js';
import { native } from '../../lib/native/loader.js';
import { rng } from '../support/helpers.js';

const CALLS_PER_FUNCTION = 500;
const addon = native();
const NT = addon.NativeTensor;

class GetterBoom extends Error {}

function live(shape: number[], seed = 1): NativeTensor {
  return NT.randn(shape, seed);
}

function disposed(): NativeTensor {
  const t = NT.zeros([2, 2]);
  t.dispose();
  return t;
}

const throwingOptions = Object.defineProperty({}, 'transA', {
  get() {
    throw new GetterBoom('getter');
  },
  enumerable: true,
});

/** Values that are wrong for almost every parameter, plus a few right ones to mix shapes. */
function pool(): unknown[] {
  return [
    undefined,
    null,
    true,
    false,
    0,
    -1,
    1.5,
    3,
    NaN,
    Infinity,
    -Infinity,
    1e308,
    2 ** 53,
    -0,
    'str',
    '',
    'auto',
    Symbol('s'),
    10n,
    {},
    [],
    [1, 2],
    [-1],
    [1.5, 2],
    [NaN],
    ['a'],
    [1e10, 1e10],
    [2 ** 31, 2 ** 31, 2 ** 31],
    [1, 1, 1, 1, 1, 1, 1, 1, 1],
    new Float32Array(3),
    new Float32Array(6),
    new Float64Array(3),
    new Uint8Array(4),
    new ArrayBuffer(8),
    () => 1,
    new Proxy({}, { get: () => 7 }),
    throwingOptions,
    { transA: 'yes' },
    { alpha: NaN },
    { beta: 1 },
    { transB: true, alpha: 2 },
    disposed(),
    live([3]),
    live([2, 3]),
    live([3, 2]),
    live([2, 2, 2]),
    live([0, 3]),
    live([1]),
    live([]),
    live([7, 7]),
  ];
}

function randomArgs(r: () => number, values: unknown[]): unknown[] {
  const n = Math.floor(r() * 6);
  return Array.from({ length: n }, () => values[Math.floor(r() * values.length)]);
}

/** Calls fn; returns the thrown value or undefined. */
function attempt(fn: () => unknown): unknown {
  try {
    const res = fn() as { dispose?: () => void } | undefined;
    if (res && typeof res === 'object' && typeof res.dispose === 'function' && !(res instanceof Float32Array)) res.dispose();
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectTyped(err: unknown, what: string): void {
  if (err === undefined || err instanceof GetterBoom) return; // success, or the caller's own getter
  if (!(err instanceof KfacError)) throw new Error(`${what} threw an untyped error: ${String(err)}`);
  expect(typeof err.code).toBe('string');
  expect(err.code.startsWith('ERR_')).toBe(true);
  expect(err.message.length).toBeGreaterThan(0);
}

afterAll(() => {
  addon.setErrorFactory(errorFromCode);
  addon.setNumThreads(0);
  addon.setCpuKernel('auto');
});

describe('malformed calls to the native addon', () => {
  const functions = Object.entries(addon).filter(([k, v]) => typeof v === 'function' && k !== 'NativeTensor') as [string, (...a: unknown[]) => unknown][];

  it('exports the functions we expect to fuzz', () => {
    const names = functions.map(([n]) => n);
    for (const n of ['matmul', 'fill', 'copy', 'add', 'scale', 'axpy', 'transpose', 'sum', 'norm', 'info', 'setNumThreads']) expect(names).toContain(n);
  });

  it.each(functions.map(([n]) => n))('%s survives %s malformed calls', (name) => {
    const fn = (addon as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
    const r = rng(name.length * 7919 + name.charCodeAt(0));
    let values = pool();
    if (name === 'setErrorFactory') values = values.filter((v) => typeof v !== 'function');
    for (let i = 0; i < CALLS_PER_FUNCTION; i++) {
      const args = randomArgs(r, values);
      expectTyped(
        attempt(() => fn(...args)),
        `${name}(${args.map((a) => typeof a).join(', ')})`,
      );
    }
    addon.setNumThreads(0);
    addon.setCpuKernel('auto');
  });

  it.each(['fromFloat32Array', 'empty', 'zeros', 'randn', 'randUniform'])('NativeTensor.%s survives malformed calls', (name) => {
    const fn = (NT as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!;
    const r = rng(name.length * 104729);
    const values = pool();
    for (let i = 0; i < CALLS_PER_FUNCTION; i++) {
      const args = randomArgs(r, values);
      expectTyped(
        attempt(() => fn.apply(NT, args)),
        `NativeTensor.${name}`,
      );
    }
  });

  it('the handle constructor refuses direct calls', () => {
    const Ctor = NT as unknown as new (...a: unknown[]) => unknown;
    const r = rng(5);
    const values = pool();
    for (let i = 0; i < CALLS_PER_FUNCTION; i++) expectTyped(attempt(() => new Ctor(...randomArgs(r, values))), 'new NativeTensor');
  });

  it('tensor methods survive malformed arguments, disposed handles and foreign receivers', () => {
    const methods = ['dispose', 'toFloat32Array', 'copyFromFloat32Array', 'reshape', 'clone'] as const;
    const r = rng(99);
    const values = pool();
    for (const m of methods) {
      for (let i = 0; i < CALLS_PER_FUNCTION; i++) {
        const t = r() < 0.2 ? disposed() : live([2, 3], i);
        const args = randomArgs(r, values);
        expectTyped(
          attempt(() => (t as unknown as Record<string, (...a: unknown[]) => unknown>)[m]!(...args)),
          `tensor.${m}`,
        );
        // A receiver that is not a tensor handle must throw, never crash.
        const proto = Object.getPrototypeOf(t) as Record<string, (...a: unknown[]) => unknown>;
        const foreign = [{}, null, 1, new Float32Array(2)][i % 4];
        const err = attempt(() => proto[m]!.apply(foreign, args));
        expect(err === undefined || err instanceof Error).toBe(true);
        t.dispose();
      }
    }
    for (const g of ['shape', 'dtype', 'device', 'nbytes', 'disposed']) {
      const d = disposed();
      expectTyped(
        attempt(() => (d as unknown as Record<string, unknown>)[g]),
        `tensor.${g}`,
      );
      const desc = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(d), g);
      const err = attempt(() => desc?.get?.call({}));
      expect(err === undefined || err instanceof Error).toBe(true);
    }
  });

  it('still computes correctly after the barrage', () => {
    const a = NT.fromFloat32Array(Float32Array.from([1, 2, 3, 4]), [2, 2]);
    const c = addon.matmul(a, a, null, {});
    expect(Array.from(c.toFloat32Array())).toEqual([7, 10, 15, 22]);
  });
});
