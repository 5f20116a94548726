/**
 * Crash-safe training through the real binary: a `train --save-every N --keep-last K` process is
 * killed with SIGKILL at seeded random points (and, on every third kill — every other one until
 * one has landed inside a save — the moment a checkpoint folder starts being written), then
 * resumed with `--resume`, again and again. After every kill:
 * each published checkpoint folder is complete (every file its optimizer.json records, with that
 * SHA-256), at most K are kept, and the newest is at most N steps behind the last logged step.
 * At the end the adapter equals an uninterrupted run's byte for byte and the log holds each step
 * once. `--resume` without a checkpoint, or with a corrupt one, fails naming the file.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { BIN, cli, ENV, tinySetup } from '../support/tiny-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'kfac-cli-crash-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let model = '';
let data = '';
beforeAll(() => ({ model, data } = tinySetup(tmp)));

const STEPS = 60;
const EVERY = 4;
const KEEP = 2;
const args = (out: string) => ['train', '--model', model, '--data', data, '--optimizer', 'kfac', '--newton-clip', '1', '--damping', '0.01', '--steps', String(STEPS), '--batch-size', '8', '--max-length', '24', '--eval-every', '20', '--seed', '7', '--target-modules', 'q_proj,v_proj', '--out', out, '--quiet'];

function loggedSteps(out: string): number[] {
  const f = join(out, 'metrics.jsonl');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        const e = JSON.parse(l) as { kind: string; step: number };
        return e.kind === 'step' ? [e.step] : [];
      } catch {
        return [];
      }
    });
}

/** Published periodic checkpoints, each checked complete against the hashes its optimizer.json records. */
function publishedSteps(out: string): number[] {
  const root = join(out, 'checkpoints');
  if (!existsSync(root)) return [];
  const steps: number[] = [];
  for (const e of readdirSync(root)) {
    const m = /^step-(\d+)$/.exec(e);
    if (!m) continue;
    const dir = join(root, e);
    const meta = JSON.parse(readFileSync(join(dir, 'optimizer.json'), 'utf8')) as { files: Record<string, string>; extra: { trainer: { step: number } } };
    expect(Object.keys(meta.files).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors']);
    for (const [f, h] of Object.entries(meta.files)) expect(createHash('sha256').update(readFileSync(join(dir, f))).digest('hex'), `${dir}/${f}`).toBe(h);
    expect(meta.extra.trainer.step).toBe(Number(m[1]));
    steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SIGKILL at random points, --resume each time', () => {
  test('the final adapter equals the uninterrupted run byte for byte; no kill loses more than --save-every steps', async () => {
    const full = join(tmp, 'full');
    const r0 = cli(tmp, args(full));
    expect(r0.code, r0.stderr).toBe(0);
    const part = join(tmp, 'part');
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    let kills = 0;
    let killsDuringSave = 0;
    for (let attempt = 0; attempt < 40 && (kills < 12 || killsDuringSave === 0); attempt++) {
      const resume = publishedSteps(part).length > 0 || existsSync(join(part, 'checkpoint-interrupted'));
      const from = Math.max(0, ...publishedSteps(part));
      const child = spawn(process.execPath, [BIN, ...args(part), ...(resume ? ['--resume'] : ['--overwrite']), '--save-every', String(EVERY), '--keep-last', String(KEEP)], { cwd: tmp, env: ENV, stdio: 'ignore' });
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      let done = false;
      void exited.then(() => (done = true));
      // every third kill (every other one while none has landed inside a save yet) waits for a save to begin
      const duringSave = killsDuringSave === 0 ? kills % 2 === 1 : kills % 3 === 2;
      if (duringSave) {
        // kill the moment a checkpoint folder starts being written under its temporary name
        await new Promise<void>((res) => {
          const poll = setInterval(() => {
            if (existsSync(join(part, 'checkpoints'))) {
              clearInterval(poll);
              const w = watch(join(part, 'checkpoints'), (_, name) => {
                if (String(name).startsWith('.tmp-')) {
                  child.kill('SIGKILL');
                  w.close();
                  res();
                }
              });
              void exited.then(() => (w.close(), res()));
            }
          }, 2);
          void exited.then(() => (clearInterval(poll), res()));
        });
      } else {
        // wait until it has trained a random number of steps past its starting point, then a random extra moment
        const target = from + 1 + Math.floor(rnd() * 2 * EVERY);
        while (!done && Math.max(0, ...loggedSteps(part)) < target) await sleep(5);
        await sleep(rnd() * 40);
        child.kill('SIGKILL');
      }
      const code = await exited;
      if (code === 0) {
        // finished before the kill landed: done if the kill targets are met, else start over
        // (a fast machine can outrun the kills; the kills so far still count)
        if (kills >= 10 && killsDuringSave >= 1) break;
        rmSync(part, { recursive: true, force: true });
        continue;
      }
      kills += 1;
      const tmpLeft = existsSync(join(part, 'checkpoints')) && readdirSync(join(part, 'checkpoints')).some((e) => e.startsWith('.tmp-'));
      if (tmpLeft) killsDuringSave += 1;
      const published = publishedSteps(part);
      const last = Math.max(0, ...loggedSteps(part));
      expect(published.length).toBeLessThanOrEqual(KEEP + 1); // the newest published, the one being pruned at most
      expect(last - Math.max(0, ...published), `kill ${kills}: logged ${last}, checkpoints ${published.join(',')}`).toBeLessThanOrEqual(EVERY);
    }
    expect(kills).toBeGreaterThanOrEqual(10);
    expect(killsDuringSave).toBeGreaterThanOrEqual(1);
    const r = cli(tmp, [...args(part), '--resume', '--save-every', String(EVERY), '--keep-last', String(KEEP)]);
    expect(r.code, r.stderr).toBe(0);
    expect(loggedSteps(part)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(publishedSteps(part)).toEqual([STEPS - EVERY, STEPS]);
    const bytes = (dir: string) => readFileSync(join(dir, 'adapter', 'adapter_model.safetensors'));
    expect(bytes(part).equals(bytes(full))).toBe(true);
    console.log(`${kills} kills (${killsDuringSave} during a save)`);
  }, 240_000);

  test('--resume with no checkpoint, or a corrupt one: a message naming the file, exit 1, nothing written', () => {
    const none = join(tmp, 'none');
    const r1 = cli(tmp, [...args(none), '--resume']);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/--resume: .*none does not exist/);
    expect(existsSync(none)).toBe(false);
    const out = join(tmp, 'corrupt');
    expect(cli(tmp, [...args(out), '--steps', '8', '--save-every', '4']).code).toBe(0);
    const empty = join(tmp, 'empty');
    expect(cli(tmp, [...args(empty), '--steps', '2']).code).toBe(0);
    const r2 = cli(tmp, [...args(empty), '--resume']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/--resume: no checkpoint in .*empty/);
    const w = join(out, 'checkpoints', 'step-00000008', 'optimizer.safetensors');
    const b = readFileSync(w);
    b[b.length - 1] = b[b.length - 1]! ^ 0xff;
    writeFileSync(w, b);
    const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    const r3 = cli(tmp, [...args(out), '--resume']);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain(w);
    expect(r3.stderr).toMatch(/SHA-256 differs/);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).toBe(before);
    const seen = JSON.parse(cli(tmp, ['inspect', join(out, 'checkpoints', 'step-00000008'), '--json']).stdout) as { intact: boolean; mismatched: string[] };
    expect(seen).toMatchObject({ intact: false, mismatched: ['optimizer.safetensors'] });
  }, 60_000);
});
