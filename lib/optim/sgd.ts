/**
 * SGD with momentum, dampening, Nesterov momentum, weight decay (added to the gradient) and
 * maximize, matching torch.optim.SGD's single-tensor algorithm: the momentum buffer starts as
 * the first gradient.
 */
import { describe, invalidArgument } from '../errors.js';
import { native } from '../native/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { boolOption, checkKnownOptions, checkOptions, hyperAt, hyperOption, Optimizer, type OptimizerState } from './optimizer.js';
import type { Hyper, Param } from './types.js';

export interface SGDOptions {
  lr?: Hyper;
  momentum?: Hyper;
  dampening?: number;
  weightDecay?: Hyper;
  nesterov?: boolean;
  maximize?: boolean;
}

export class SGD extends Optimizer {
  readonly kind = 'sgd';
  readonly lr: Hyper;
  readonly momentum: Hyper;
  readonly dampening: number;
  readonly weightDecay: Hyper;
  readonly nesterov: boolean;
  readonly maximize: boolean;
  #buffers = new Map<string, Tensor>();

  constructor(params: readonly Param[], options: SGDOptions = {}) {
    super(params);
    const o = checkOptions(options);
    checkKnownOptions(o, ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov', 'maximize'], 'SGD');
    this.lr = hyperOption(o, 'lr', 1e-3, 0, 1e6);
    this.momentum = hyperOption(o, 'momentum', 0, 0, 1e6);
    this.dampening = hyperAt(hyperOption(o, 'dampening', 0, 0, 1), 0, 'dampening', 0, 1);
    this.weightDecay = hyperOption(o, 'weightDecay', 0, 0, 1e6);
    this.nesterov = boolOption(o, 'nesterov', false);
    this.maximize = boolOption(o, 'maximize', false);
    if (this.nesterov && (this.dampening !== 0 || (typeof this.momentum === 'number' && this.momentum <= 0)))
      invalidArgument('nesterov', 'momentum > 0 and dampening = 0', `momentum ${String(this.momentum)}, dampening ${this.dampening}`);
  }

  step(): void {
    const lr = hyperAt(this.lr, this.stepCount, 'lr', 0, 1e6);
    const momentum = hyperAt(this.momentum, this.stepCount, 'momentum', 0, 1e6);
    const weightDecay = hyperAt(this.weightDecay, this.stepCount, 'weightDecay', 0, 1e6);
    for (const p of this.params) {
      const g = this.gradOf(p);
      if (!g) continue;
      let buf = this.#buffers.get(p.name) ?? null;
      const firstStep = buf === null;
      if (momentum !== 0 && !buf) {
        buf = Tensor.empty(p.tensor.shape, { device: p.tensor.device }); // with its parameter
        this.#buffers.set(p.name, buf);
      }
      native().sgdStep(p.tensor.handle, g.handle, momentum !== 0 && buf ? buf.handle : null, {
        lr,
        momentum,
        dampening: this.dampening,
        weightDecay,
        nesterov: this.nesterov,
        maximize: this.maximize,
        firstStep,
      });
    }
    this.stepCount += 1;
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const perParam: Record<string, Record<string, number>> = {};
    for (const [name, b] of this.#buffers) {
      tensors[`${name}/momentum_buffer`] = b.clone();
      perParam[name] = {};
    }
    return { kind: this.kind, step: this.stepCount, perParam, tensors };
  }

  loadStateDict(state: OptimizerState): void {
    if (state.kind !== this.kind) invalidArgument('state.kind', `'${this.kind}'`, describe(state.kind));
    this.dispose();
    for (const p of this.params) {
      const t = state.tensors[`${p.name}/momentum_buffer`];
      if (t) this.#buffers.set(p.name, t.device === p.tensor.device ? t.clone() : t.to(p.tensor.device));
    }
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const b of this.#buffers.values()) b.dispose();
    this.#buffers.clear();
  }
}
