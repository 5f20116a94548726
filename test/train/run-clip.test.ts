/**
 * The Newton clip a run's flags select (kfacNewtonClip): the default per-tensor trust ratio, a norm
 * threshold (global unless a mode is named), 'off', and the Fisher bound c of --newton-clip-mode
 * fisher, which needs --newton-clip C.
 */
import { describe, expect, it } from 'vitest';

import { completeRun, runOverrides } from '../../lib/cli/run-flags.js';
import { ConfigError } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { configFromHf, createModel } from '../../lib/models/index.js';
import { applyLora } from '../../lib/peft/index.js';
import { buildOptimizer, kfacNewtonClip, type RunConfig, warmupSteps } from '../../lib/train/run.js';

/** A one-layer LLaMA with LoRA on q and v: enough for the options to reach a preconditioner. */
function tinyLora() {
  const model = createModel(
    configFromHf({ model_type: 'llama', vocab_size: 32, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 24, max_position_embeddings: 16 }),
    { task: 'causal-lm', seed: 0 },
  );
  applyLora(model, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
  return model;
}

describe('kfacNewtonClip', () => {
  it('maps the flags to the preconditioner option', () => {
    expect(kfacNewtonClip({ trustRatio: 0.01 })).toEqual({ mode: 'per-tensor', trustRatio: 0.01 });
    expect(kfacNewtonClip({ trustRatio: 0.003, newtonClipMode: 'global' })).toEqual({ mode: 'global', trustRatio: 0.003 });
    expect(kfacNewtonClip({ trustRatio: 0.01, newtonClip: 2 })).toEqual({ mode: 'global', maxNorm: 2 });
    expect(kfacNewtonClip({ trustRatio: 0.01, newtonClip: 2, newtonClipMode: 'per-tensor' })).toEqual({ mode: 'per-tensor', maxNorm: 2 });
    expect(kfacNewtonClip({ trustRatio: 0.01, newtonClip: 'off' })).toBeNull();
    expect(kfacNewtonClip({ trustRatio: 0.01, newtonClip: 1e-3, newtonClipMode: 'fisher' })).toEqual({ mode: 'fisher', c: 1e-3 });
  });

  it('the Fisher mode without its bound is a ConfigError naming newtonClip', () => {
    let err: unknown;
    try {
      kfacNewtonClip({ trustRatio: 0.01, newtonClipMode: 'fisher' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(/--newton-clip-mode fisher needs --newton-clip C/);
    expect(() => kfacNewtonClip({ trustRatio: 0.01, newtonClip: 'off', newtonClipMode: 'fisher' })).toThrow(ConfigError);
  });
});

describe('the run defaults', () => {
  it('a cosine schedule after a warm-up of 10% of the steps, none for K-FAC with the momentum of the gradients; K-FAC: adaptive damping', () => {
    const runs: [Partial<RunConfig>, number][] = [
      [{ optimizer: 'adamw' }, 30],
      [{ optimizer: 'sgd' }, 30],
      [{ optimizer: 'shampoo' }, 30],
      [{ optimizer: 'soap' }, 30],
      [{ optimizer: 'kfac', momentumOf: 'step' }, 30],
      [{ optimizer: 'kfac' }, 0],
      [{}, 0],
    ];
    for (const [given, steps] of runs) {
      const c = completeRun({ model: 'm', data: 'd', ...given });
      expect(c.schedule).toBe('cosine');
      expect(c.warmup).toBeUndefined();
      expect(warmupSteps(c, 300), JSON.stringify(given)).toBe(steps);
      expect(warmupSteps(c, 7)).toBe(steps ? 1 : 0);
      expect(warmupSteps({ ...c, warmup: 0 }, 300)).toBe(0);
      expect(warmupSteps({ ...c, warmup: 12 }, 300)).toBe(12);
      expect(Object.keys(c)).not.toContain('warmupFraction');
    }
    // a configuration written before momentumOf existed is the step order, with its warm-up
    const { momentumOf: _m, ...old } = completeRun({ model: 'm', data: 'd', optimizer: 'kfac' });
    expect(warmupSteps(old, 300)).toBe(30);
    expect(completeRun({ model: 'm', data: 'd' }).adaptiveDamping).toBe('on');
    expect(completeRun({ model: 'm', data: 'd' }).adaptiveTrust).toBe('off');
  });
});

describe('--small-factor-dim', () => {
  it('reaches the preconditioner; unset, the method decides (64 with ekfac, the default; 0 with eigen); with inverse a ConfigError', () => {
    const model = tinyLora();
    const dimOf = (flags: Record<string, unknown>) => {
      const opt = buildOptimizer(completeRun({ model: 'm', data: 'd', optimizer: 'kfac', ...flags }), model, 10);
      try {
        return (opt.inner as InstanceType<typeof KFAC>).preconditioner.smallFactorDim;
      } finally {
        opt.inner.dispose();
      }
    };
    expect(runOverrides({ 'small-factor-dim': '8' })).toMatchObject({ smallFactorDim: 8 });
    expect(dimOf({ smallFactorDim: 8 })).toBe(8);
    expect(dimOf({ kfacMethod: 'ekfac' })).toBe(64);
    expect(dimOf({})).toBe(64);
    expect(dimOf({ kfacMethod: 'eigen' })).toBe(0);
    expect(() => dimOf({ kfacMethod: 'inverse', smallFactorDim: 8 })).toThrow(ConfigError);
    expect(() => dimOf({ kfacMethod: 'inverse', smallFactorDim: 8 })).toThrow(/smallFactorDim/);
    model.dispose();
  });
});

describe('--factor-every', () => {
  it('reaches the preconditioner (unset: every step), and a K-FAC step updates its factors only on its multiples', () => {
    const model = tinyLora();
    expect(runOverrides({ 'factor-every': '3' })).toMatchObject({ factorEvery: 3 });
    expect(() => runOverrides({ 'factor-every': '0' })).toThrow(/--factor-every/);
    expect(() => completeRun({ model: 'm', data: 'd', optimizer: 'adamw', factorEvery: 2 })).toThrow(/--factor-every applies to --optimizer kfac only \(got adamw\)/);
    const updated = (flags: Record<string, unknown>) => {
      const opt = buildOptimizer(completeRun({ model: 'm', data: 'd', optimizer: 'kfac', adaptiveDamping: 'off', ...flags }), model, 10);
      const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % 32);
      try {
        const k = opt.inner as InstanceType<typeof KFAC>;
        const seen: boolean[] = [];
        for (let s = 0; s < 7; s++) {
          model.zeroGrad();
          model.forward({ inputIds: ids, shape: [2, 8], labels: ids });
          model.backward();
          opt.capture?.({ batchSize: 2 });
          seen.push((opt.step({ batchSize: 2 }) as { factorsUpdated: boolean }).factorsUpdated);
        }
        return { every: k.preconditioner.factorEvery, seen };
      } finally {
        opt.inner.dispose();
      }
    };
    expect(updated({})).toEqual({ every: 1, seen: [true, true, true, true, true, true, true] });
    expect(updated({ factorEvery: 3 })).toEqual({ every: 3, seen: [true, false, false, true, false, false, true] });
    model.dispose();
  });
});
