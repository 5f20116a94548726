/**
 * `train --resume` continues a run with the run's own options, read from its config.json, through
 * the real binary on the tiny LLaMA: a run cut short after its first checkpoint and resumed with
 * `--out` alone ends with the adapter of the uninterrupted run, byte for byte; a configuration
 * written before a field existed keeps the meaning it had then (a K-FAC run without `momentumOf`
 * resumes under the momentum of the steps); an option given again replaces the saved one and is
 * told; a damaged config.json is refused naming the file and the field, and nothing is written.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { cli as runCli, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-resume-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cli = (args: string[]) => runCli(tmp, args);

let model = '';
let data = '';
beforeAll(() => ({ model, data } = tinySetup(tmp)));

const STEPS = 12;
const EVERY = 6;
const args = (out: string, extra: string[] = []) => ['train', '--model', model, '--data', data, '--steps', String(STEPS), '--batch-size', '8', '--max-length', '24', '--eval-every', '6', '--seed', '4', '--save-every', String(EVERY), '--out', out, '--quiet', ...extra];

const adapter = (out: string) => readFileSync(join(out, 'adapter', 'adapter_model.safetensors'));
const config = (out: string) => JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
const loggedSteps = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; step: number })
    .filter((e) => e.kind === 'step')
    .map((e) => e.step);

/** A finished run and, beside it, the same run as a crash after its first checkpoint leaves it (the later checkpoint and the adapter gone). */
function runAndCrash(name: string, extra: string[] = []): { full: string; part: string } {
  const full = join(tmp, `${name}-full`);
  const r = cli(args(full, extra));
  expect(r.code, r.stderr).toBe(0);
  const part = join(tmp, `${name}-part`);
  cpSync(full, part, { recursive: true });
  rmSync(join(part, 'checkpoints', `step-${String(STEPS).padStart(8, '0')}`), { recursive: true });
  rmSync(join(part, 'adapter'), { recursive: true });
  expect(existsSync(join(part, 'checkpoints', `step-${String(EVERY).padStart(8, '0')}`))).toBe(true);
  return { full, part };
}

describe('train --resume reads the run’s own options', () => {
  test('--out alone: the run goes on from its checkpoint and ends with the uninterrupted adapter, byte for byte', () => {
    const { full, part } = runAndCrash('defaults');
    expect(config(full)['momentumOf']).toBe('gradient');
    const r = cli(['train', '--resume', '--out', part]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resuming from .*step-00000006 \(step 6\)/);
    expect(r.stderr).not.toContain('replaces');
    expect(adapter(part).equals(adapter(full))).toBe(true);
    expect(loggedSteps(part)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(config(part)).toEqual(config(full));
  }, 120_000);

  test('a configuration without momentumOf (written before it existed) resumes under the momentum of the steps', () => {
    const { full, part } = runAndCrash('old', ['--momentum-of', 'step']);
    const c = config(part);
    delete c['momentumOf'];
    writeFileSync(join(part, 'config.json'), JSON.stringify(c));
    const r = cli(['train', '--resume', '--out', part, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(adapter(part).equals(adapter(full))).toBe(true);
    // today's default order would refuse the checkpoint's buffers rather than load them
    const again = runAndCrash('old-flag', ['--momentum-of', 'step']).part;
    const wrong = cli(['train', '--resume', '--out', again, '--momentum-of', 'gradient', '--quiet']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/--momentum-of step/);
  }, 120_000);

  test('an option given again replaces the saved one, is told, and is recorded', () => {
    const { full, part } = runAndCrash('changed');
    const r = cli(['train', '--resume', '--out', part, '--trust-ratio', '0.01', '--model', model]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("--resume: --trust-ratio 0.01 replaces the run's 0.035");
    expect(r.stderr).not.toContain('--model'); // the same value is no change
    expect(config(part)['trustRatio']).toBe(0.01);
    expect(adapter(part).equals(adapter(full))).toBe(false);
    // a change the run's optimizer does not read is refused as on a fresh run
    const r2 = cli(['train', '--resume', '--out', runAndCrash('changed-bad').part, '--reduction-factor', '8']);
    expect(r2.code).toBe(2);
  }, 120_000);

  test('a damaged config.json: a typed error naming the file and the field, exit 1, nothing written', () => {
    const { part } = runAndCrash('bad');
    const file = join(part, 'config.json');
    const good = readFileSync(file, 'utf8');
    const log = readFileSync(join(part, 'metrics.jsonl'), 'utf8');
    const cases: [string, RegExp][] = [
      ['{"model": ', /config\.json: not a run configuration/],
      ['[1, 2]', /config\.json: expected a JSON object/],
      [JSON.stringify({ ...JSON.parse(good), lr: 'fast' }), /config\.json: field "lr": --lr: expected a number, got "fast"/],
      [JSON.stringify({ ...JSON.parse(good), lr: -1 }), /config\.json: field "lr": --lr: expected a number in \(0, 1000\]/],
      [JSON.stringify({ ...JSON.parse(good), optimizer: 'adamx' }), /config\.json: field "optimizer": --optimizer: expected adamw \| kfac/],
      [JSON.stringify({ ...JSON.parse(good), gradientCheckpointing: 'yes' }), /config\.json: field "gradientCheckpointing": --gradient-checkpointing: expected true or false/],
      [JSON.stringify({ ...JSON.parse(good), targets: [1] }), /config\.json: field "targets": --target-modules: expected 'all-linear' or a list of names/],
      [JSON.stringify({ ...JSON.parse(good), colour: 'red' }), /config\.json: unknown field "colour"/],
      [JSON.stringify({ ...JSON.parse(good), data: undefined }), /config\.json: field "data" is missing/],
    ];
    for (const [text, message] of cases) {
      writeFileSync(file, text);
      const r = cli(['train', '--resume', '--out', part, '--quiet']);
      expect(r.code, text).toBe(1);
      expect(r.stderr, text).toContain(file);
      expect(r.stderr, text).toMatch(message);
      expect(readFileSync(join(part, 'metrics.jsonl'), 'utf8')).toBe(log);
      expect(existsSync(join(part, 'adapter'))).toBe(false);
    }
    writeFileSync(file, good);
  }, 120_000);

  test('--resume needs --out; a folder without config.json needs the options again', () => {
    const r1 = cli(['train', '--resume']);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/--resume needs --out/);
    const { full, part } = runAndCrash('no-config');
    rmSync(join(part, 'config.json'));
    const r2 = cli(['train', '--resume', '--out', part]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/has no config\.json .*--model and --data/);
    const r3 = cli(args(part, ['--resume']));
    expect(r3.code, r3.stderr).toBe(0);
    expect(adapter(part).equals(adapter(full))).toBe(true);
  }, 120_000);
});
