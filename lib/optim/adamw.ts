/**
 * AdamW (decoupled weight decay), matching torch.optim.AdamW's single-tensor algorithm:
 * bias-corrected moments, eps added after the square root, decay applied as param·(1 − lr·wd)
 * before the update, optional AMSGrad and maximize. Each parameter keeps its own step count,
 * as torch does, so a parameter without a gradient at some step is simply skipped.
 */
import { invalidArgument, describe } from '../errors.js';
import { native } from '../native/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { boolOption, checkKnownOptions, checkOptions, hyperAt, hyperOption, Optimizer, type OptimizerState } from './optimizer.js';
import type { Hyper, Param } from './types.js';

export interface AdamWOptions {
  lr?: Hyper;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: Hyper;
  amsgrad?: boolean;
  maximize?: boolean;
}

interface Slot {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  maxExpAvgSq: Tensor | null;
}

export class AdamW extends Optimizer {
  readonly kind = 'adamw';
  readonly lr: Hyper;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: Hyper;
  readonly amsgrad: boolean;
  readonly maximize: boolean;
  #slots = new Map<string, Slot>();

  constructor(params: readonly Param[], options: AdamWOptions = {}) {
    super(params);
    const o = checkOptions(options);
    checkKnownOptions(o, ['lr', 'betas', 'eps', 'weightDecay', 'amsgrad', 'maximize'], 'AdamW');
    this.lr = hyperOption(o, 'lr', 1e-3, 0, 1e6);
    const betas = o['betas'] ?? [0.9, 0.999];
    if (!Array.isArray(betas) || betas.length !== 2 || !betas.every((b) => typeof b === 'number' && b >= 0 && b < 1))
      invalidArgument('betas', 'two numbers in [0, 1)', describe(betas));
    [this.beta1, this.beta2] = betas as [number, number];
    this.eps = hyperAt(hyperOption(o, 'eps', 1e-8, 0, 1e6), 0, 'eps', 0, 1e6);
    this.weightDecay = hyperOption(o, 'weightDecay', 1e-2, 0, 1e6);
    this.amsgrad = boolOption(o, 'amsgrad', false);
    this.maximize = boolOption(o, 'maximize', false);
  }

  step(): void {
    const lr = hyperAt(this.lr, this.stepCount, 'lr', 0, 1e6);
    const weightDecay = hyperAt(this.weightDecay, this.stepCount, 'weightDecay', 0, 1e6);
    for (const p of this.params) {
      const g = this.gradOf(p);
      if (!g) continue;
      const s = this.#slot(p);
      s.step += 1;
      native().adamwStep(p.tensor.handle, g.handle, s.expAvg.handle, s.expAvgSq.handle, s.maxExpAvgSq ? s.maxExpAvgSq.handle : null, {
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay,
        step: s.step,
        amsgrad: this.amsgrad,
        maximize: this.maximize,
      });
    }
    this.stepCount += 1;
  }

  #slot(p: Param): Slot {
    let s = this.#slots.get(p.name);
    if (!s) {
      s = {
        step: 0,
        // the moments live with their parameter, on its device
        expAvg: Tensor.zeros(p.tensor.shape, { device: p.tensor.device }),
        expAvgSq: Tensor.zeros(p.tensor.shape, { device: p.tensor.device }),
        maxExpAvgSq: this.amsgrad ? Tensor.zeros(p.tensor.shape, { device: p.tensor.device }) : null,
      };
      this.#slots.set(p.name, s);
    }
    return s;
  }

  stateDict(): OptimizerState {
    const tensors: Record<string, Tensor> = {};
    const perParam: Record<string, Record<string, number>> = {};
    for (const [name, s] of this.#slots) {
      perParam[name] = { step: s.step };
      tensors[`${name}/exp_avg`] = s.expAvg.clone();
      tensors[`${name}/exp_avg_sq`] = s.expAvgSq.clone();
      if (s.maxExpAvgSq) tensors[`${name}/max_exp_avg_sq`] = s.maxExpAvgSq.clone();
    }
    return { kind: this.kind, step: this.stepCount, perParam, tensors };
  }

  loadStateDict(state: OptimizerState): void {
    if (state.kind !== this.kind) invalidArgument('state.kind', `'${this.kind}'`, describe(state.kind));
    this.dispose();
    for (const p of this.params) {
      const meta = state.perParam[p.name];
      if (!meta) continue;
      const s = this.#slot(p);
      s.step = meta['step'] ?? 0;
      const copyIn = (key: string, into: Tensor | null) => {
        const t = state.tensors[`${p.name}/${key}`];
        if (!into) return;
        if (!t) invalidArgument(`state.tensors['${p.name}/${key}']`, 'a tensor', 'nothing');
        if (t.device === into.device) native().copy(t.handle, into.handle);
        else {
          using moved = t.to(into.device); // a checkpoint loaded on the host, state on the device
          native().copy(moved.handle, into.handle);
        }
      };
      copyIn('exp_avg', s.expAvg);
      copyIn('exp_avg_sq', s.expAvgSq);
      copyIn('max_exp_avg_sq', s.maxExpAvgSq);
    }
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const s of this.#slots.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
      s.maxExpAvgSq?.dispose();
    }
    this.#slots.clear();
  }
}
