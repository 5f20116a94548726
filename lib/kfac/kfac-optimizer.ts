/**
 * KFAC: the K-FAC preconditioner followed by SGD with momentum — the standard pairing.
 * Parameters that K-FAC does not track (e.g. a classification head's bias-free extras) are
 * stepped by the same SGD with their raw gradients.
 */
import { describe, invalidArgument } from '../errors.js';
import { SGD } from '../optim/sgd.js';
import type { Hyper, Param } from '../optim/types.js';
import { Tensor } from '../tensor/tensor.js';
import { checkOptions } from '../util/validate.js';
import type { KfacLayer } from './layer.js';
import { KfacPreconditioner, type KfacPreconditionerOptions, type KfacTelemetry } from './preconditioner.js';

export interface KfacOptions extends KfacPreconditionerOptions {
  /** Learning rate (default 0.1 — K-FAC steps are already curvature-scaled). */
  lr?: Hyper;
  /** SGD momentum (default 0.9). */
  momentum?: Hyper;
  /** L2 weight decay added to the preconditioned step (default 0). */
  weightDecay?: Hyper;
  nesterov?: boolean;
}

export class KFAC {
  readonly preconditioner: KfacPreconditioner;
  readonly sgd: SGD;
  readonly params: readonly Param[];
  /** Telemetry of the last step. */
  last: KfacTelemetry | undefined;

  constructor(layers: readonly KfacLayer[], extraParams: readonly Param[] = [], options: KfacOptions = {}) {
    const o = checkOptions(options);
    const { lr, momentum, weightDecay, nesterov, ...pre } = o as KfacOptions;
    this.preconditioner = new KfacPreconditioner(layers, pre);
    const tracked = layers.flatMap((l) => [l.weight, ...(l.bias ? [l.bias] : [])]);
    for (const p of extraParams)
      if (!p || !(p.tensor instanceof Tensor)) invalidArgument('extraParams', 'parameters { name, tensor, grad }', describe(p));
    this.params = [...tracked, ...extraParams];
    this.sgd = new SGD(this.params, {
      lr: lr ?? 0.1,
      momentum: momentum ?? 0.9,
      weightDecay: weightDecay ?? 0,
      nesterov: nesterov ?? false,
    });
  }

  get stepCount(): number {
    return this.sgd.stepCount;
  }

  /** Pushes the statistics of the micro-batch just back-propagated (see KfacPreconditioner.capture). */
  capture(ctx: { batchSize: number }): void {
    this.preconditioner.capture(ctx);
  }

  /** Preconditions the tracked gradients, clips the Newton step, applies SGD. */
  step(ctx: { batchSize: number }): KfacTelemetry {
    const lrH = this.sgd.lr;
    const lr = typeof lrH === 'function' ? lrH(this.sgd.stepCount) : lrH;
    this.last = this.preconditioner.step({ batchSize: ctx.batchSize, lr });
    this.sgd.step();
    return this.last;
  }

  stateDict(): { meta: Record<string, unknown>; tensors: Record<string, Tensor> } {
    const p = this.preconditioner.stateDict();
    const s = this.sgd.stateDict();
    const tensors: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(p.tensors)) tensors[`preconditioner/${k}`] = v;
    for (const [k, v] of Object.entries(s.tensors)) tensors[`sgd/${k}`] = v;
    return { meta: { kind: 'kfac', preconditioner: p.meta, sgd: { kind: s.kind, step: s.step, perParam: s.perParam } }, tensors };
  }

  loadStateDict(state: { meta: Record<string, unknown>; tensors: Record<string, Tensor> }): void {
    if (state.meta['kind'] !== 'kfac') invalidArgument('state.meta.kind', "'kfac'", describe(state.meta['kind']));
    const pick = (prefix: string) =>
      Object.fromEntries(Object.entries(state.tensors).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    this.preconditioner.loadStateDict({ meta: state.meta['preconditioner'] as Record<string, unknown>, tensors: pick('preconditioner/') });
    const sm = state.meta['sgd'] as { kind: string; step: number; perParam: Record<string, Record<string, number>> };
    this.sgd.loadStateDict({ kind: sm.kind, step: sm.step, perParam: sm.perParam, tensors: pick('sgd/') });
  }

  dispose(): void {
    this.preconditioner.dispose();
    this.sgd.dispose();
  }
}
