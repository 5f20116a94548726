/**
 * Checks an optimizer state read from optimizer.json / optimizer.safetensors before it reaches an
 * optimizer's loadStateDict, which trusts its input (it is also fed by live stateDict() calls).
 * A file that passes its SHA-256 record can still be hand-edited or written by another version:
 * every counter must be a non-negative integer, every scalar finite, every tensor finite, and the
 * K-FAC eigenbasis and inverse tensors must have the shapes of the factors they belong to.
 * Anything else is a FormatError naming the file and the field.
 */
import { describe, FormatError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function fail(file: string, field: string, expected: string, got: unknown): never {
  throw new FormatError(file, `${field}: expected ${expected}, got ${describe(got)}`);
}

function count(file: string, field: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(file, field, 'a non-negative integer', v);
}

/** {kind, step, perParam} of AdamW / SGD (alone, or inside a K-FAC state as "sgd"). */
function checkPlain(file: string, field: string, s: unknown): void {
  if (!isObject(s)) fail(file, field, 'an object', s);
  if (typeof s['kind'] !== 'string') fail(file, `${field}.kind`, 'a string', s['kind']);
  count(file, `${field}.step`, s['step']);
  const per = s['perParam'];
  if (!isObject(per)) fail(file, `${field}.perParam`, 'an object', per);
  for (const [name, m] of Object.entries(per)) {
    if (!isObject(m)) fail(file, `${field}.perParam[${JSON.stringify(name)}]`, 'an object', m);
    for (const [k, v] of Object.entries(m)) {
      const f = `${field}.perParam[${JSON.stringify(name)}].${k}`;
      if (k === 'step') count(file, f, v);
      else if (typeof v !== 'number' || !Number.isFinite(v)) fail(file, f, 'a finite number', v);
    }
  }
}

function checkKfac(file: string, s: Record<string, unknown>): void {
  const p = s['preconditioner'];
  if (!isObject(p)) fail(file, 'state.preconditioner', 'an object', p);
  if (typeof p['kind'] !== 'string' || typeof p['method'] !== 'string') fail(file, 'state.preconditioner.kind/method', 'strings', p['kind']);
  for (const k of ['step', 'preconditionedSteps', 'clippedSteps']) count(file, `state.preconditioner.${k}`, p[k]);
  const factors = p['factors'];
  if (!isObject(factors)) fail(file, 'state.preconditioner.factors', 'an object', factors);
  for (const [key, f] of Object.entries(factors)) {
    const field = `state.preconditioner.factors[${JSON.stringify(key)}]`;
    if (!isObject(f)) fail(file, field, 'an object', f);
    if (typeof f['weight'] !== 'number' || !Number.isFinite(f['weight']) || f['weight'] < 0) fail(file, `${field}.weight`, 'a finite non-negative number', f['weight']);
    count(file, `${field}.updates`, f['updates']);
    if (typeof f['decomposed'] !== 'boolean') fail(file, `${field}.decomposed`, 'a boolean', f['decomposed']);
  }
  checkPlain(file, 'state.sgd', s['sgd']);
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function checkTensors(file: string, tensors: Record<string, Tensor>): void {
  for (const [name, t] of Object.entries(tensors)) {
    const v = t.toArray();
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) throw new FormatError(file, `tensor ${JSON.stringify(name)} holds a non-finite value at index ${i}`);
  }
  const shapeOf = (k: string) => tensors[k]?.shape;
  for (const [name, t] of Object.entries(tensors)) {
    // K-FAC: <factor>/Q is [n, n] and <factor>/d, <factor>/d_scaled are [n] for the factor's [n, n] ema;
    // <layer>/Ainv and <layer>/Ginv have the shape of the A:<layer> and G:<layer> factors.
    const m = /^(.*\/)?([^/]*)\/(Q|d|d_scaled|Ainv|Ginv)$/.exec(name);
    if (!m) continue;
    const [, pre = '', base, what] = m;
    const ema = what === 'Ainv' || what === 'Ginv' ? shapeOf(`${pre}${what[0]}:${base}/ema`) : shapeOf(`${pre}${base}/ema`);
    if (ema === undefined) throw new FormatError(file, `tensor ${JSON.stringify(name)} has no factor to belong to`);
    const want = what === 'd' || what === 'd_scaled' ? [ema[0] ?? 0] : ema;
    if (!sameShape(t.shape, want)) throw new FormatError(file, `tensor ${JSON.stringify(name)} has shape [${t.shape.join(', ')}], its factor needs [${want.join(', ')}]`);
  }
}

/**
 * Throws a FormatError when `state` (from `metaFile`) and `tensors` (from `tensorFile`) are not a
 * well-formed optimizer state. A state of another kind than `kind` (the optimizer's) is left to
 * the optimizer, which refuses it by name.
 */
export function checkOptimizerState(metaFile: string, tensorFile: string, state: unknown, tensors: Record<string, Tensor>, kind: string): void {
  if (!isObject(state)) fail(metaFile, 'state', 'an object', state);
  if (state['kind'] !== kind) return;
  if (kind === 'kfac') checkKfac(metaFile, state);
  else checkPlain(metaFile, 'state', state);
  checkTensors(tensorFile, tensors);
}
