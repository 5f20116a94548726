/**
 * The Newton clip a run's flags select (kfacNewtonClip): the default per-tensor trust ratio, a norm
 * threshold (global unless a mode is named), 'off', and the Fisher bound c of --newton-clip-mode
 * fisher, which needs --newton-clip C.
 */
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../lib/index.js';
import { kfacNewtonClip } from '../../lib/train/run.js';

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
  it('every optimizer: a cosine schedule after a warm-up of 10% of the steps; K-FAC: adaptive damping', async () => {
    const { completeRun } = await import('../../lib/cli/run-flags.js');
    const { warmupSteps } = await import('../../lib/train/run.js');
    for (const optimizer of ['adamw', 'kfac', 'sgd'] as const) {
      const c = completeRun({ model: 'm', data: 'd', optimizer });
      expect(c.schedule).toBe('cosine');
      expect(c.warmup).toBeUndefined();
      expect(warmupSteps(c, 300)).toBe(30);
      expect(warmupSteps(c, 7)).toBe(1);
      expect(warmupSteps({ ...c, warmup: 0 }, 300)).toBe(0);
      expect(Object.keys(c)).not.toContain('warmupFraction');
    }
    expect(completeRun({ model: 'm', data: 'd' }).adaptiveDamping).toBe('on');
    expect(completeRun({ model: 'm', data: 'd' }).adaptiveTrust).toBe('off');
  });
});
