/**
 * Every run option reaches a run that reads it, or is refused: an option given to an optimizer or
 * a PEFT method that never reads it is a UsageError naming it (train, eval and a compare run's own
 * options), and compare's shared options go only to the runs they apply to.
 */
import { describe, expect, it } from 'vitest';

import { UsageError } from '../../lib/cli/args.js';
import { runConfigs } from '../../lib/cli/commands/compare.js';
import { appliesTo, completeRun, RUN_FLAGS, runOverrides } from '../../lib/cli/run-flags.js';
import { configFromHf, createModel } from '../../lib/models/index.js';
import { applyLora } from '../../lib/peft/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { Shampoo } from '../../lib/optim/shampoo.js';
import { buildOptimizer, DEFAULTS, type RunConfig } from '../../lib/train/run.js';

const OPTIMIZERS = ['adamw', 'kfac', 'sgd', 'shampoo', 'soap'] as const;
const PEFTS = ['lora', 'ia3', 'bitfit', 'adapter', 'prefix', 'prompt'] as const;

/** A valid value of each option that only some optimizers or PEFT methods read. */
const SAMPLE: Record<string, string> = {
  'weight-decay': '0.01',
  momentum: '0.5',
  nesterov: 'off',
  'momentum-of': 'gradient',
  damping: '1e-3',
  'factor-decay': '0.9',
  'kfac-method': 'eigen',
  'adaptive-trust': 'off',
  'adaptive-damping': 'off',
  'inverse-every': '5',
  'factor-every': '2',
  'small-factor-dim': '8',
  'kfac-sequence': 'per-row',
  'newton-clip': 'off',
  'trust-ratio': '0.02',
  'newton-clip-mode': 'per-tensor',
  'lora-r': '4',
  'lora-alpha': '8',
  'lora-dropout': '0.1',
  'adapter-kind': 'houlsby',
  'reduction-factor': '8',
  'num-virtual-tokens': '4',
  'prefix-projection': 'on',
  'feedforward-modules': 'down_proj',
  'target-modules': 'q_proj',
};

/** Which optimizers / methods read each option: the table the refusals must follow. */
const READ_BY: Record<string, readonly string[]> = {
  'weight-decay': ['adamw', 'sgd', 'kfac'],
  momentum: ['sgd', 'kfac'],
  nesterov: ['sgd', 'kfac'],
  'momentum-of': ['kfac'],
  damping: ['kfac'],
  'factor-decay': ['kfac', 'shampoo', 'soap'],
  'kfac-method': ['kfac'],
  'adaptive-trust': ['kfac'],
  'adaptive-damping': ['kfac'],
  'inverse-every': ['kfac', 'shampoo', 'soap'],
  'factor-every': ['kfac'],
  'small-factor-dim': ['kfac'],
  'kfac-sequence': ['kfac'],
  'newton-clip': ['kfac', 'shampoo', 'soap'],
  'trust-ratio': ['kfac', 'shampoo', 'soap'],
  'newton-clip-mode': ['kfac', 'shampoo', 'soap'],
  'lora-r': ['lora'],
  'lora-alpha': ['lora'],
  'lora-dropout': ['lora'],
  'adapter-kind': ['adapter'],
  'reduction-factor': ['adapter'],
  'num-virtual-tokens': ['prefix', 'prompt'],
  'prefix-projection': ['prefix'],
  'feedforward-modules': ['ia3'],
  'target-modules': ['lora', 'ia3', 'bitfit'],
};

const given = (flag: string, extra: Partial<RunConfig>) => completeRun({ model: 'm', data: 'd', ...runOverrides({ [flag]: SAMPLE[flag] }), ...extra });

describe('an option that the run does not read is refused, naming it', () => {
  it('the restricted options are exactly those of the table', () => {
    const restricted = Object.entries(RUN_FLAGS)
      .filter(([, s]) => s.optimizers || s.peft)
      .map(([f]) => f)
      .sort();
    expect(restricted).toEqual(Object.keys(READ_BY).sort());
    for (const f of Object.keys(RUN_FLAGS)) if (!READ_BY[f]) expect(appliesTo(RUN_FLAGS[f]!.key), f).toBeNull();
  });

  it.each(Object.keys(READ_BY).filter((f) => RUN_FLAGS[f]!.optimizers))('--%s: by optimizer', (flag) => {
    for (const optimizer of OPTIMIZERS) {
      const run = () => given(flag, { optimizer });
      if (READ_BY[flag]!.includes(optimizer)) expect(run, optimizer).not.toThrow();
      else {
        expect(run, optimizer).toThrow(UsageError);
        expect(run, optimizer).toThrow(new RegExp(`^--${flag} applies to --optimizer .*\\(got ${optimizer}\\)$`));
      }
    }
  });

  it.each(Object.keys(READ_BY).filter((f) => RUN_FLAGS[f]!.peft))('--%s: by PEFT method', (flag) => {
    for (const peft of PEFTS) {
      const run = () => given(flag, { peft });
      if (READ_BY[flag]!.includes(peft)) expect(run, peft).not.toThrow();
      else expect(run, peft).toThrow(new RegExp(`^--${flag} applies to --peft .*\\(got ${peft}\\)$`));
    }
    // LoRA when no method is named
    if (!READ_BY[flag]!.includes('lora')) expect(() => given(flag, {})).toThrow(/\(got lora\)$/);
  });

  it('the messages list the optimizers that read the option', () => {
    expect(() => given('damping', { optimizer: 'adamw' })).toThrow('--damping applies to --optimizer kfac only (got adamw)');
    expect(() => given('momentum', { optimizer: 'shampoo' })).toThrow('--momentum applies to --optimizer sgd or kfac (got shampoo)');
    expect(() => given('factor-decay', { optimizer: 'sgd' })).toThrow('--factor-decay applies to --optimizer kfac, shampoo or soap (got sgd)');
    expect(() => given('num-virtual-tokens', { peft: 'ia3' })).toThrow('--num-virtual-tokens applies to --peft prefix or prompt (got ia3)');
  });

  it('defaults are not options given: every optimizer and method completes with none', () => {
    for (const optimizer of OPTIMIZERS) for (const peft of PEFTS) expect(() => completeRun({ model: 'm', data: 'd', optimizer, peft })).not.toThrow();
  });
});

describe('compare: shared options go to the runs that read them', () => {
  const shared = { model: 'm', data: 'd', ...runOverrides({ damping: '1e-3', 'factor-decay': '0.9', momentum: '0.5', 'lora-r': '4' }) };

  it('--damping to K-FAC, --factor-decay to K-FAC and Shampoo, --momentum to SGD and K-FAC', () => {
    const [adamw, kfac, shampoo, sgd] = runConfigs(shared, [{ optimizer: 'adamw' }, { optimizer: 'kfac' }, { optimizer: 'shampoo' }, { optimizer: 'sgd' }]);
    expect([adamw!.damping, kfac!.damping, shampoo!.damping, sgd!.damping]).toEqual([DEFAULTS.damping, 1e-3, DEFAULTS.damping, DEFAULTS.damping]);
    expect([adamw!.factorDecay, kfac!.factorDecay, shampoo!.factorDecay, sgd!.factorDecay]).toEqual([DEFAULTS.factorDecay, 0.9, 0.9, DEFAULTS.factorDecay]);
    expect([adamw!.momentum, kfac!.momentum, shampoo!.momentum, sgd!.momentum]).toEqual([DEFAULTS.momentum, 0.5, DEFAULTS.momentum, 0.5]);
    expect([adamw!.loraR, kfac!.loraR]).toEqual([4, 4]);
  });

  it("a run's own value wins over the shared one", () => {
    const [k] = runConfigs(shared, [{ optimizer: 'kfac', damping: '1e-2' }]);
    expect(k!.damping).toBe(1e-2);
  });

  it('a shared option that no run reads, and a run option its optimizer does not read, are refused', () => {
    expect(() => runConfigs(shared, [{ optimizer: 'adamw' }, { optimizer: 'sgd' }])).toThrow('--damping applies to --optimizer kfac only, and no run of --runs is one');
    expect(() => runConfigs({ model: 'm', data: 'd' }, [{ optimizer: 'adamw', damping: '1e-3' }])).toThrow('--damping applies to --optimizer kfac only (got adamw)');
    expect(() => runConfigs(shared, [{ optimizer: 'kfac', peft: 'ia3' }])).toThrow('--lora-r applies to --peft lora only, and no run of --runs is one');
  });
});

describe('Shampoo and SOAP read --factor-decay and --inverse-every', () => {
  it('as their factor EMA β and refresh interval (defaults: the same 0.95 and 10)', () => {
    const model = createModel(
      configFromHf({ model_type: 'llama', vocab_size: 32, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 24, max_position_embeddings: 16 }),
      { task: 'causal-lm', seed: 0 },
    );
    try {
      for (const optimizer of ['shampoo', 'soap'] as const) {
        const built = (flags: Record<string, string>) => buildOptimizer(completeRun({ model: 'm', data: 'd', optimizer, ...runOverrides(flags) }), model, 10).inner as Shampoo;
        const set = built({ 'factor-decay': '0.9', 'inverse-every': '5' });
        expect([set.factorDecay, set.refreshEvery]).toEqual([0.9, 5]);
        const plain = built({});
        const bare = new Shampoo(model.trainableParameters(), { variant: optimizer });
        expect([plain.factorDecay, plain.refreshEvery]).toEqual([bare.factorDecay, bare.refreshEvery]);
        for (const o of [set, plain, bare]) o.dispose?.();
      }
    } finally {
      model.dispose();
    }
  });
});

describe("a run's defaults by optimizer", () => {
  it("K-FAC: the gradients' Nesterov momentum and κ 0.035 (0.0125 when the momentum averages the steps); Shampoo and SOAP: their κ 0.01; SGD: plain momentum", () => {
    const run = (o: Partial<RunConfig>) => completeRun({ model: 'm', data: 'd', ...o });
    expect([run({}).trustRatio, run({}).nesterov, run({}).momentumOf]).toEqual([0.035, 'on', 'gradient']);
    expect([run({ momentumOf: 'step' }).trustRatio, run({ momentumOf: 'step' }).momentumOf]).toEqual([0.0125, 'step']);
    expect(run({ optimizer: 'adamw' }).momentumOf).toBeUndefined();
    expect([run({ optimizer: 'shampoo' }).trustRatio, run({ optimizer: 'soap' }).trustRatio]).toEqual([0.01, 0.01]);
    expect(run({ optimizer: 'sgd' }).nesterov).toBeUndefined();
    expect(run({ optimizer: 'shampoo' }).nesterov).toBeUndefined();
    expect(run({ momentum: 0 }).nesterov).toBeUndefined(); // no momentum, no Nesterov step
    expect(run({ trustRatio: 0.02 }).trustRatio).toBe(0.02);
    expect(run({ nesterov: 'off' }).nesterov).toBe('off');
  });

  it('reach the built optimizers', () => {
    const model = createModel(
      configFromHf({ model_type: 'llama', vocab_size: 32, hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 24, max_position_embeddings: 16 }),
      { task: 'causal-lm', seed: 0 },
    );
    applyLora(model, { targetModules: ['q_proj', 'v_proj'], r: 4, alpha: 8 });
    try {
      const k = buildOptimizer(completeRun({ model: 'm', data: 'd' }), model, 10).inner as KFAC;
      // the momentum is the gradients' (Nesterov), before the preconditioner: SGD applies the step without one
      expect(k.momentumOf).toBe('gradient');
      expect(k.gradientMomentum?.nesterov).toBe(true);
      expect([k.sgd.nesterov, k.sgd.momentum]).toEqual([false, 0]);
      expect(k.preconditioner.newtonClip).toMatchObject({ mode: 'per-tensor', kind: 'trustRatio', value: 0.035 });
      k.dispose();
      const plain = buildOptimizer(completeRun({ model: 'm', data: 'd', nesterov: 'off' }), model, 10).inner as KFAC;
      expect(plain.gradientMomentum?.nesterov).toBe(false);
      plain.dispose();
      const steps = buildOptimizer(completeRun({ model: 'm', data: 'd', momentumOf: 'step' }), model, 10).inner as KFAC;
      expect([steps.momentumOf, steps.gradientMomentum, steps.sgd.nesterov, steps.sgd.momentum]).toEqual(['step', null, true, 0.9]);
      expect(steps.preconditioner.newtonClip).toMatchObject({ kind: 'trustRatio', value: 0.0125 });
      steps.dispose();
    } finally {
      model.dispose();
    }
  });
});
