/** The base of the first-order optimizers: parameters, per-parameter state, steps. */
import { describe, invalidArgument, NotFiniteError } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { checkKnownOptions, checkOptions } from '../util/validate.js';
import type { Hyper, Param } from './types.js';

/** A snapshot of an optimizer: named state tensors plus JSON-able scalars. */
export interface OptimizerState {
  kind: string;
  /** Updates applied so far. */
  step: number;
  /** Per-parameter scalars (e.g. each parameter's own step count), by parameter name. */
  perParam: Record<string, Record<string, number>>;
  /** State tensors, keyed `<param name>/<buffer>`; owned by the optimizer. */
  tensors: Record<string, Tensor>;
}

export abstract class Optimizer {
  readonly params: readonly Param[];
  /** Updates applied so far (the step index passed to hyperparameter functions). */
  stepCount = 0;

  constructor(params: readonly Param[]) {
    if (!Array.isArray(params)) invalidArgument('params', 'an array of parameters', describe(params));
    const names = new Set<string>();
    params.forEach((p, i) => {
      if (!p || typeof p !== 'object' || !(p.tensor instanceof Tensor)) invalidArgument(`params[${i}]`, 'a parameter { name, tensor, grad }', describe(p));
      if (typeof p.name !== 'string' || names.has(p.name)) invalidArgument(`params[${i}].name`, 'a unique name', describe(p.name));
      names.add(p.name);
    });
    this.params = params;
  }

  abstract readonly kind: string;

  /** Applies one update from the current gradients (parameters whose grad is null are skipped). */
  abstract step(): void;

  /** The optimizer's state, for checkpoints. Tensors are copies. */
  abstract stateDict(): OptimizerState;

  /** Restores a state from stateDict() (tensors are copied in). */
  abstract loadStateDict(state: OptimizerState): void;

  /** Frees the state tensors. */
  abstract dispose(): void;

  protected gradOf(p: Param): Tensor | null {
    const g = p.grad;
    if (g === null || g === undefined) return null;
    if (!(g instanceof Tensor)) invalidArgument(`${p.name}.grad`, 'a Tensor or null', describe(g));
    return g;
  }
}

export function hyperOption(o: Record<string, unknown>, key: string, fallback: Hyper, lo: number, hi: number): Hyper {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v === 'function') return v as (step: number) => number;
  if (typeof v !== 'number') invalidArgument(key, 'a number or a function of the step', describe(v));
  if (!Number.isFinite(v)) throw new NotFiniteError(`${key}: expected a finite number, got ${describe(v)}`, { argument: key });
  if (v < lo || v > hi) invalidArgument(key, `a number in [${lo}, ${hi}]`, describe(v));
  return v;
}

export function boolOption(o: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const v = o[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') invalidArgument(key, 'a boolean', describe(v));
  return v;
}

/** Evaluates a hyperparameter at a step and checks its range. */
export function hyperAt(h: Hyper, step: number, key: string, lo: number, hi: number): number {
  const v = typeof h === 'function' ? h(step) : h;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new NotFiniteError(`${key}: expected a finite number at step ${step}, got ${describe(v)}`, { argument: key });
  if (v < lo || v > hi) invalidArgument(key, `a number in [${lo}, ${hi}] at step ${step}`, describe(v));
  return v;
}

export { checkKnownOptions, checkOptions };
