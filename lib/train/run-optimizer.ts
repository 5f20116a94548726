/**
 * The optimizer of a run: its lr schedule with warm-up, and AdamW, SGD, Shampoo/SOAP or K-FAC
 * (over the K-FAC views of the run's PEFT method) with the configured Newton-step and gradient clips.
 */
import { ConfigError } from '../errors.js';
import { KFAC } from '../kfac/kfac-optimizer.js';
import type { NewtonClip } from '../kfac/options.js';
import type { TransformerModel } from '../models/index.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { warmupConstant, warmupCosine, warmupLinear } from '../optim/schedule.js';
import { SGD } from '../optim/sgd.js';
import { Shampoo } from '../optim/shampoo.js';
import {
  kfacLayersForBitfit,
  kfacLayersForBottleneck,
  kfacLayersForIa3,
  kfacLayersForLora,
  kfacLayersForPrefix,
  kfacLayersForPrompt,
  untrackedParameters,
  untrackedTrainable,
} from '../peft/index.js';
import { defaultWarmupFraction, type RunConfig } from './run-config.js';
import type { StepOptimizer } from './trainer.js';

/**
 * What K-FAC's momentum averages in the run `c`: withDefaults sets it; a configuration without it
 * was written before it existed, for the momentum of the steps.
 */
function momentumOfRun(c: Pick<RunConfig, 'momentumOf'>): 'step' | 'gradient' {
  return c.momentumOf ?? 'step';
}

/** The run's warm-up steps: `warmup`, or the optimizer's default share of the steps (`defaultWarmupFraction`, docs/KFAC.md#schedule). */
export function warmupSteps(c: Pick<RunConfig, 'warmup' | 'optimizer' | 'momentumOf'>, totalSteps: number): number {
  return c.warmup ?? Math.round(defaultWarmupFraction(c.optimizer, momentumOfRun(c)) * totalSteps);
}

function schedule(c: RunConfig, totalSteps: number): (s: number) => number {
  const warmup = warmupSteps(c, totalSteps);
  if (c.schedule === 'constant') return warmupConstant(c.lr, warmup);
  return c.schedule === 'linear' ? warmupLinear(c.lr, warmup, totalSteps) : warmupCosine(c.lr, warmup, totalSteps);
}

export type RunOptimizer = StepOptimizer & {
  inner: AdamW | SGD | KFAC | Shampoo;
};

/** The K-FAC Newton clip of a run: a norm threshold, off, or the default trust ratio. */
export function kfacNewtonClip(c: Pick<RunConfig, 'newtonClip' | 'newtonClipMode' | 'trustRatio'>): NewtonClip | null {
  if (c.newtonClipMode === 'fisher') {
    if (typeof c.newtonClip !== 'number') throw new ConfigError('--newton-clip-mode fisher needs --newton-clip C (the bound c of the Fisher clip)', { argument: 'newtonClip' });
    return { mode: 'fisher', c: c.newtonClip };
  }
  if (c.newtonClip === 'off') return null;
  if (c.newtonClip !== undefined) return { mode: c.newtonClipMode ?? 'global', maxNorm: c.newtonClip };
  return { mode: c.newtonClipMode ?? 'per-tensor', trustRatio: c.trustRatio };
}

/** The K-FAC blocks of a PEFT method on `model`, and the trainable parameters they leave to AdamW. */
export function kfacBlocksOfRun(model: TransformerModel, peft: RunConfig['peft']): { layers: ReturnType<typeof kfacLayersForLora>; extra: ReturnType<typeof untrackedParameters> } {
  const layers = peft === 'ia3' ? kfacLayersForIa3(model) : peft === 'bitfit' ? kfacLayersForBitfit(model) : peft === 'adapter' ? kfacLayersForBottleneck(model) : peft === 'prompt' ? kfacLayersForPrompt(model) : peft === 'prefix' ? kfacLayersForPrefix(model) : kfacLayersForLora(model, { heads: true });
  const extra = peft !== undefined && peft !== 'lora' ? untrackedTrainable(model, layers) : untrackedParameters(model, layers);
  return { layers, extra };
}

/** The run's options of K-FAC's curvature (what its factors, decompositions and their cost follow): buildOptimizer and the cost count (docs/KFAC.md#cost) take the same. */
export function kfacCurvatureOptions(c: RunConfig) {
  return {
    damping: c.damping,
    factorDecay: c.factorDecay,
    inverseEvery: c.inverseEvery,
    ...(c.factorEvery !== undefined ? { factorEvery: c.factorEvery } : {}),
    ...(c.smallFactorDim !== undefined ? { smallFactorDim: c.smallFactorDim } : {}),
    sequence: c.kfacSequence,
    method: c.kfacMethod,
  };
}

export function buildOptimizer(c: RunConfig, model: TransformerModel, totalSteps: number): RunOptimizer {
  const lr = schedule(c, totalSteps);
  if (c.optimizer === 'kfac') {
    const { layers, extra } = kfacBlocksOfRun(model, c.peft);
    const inner = new KFAC(layers, extra, {
      lr,
      momentum: c.momentum,
      nesterov: c.nesterov === 'on',
      momentumOf: momentumOfRun(c),
      weightDecay: c.weightDecay,
      ...kfacCurvatureOptions(c),
      newtonClip: kfacNewtonClip(c),
      adaptiveDamping: c.adaptiveDamping === 'on',
      adaptiveTrust: c.adaptiveTrust === 'on',
      // untracked parameters (norms, embedding-like saved modules): AdamW at 1e-3, on the same schedule's shape
      untrackedLr: (step: number) => (lr(step) / c.lr) * 1e-3,
      // the trust radius is relative to the peak lr, so the schedule shapes the clipped step too
      trustLr: c.lr,
      gradClip: c.gradClip ?? null,
    });
    return {
      inner,
      step: (ctx) => inner.step(ctx),
      capture: (ctx) => inner.capture(ctx),
      readsLosses: () => inner.readsLosses(),
      wantsLoss: () => inner.wantsLoss(),
      observeLoss: (o) => inner.observeLoss(o),
    };
  }
  const params = model.trainableParameters();
  if (c.optimizer === 'shampoo' || c.optimizer === 'soap') {
    if (typeof c.newtonClip === 'number') throw new ConfigError(`--newton-clip ${c.newtonClip}: ${c.optimizer} supports the trust-ratio clip (--trust-ratio) or --newton-clip off`);
    const inner = new Shampoo(params, {
      variant: c.optimizer,
      lr,
      // the Kronecker factors' EMA and refresh interval: K-FAC's options, the same defaults (0.95, 10)
      factorDecay: c.factorDecay,
      refreshEvery: c.inverseEvery,
      trustLr: c.lr,
      newtonClip: c.newtonClip === 'off' ? null : { trustRatio: c.trustRatio },
    });
    return {
      inner,
      step: () => {
        if (c.gradClip !== undefined) clipGradNorm(params.map((p) => p.grad), c.gradClip);
        return inner.step();
      },
    };
  }
  const inner = c.optimizer === 'adamw' ? new AdamW(params, { lr, weightDecay: c.weightDecay }) : new SGD(params, { lr, momentum: c.momentum, nesterov: c.nesterov === 'on', weightDecay: c.weightDecay });
  return {
    inner,
    step: () => {
      const clip = c.gradClip === undefined ? undefined : clipGradNorm(params.map((p) => p.grad), c.gradClip);
      inner.step();
      return clip ? { gradNorm: clip.norm, clipped: clip.clipped } : {};
    },
  };
}
