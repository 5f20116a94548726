/**
 * The fine-tuning commands end to end, through the real `kfac-peft` binary, on a tiny LLaMA
 * (test/fixtures/models/llama-gqa) with a character-level tokenizer.json:
 * - `train` with K-FAC + Newton-step clipping on a separable text-classification task: the
 *   training loss falls, the dev accuracy of the saved adapter (read back by `eval`) rises from
 *   the untrained model's, and every promised file is there;
 * - causal-LM `train` with AdamW on text: dev perplexity falls;
 * - `compare` writes the report, the SVGs and compare.json with one row per configuration;
 * - bad arguments exit non-zero with a clear message and write nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { BIN, ENV, cli as runCli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[]) => runCli(tmp, args);

let model = '';
let data = '';
let text = '';

beforeAll(() => {
  ({ model, data } = tinySetup(tmp, 480, 96, ['accuracy', 'f1']));
  text = join(tmp, 'text');
  mkdirSync(text);
  const para = (k: number) => Array.from({ length: 12 }, (_, i) => 'the cat sat on the mat. '.repeat(1 + ((i + k) % 3))).join('\n\n');
  writeFileSync(join(text, 'train.txt'), para(0));
  writeFileSync(join(text, 'dev.txt'), para(1));
});

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number; loss: number; metrics?: Record<string, number> });

describe('kfac-peft train / eval', () => {
  test('K-FAC with Newton-step clipping: the loss falls and the saved adapter lifts dev accuracy', () => {
    const base = cli(['eval', '--model', model, '--data', data, '--max-length', '24', '--seed', '3', '--json']);
    expect(base.code, base.stderr).toBe(0);
    const before = JSON.parse(base.stdout) as { metrics: { accuracy: number } };
    const out = join(tmp, 'run-kfac');
    // τ = 1 is set for the Newton step of one gradient (the momentum of the steps): some steps clipped, some not
    const r = cli(['train', '--model', model, '--data', data, '--optimizer', 'kfac', '--momentum-of', 'step', '--newton-clip', '1', '--lr', '0.1', '--damping', '0.01', '--steps', '60', '--batch-size', '16', '--max-length', '24', '--eval-every', '20', '--seed', '3', '--target-modules', 'q_proj,v_proj', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { steps: number; final: number; diverged: boolean; clipRate: number };
    expect(summary.steps).toBe(60);
    expect(summary.diverged).toBe(false);
    // The Newton-step clip, step by step from the log: a step is clipped exactly when its
    // pre-clip norm ‖P‖ exceeds τ = 1, the clip scales it to norm τ, and the reported clip rate
    // is the fraction of clipped steps. Some steps must have been clipped, some not.
    const tele = lines(join(out, 'metrics.jsonl'))
      .filter((e) => e.kind === 'step')
      .map((e) => (e as unknown as { optimizer: { preconditioned: boolean; preClipNorm: number; clipScale: number; clipped: boolean } }).optimizer);
    expect(tele.every((t) => t.preconditioned)).toBe(true);
    for (const t of tele) {
      expect(t.clipped).toBe(t.preClipNorm > 1);
      expect(t.clipScale).toBeCloseTo(Math.min(1, 1 / t.preClipNorm), 6);
      expect(t.clipScale * t.preClipNorm).toBeLessThanOrEqual(1 + 1e-6);
    }
    const clippedSteps = tele.filter((t) => t.clipped).length;
    expect(clippedSteps).toBeGreaterThan(0);
    expect(clippedSteps).toBeLessThan(60);
    expect(summary.clipRate).toBeCloseTo(clippedSteps / 60, 12);
    for (const f of ['metrics.jsonl', 'run.json', 'config.json', 'report.html', 'loss-steps.svg', 'metric-time.svg', 'adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'checkpoint-best/optimizer.json'])
      expect(existsSync(join(out, f)), f).toBe(true);
    const log = lines(join(out, 'metrics.jsonl'));
    const losses = log.filter((e) => e.kind === 'step').map((e) => e.loss);
    expect(losses).toHaveLength(60);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-10))).toBeLessThan(0.7 * mean(losses.slice(0, 10)));
    expect(log.filter((e) => e.kind === 'eval').map((e) => e.step)).toEqual([20, 40, 60]);
    // the adapter as saved, read back by eval: the accuracy rose well above the untrained model's
    const after = cli(['eval', '--model', model, '--data', data, '--adapter', join(out, 'adapter'), '--max-length', '24', '--json']);
    expect(after.code, after.stderr).toBe(0);
    const acc = (JSON.parse(after.stdout) as { metrics: { accuracy: number } }).metrics.accuracy;
    expect(acc).toBeCloseTo(summary.final, 6);
    expect(acc).toBeGreaterThan(0.85);
    expect(acc).toBeGreaterThan(before.metrics.accuracy + 0.2);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('<svg');
  }, 120_000);

  test('causal LM with AdamW: dev perplexity falls', () => {
    const base = cli(['eval', '--model', model, '--data', text, '--max-length', '32', '--json']);
    expect(base.code, base.stderr).toBe(0);
    const before = (JSON.parse(base.stdout) as { metrics: { perplexity: number } }).metrics.perplexity;
    const out = join(tmp, 'run-lm');
    const r = cli(['train', '--model', model, '--data', text, '--optimizer', 'adamw', '--lr', '0.01', '--steps', '40', '--batch-size', '4', '--max-length', '32', '--eval-every', '10', '--target-modules', 'all-linear', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ppl = lines(join(out, 'metrics.jsonl'))
      .filter((e) => e.kind === 'eval')
      .map((e) => e.metrics!['perplexity']!);
    expect(ppl).toHaveLength(4);
    expect(ppl[3]!).toBeLessThan(ppl[0]!);
    expect(ppl[3]!).toBeLessThan(0.25 * before);
  }, 120_000);
});

/** A 4-step `train` into tmp/<prefix>-<name> with `extra` options: its adapter's bytes and its recorded config. */
const shortRun =
  (prefix: string) =>
  (name: string, ...extra: string[]) => {
    const out = join(tmp, `${prefix}-${name}`);
    const r = cli(['train', '--model', model, '--data', data, '--steps', '4', '--batch-size', '16', '--max-length', '24', '--lora-r', '2', '--quiet', '--out', out, ...extra]);
    expect(r.code, r.stderr).toBe(0);
    return { w: readFileSync(join(out, 'adapter', 'adapter_model.safetensors')), config: JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown> };
  };

describe('--nesterov', () => {
  test('reaches the optimizer: K-FAC and SGD with Nesterov momentum train to another adapter, and the run records it', () => {
    const run = shortRun('nest');
    // the default: on for K-FAC (with momentum), off for SGD
    for (const [opt, def, other] of [
      ['kfac', 'on', 'off'],
      ['sgd', 'off', 'on'],
    ] as const) {
      const plain = run(`${opt}-default`, '--optimizer', opt);
      const same = run(`${opt}-${def}`, '--optimizer', opt, '--nesterov', def);
      const changed = run(`${opt}-${other}`, '--optimizer', opt, '--nesterov', other);
      expect(same.w.equals(plain.w), opt).toBe(true);
      expect(changed.w.equals(plain.w), opt).toBe(false);
      expect(plain.config['nesterov'], opt).toBe(def === 'on' ? 'on' : undefined);
      expect(changed.config['nesterov'], opt).toBe(other);
    }
    // K-FAC without momentum has no Nesterov step: the default is then off, and asking for it is refused
    expect(run('kfac-no-momentum', '--optimizer', 'kfac', '--momentum', '0').config['nesterov']).toBeUndefined();
  }, 120_000);
});

describe('--momentum-of', () => {
  test("reaches K-FAC: the other order trains to another adapter; the run records it, with its own default κ", () => {
    const run = shortRun('mo');
    const plain = run('default');
    const def = plain.config['momentumOf'] as string;
    expect(['step', 'gradient']).toContain(def);
    const other = def === 'step' ? 'gradient' : 'step';
    const same = run(def, '--momentum-of', def);
    const changed = run(other, '--momentum-of', other);
    expect(same.w.equals(plain.w)).toBe(true);
    expect(changed.w.equals(plain.w)).toBe(false);
    expect(changed.config['momentumOf']).toBe(other);
    const kappa = { step: 0.0125, gradient: 0.035 } as Record<string, number>;
    expect(plain.config['trustRatio']).toBe(kappa[def]);
    expect(changed.config['trustRatio']).toBe(kappa[other]);
    // an explicit κ wins over either default
    expect(run('kappa', '--momentum-of', 'gradient', '--trust-ratio', '0.02').config['trustRatio']).toBe(0.02);
  }, 120_000);
});

describe('Ctrl-C and --resume', () => {
  test('SIGINT saves a checkpoint and exits 130; --resume ends with the adapter of an uninterrupted run, byte for byte', async () => {
    const args = (out: string) => ['train', '--model', model, '--data', data, '--optimizer', 'kfac', '--newton-clip', '1', '--damping', '0.01', '--steps', '300', '--batch-size', '8', '--max-length', '24', '--eval-every', '100', '--seed', '5', '--out', out, '--quiet'];
    const full = join(tmp, 'sig-full');
    expect(cli(args(full)).code).toBe(0);
    const part = join(tmp, 'sig-part');
    const child = spawn(process.execPath, [BIN, ...args(part)], { cwd: tmp, env: ENV, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const log = join(part, 'metrics.jsonl');
    for (let i = 0; i < 2000; i++) {
      if (existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 20) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    const stopped = JSON.parse(readFileSync(join(part, 'checkpoint-interrupted', 'optimizer.json'), 'utf8')) as { extra: { trainer: { step: number } } };
    expect(stopped.extra.trainer.step).toBeGreaterThan(10);
    expect(stopped.extra.trainer.step).toBeLessThan(300);
    expect(existsSync(join(part, 'adapter'))).toBe(false);
    const r = cli([...args(part), '--resume']);
    expect(r.code, r.stderr).toBe(0);
    const steps = lines(log).filter((e) => e.kind === 'step').map((e) => e.step);
    expect(steps).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    const bytes = (dir: string) => readFileSync(join(dir, 'adapter', 'adapter_model.safetensors'));
    expect(bytes(part).equals(bytes(full))).toBe(true);
  }, 180_000);
});

describe('kfac-peft compare', () => {
  test('two optimizers × two seeds: one report, one row per configuration, steps to the baseline', () => {
    const out = join(tmp, 'cmp');
    const r = cli(['compare', '--model', model, '--data', data, '--runs', 'adamw:lr=0.01,kfac:lr=0.1:damping=0.01:newton-clip=1:name=kfac-nc', '--seeds', '1,2', '--steps', '20', '--eval-every', '10', '--batch-size', '16', '--max-length', '24', '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kfac-nc');
    expect(r.stdout).toContain('(baseline)');
    const c = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8')) as { baseline: string; rows: { name: string; seeds: number[]; stepsToBaseline: (number | null)[]; averaged: unknown; best: { mean: number } }[]; runs: unknown[] };
    expect(c.baseline).toBe('adamw lr=0.01');
    expect(c.rows.map((x) => x.name)).toEqual(['adamw lr=0.01', 'kfac-nc']);
    expect(c.rows[0]!.seeds).toEqual([1, 2]);
    expect(c.runs).toHaveLength(4);
    // Steps to the baseline, recomputed from each run's own metrics.jsonl: per seed, the first
    // evaluated step at which the run's accuracy reached the best accuracy of the baseline run
    // of that seed (null: never). The K-FAC row is the one that says something.
    const evals = (dir: string) => lines(join(out, 'runs', dir, 'metrics.jsonl')).filter((e) => e.kind === 'eval').map((e) => [e.step, e.metrics!['accuracy']!] as const);
    const want = (dir: string, seed: number) => {
      const target = Math.max(...evals(`adamw_lr=0.01-seed${seed}`).map(([, a]) => a));
      return evals(dir).find(([, a]) => a >= target)?.[0] ?? null;
    };
    expect(c.rows[0]!.stepsToBaseline).toEqual([1, 2].map((s) => want(`adamw_lr=0.01-seed${s}`, s)));
    expect(c.rows[1]!.stepsToBaseline).toEqual([1, 2].map((s) => want(`kfac-nc-seed${s}`, s)));
    // the seed-averaged reading: the K-FAC mean curve against the best of the baseline's mean curve
    const meanOf = (name: string) => evals(`${name}-seed1`).map(([s], i) => [s, [1, 2].reduce((a, k) => a + evals(`${name}-seed${k}`)[i]![1], 0) / 2] as const);
    const baseMean = meanOf('adamw_lr=0.01');
    const target = Math.max(...baseMean.map(([, a]) => a));
    const averaged = c.rows[1]!.averaged as { steps?: number; baselineSteps?: number };
    expect(averaged.steps ?? null).toBe(meanOf('kfac-nc').find(([, a]) => a >= target)?.[0] ?? null);
    expect(averaged.baselineSteps).toBe(baseMean.find(([, a]) => a >= target)![0]);
    const kfacBest = [1, 2].map((s) => Math.max(...evals(`kfac-nc-seed${s}`).map(([, a]) => a)));
    expect(c.rows[1]!.best.mean).toBeCloseTo((kfacBest[0]! + kfacBest[1]!) / 2, 12);
    for (const f of ['report.html', 'loss-steps.svg', 'loss-time.svg', 'metric-steps.svg', 'metric-time.svg', 'runs/kfac-nc-seed2/adapter/adapter_model.safetensors']) expect(existsSync(join(out, f)), f).toBe(true);
  }, 180_000);
});

describe('bad arguments: a clear message, a non-zero exit, nothing written', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown option', ['train', '--model', 'm', '--data', 'd', '--bogus', '1'], /unknown option --bogus/],
    ['missing model', ['train', '--data', 'd'], /--model is required/],
    ['bad number', ['train', '--model', 'M', '--data', 'D', '--lr', 'fast'], /--lr: expected a number/],
    ['negative clip', ['train', '--model', 'M', '--data', 'D', '--newton-clip', '-1'], /--newton-clip: expected a number/],
    ['newton clip without K-FAC', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'adamw', '--newton-clip', '1'], /--newton-clip applies to --optimizer kfac only/],
    ['norm clip with shampoo', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'shampoo', '--newton-clip', '1'], /--newton-clip applies to --optimizer kfac only/],
    ['global clip mode with soap', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'soap', '--newton-clip-mode', 'global'], /newton-clip-mode global: soap clips per tensor only/],
    ['clip mode without a Newton step', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'adamw', '--newton-clip-mode', 'per-tensor'], /--newton-clip-mode applies to --optimizer kfac, shampoo or soap \(got adamw\)/],
    ['fisher clip without its bound', ['train', '--model', 'M', '--data', 'D', '--newton-clip-mode', 'fisher'], /--newton-clip-mode fisher needs --newton-clip C/],
    ['unknown optimizer', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'lbfgs'], /adamw \| kfac \| sgd/],
    ['other PEFT method', ['train', '--model', 'M', '--data', 'D', '--peft', 'p-tuning'], /--peft: expected lora \| ia3 \| bitfit/],
    ['missing model path', ['train', '--model', 'nope', '--data', 'D'], /no such file or folder/],
    ['missing data', ['train', '--model', 'M', '--data', 'nope'], /nope: no such file or folder/],
    ['bad runs entry', ['compare', '--model', 'M', '--data', 'D', '--runs', 'adamw:lr'], /expected key=value/],
    ['runs overriding data', ['compare', '--model', 'M', '--data', 'D', '--runs', 'adamw:data=x'], /shared by all runs/],
    ['demo with a bad step count', ['demo', '--steps', '0'], /--steps: expected positive integers/],
    ['demo with a stray argument', ['demo', 'now'], /demo takes no positional arguments/],
    ['unknown baseline', ['compare', '--model', 'M', '--data', 'D', '--runs', 'adamw,kfac', '--baseline', 'sgd'], /not one of the runs/],
    ['nesterov with adamw', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'adamw', '--nesterov', 'on'], /--nesterov applies to --optimizer sgd or kfac \(got adamw\)/],
    ['nesterov without momentum', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'sgd', '--momentum', '0', '--nesterov', 'on'], /--nesterov on needs --momentum above 0/],
    ['nesterov not on or off', ['train', '--model', 'M', '--data', 'D', '--nesterov', 'yes'], /--nesterov: expected on \| off/],
    ['momentum-of with adamw', ['train', '--model', 'M', '--data', 'D', '--optimizer', 'adamw', '--momentum-of', 'gradient'], /--momentum-of applies to --optimizer kfac only \(got adamw\)/],
    ['momentum-of not step or gradient', ['train', '--model', 'M', '--data', 'D', '--momentum-of', 'weights'], /--momentum-of: expected step \| gradient/],
  ];
  test.each(cases)('%s', (_, args, message) => {
    const out = join(tmp, `bad-${Math.random().toString(36).slice(2)}`);
    const argv = args.map((a) => (a === 'M' ? model : a === 'D' ? data : a));
    const r = cli([...argv, '--out', out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/unexpected error|at .*\.js:\d+/);
    expect(existsSync(out)).toBe(false);
  });

  test('a non-empty --out is refused without --overwrite', () => {
    const out = join(tmp, 'taken');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const r = cli(['train', '--model', model, '--data', data, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not empty/);
    expect(readFileSync(join(out, 'keep.txt'), 'utf8')).toBe('mine');
  });
});
