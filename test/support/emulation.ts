/**
 * Helpers for the CUDA emulation suites (test/cuda/cuda-emulation*.test.ts): run an op on the
 * emulated cuda device and on the CPU, compare each with a float64 reference and with each other.
 */
import { expect } from 'vitest';

import { Tensor } from '../../lib/index.js';
import { generate } from '../../lib/models/generate.js';
import type { TransformerModel } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import { expectClose } from './nn-helpers.js';

export type Dev = 'cpu' | 'cuda';

/** True where no CUDA backend is in the addon, so the emulation can be registered. */
export const emulationPossible = (): boolean => native().cuda === undefined;

export const put = (a: Float32Array, shape: number[], dev: Dev): Tensor => Tensor.from(a, shape).to(dev);
export const nanT = (shape: number[], dev: Dev): Tensor =>
  put(new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), shape, dev);
export const read = (t: Tensor): Float32Array => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());
/** A tensor's values on the host as float32 (bf16 widened), the host copy freed. */
export const readF32 = (t: Tensor): Float32Array => {
  const h = t.to('cpu', { dtype: 'float32' });
  try {
    return h.toArray();
  } finally {
    h.dispose();
  }
};

/**
 * Runs `op` on both devices; result i is checked against refs[i] (float64) and against the CPU's.
 * `exact` also asks for the same float32 bits as the CPU (ops whose order of operations is the CPU's).
 */
export function onBoth(op: (dev: Dev) => Tensor[], refs: ArrayLike<number>[], what: string, atol = 2e-5, rtol = 1e-4, exact = false): Float32Array[] {
  const cpu = op('cpu').map(read);
  const dev = op('cuda').map(read);
  refs.forEach((r, i) => {
    expectClose(dev[i]!, r, `${what} [${i}] emulated vs float64`, atol, rtol);
    expectClose(dev[i]!, cpu[i]!, `${what} [${i}] emulated vs cpu`, atol, rtol);
    if (exact) expect(Array.from(dev[i]!), `${what} [${i}] bits`).toEqual(Array.from(cpu[i]!));
  });
  return dev;
}

/** float32 values rounded to bfloat16 (nearest even), as float32. */
export function bf16Round(a: Float32Array): Float32Array {
  const u = new Uint32Array(a.buffer.slice(0));
  for (let i = 0; i < u.length; i++) u[i] = ((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(u.buffer);
}

export const ROWS = [1, 7, 33];
export const COLS = [1, 3, 129, 1000];

/**
 * Greedy generation through the model's KV cache against greedy decoding by full forwards (the
 * argmax of the last row of the logits of the whole sequence, step by step): the ids each way.
 */
export function greedyBothWays(m: TransformerModel & { forward(b: unknown): { logits: Tensor } }, vocab: number, prompt: number[], steps: number): { cached: number[]; full: number[] } {
  const cached = Array.from(generate(m, prompt, { maxNewTokens: steps })).slice(-steps);
  const ids = [...prompt];
  for (let s = 0; s < steps; s++) {
    const t = m.forward({ inputIds: Int32Array.from(ids), shape: [1, ids.length] }).logits;
    const h = t.to('cpu', { dtype: 'float32' });
    const row = h.toArray().subarray((ids.length - 1) * vocab, ids.length * vocab);
    h.dispose();
    ids.push(row.indexOf(Math.max(...row)));
  }
  return { cached, full: ids.slice(-steps) };
}
