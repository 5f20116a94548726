/**
 * Crash-safe checkpoint folders of a training run.
 *
 * A checkpoint is written whole into a folder under a temporary (hidden) name, each file flushed,
 * and then published by one rename of the folder: after a crash at any point the published name
 * holds a complete checkpoint or does not exist. Periodic checkpoints live in
 * `<out>/checkpoints/step-<step>/`; after each one is published the oldest beyond `keepLast` are
 * removed (renamed to a hidden name first, so a crash during the removal never leaves a partial
 * folder under a checkpoint name). Leftover hidden folders of a crashed save are removed by the
 * next save. `--resume` takes the newest of the periodic checkpoints and checkpoint-interrupted.
 *
 * Besides the adapter, the optimizer state and the trainer state (step, epoch, data position,
 * best value), a checkpoint records the dropout generators of the whole model (seed and call
 * count of every dropout), so a resumed run draws the masks the uninterrupted run would have.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { FileError } from '../errors.js';
import { Dropout } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { flushDir } from '../util/atomic.js';

export const CHECKPOINTS = 'checkpoints';
export const INTERRUPTED = 'checkpoint-interrupted';
export const BEST = 'checkpoint-best';

let counter = 0;

/**
 * Writes a folder with `write(tmpDir)` under a hidden temporary name beside `target`, then
 * publishes it by one rename. An existing `target` is first moved aside to a hidden name and
 * removed after the rename (a crash in between leaves `target` absent, never partial).
 */
export function publishFolder(target: string, write: (dir: string) => void): void {
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const tmp = join(parent, `.tmp-${basename(target)}-${process.pid}-${counter++}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    write(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  flushDir(tmp);
  let old: string | null = null;
  if (existsSync(target)) {
    old = join(parent, `.old-${basename(target)}-${process.pid}-${counter++}`);
    renameSync(target, old);
  }
  try {
    renameSync(tmp, target);
  } catch (e) {
    throw new FileError(target, `cannot publish the checkpoint folder: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  flushDir(parent);
  if (old) rmSync(old, { recursive: true, force: true });
}

const STEP_DIR = /^step-(\d+)$/;

/** Writes the periodic checkpoint of `step` into `<root>/step-<step>` and keeps the newest `keepLast` (default: all). */
export function saveStepCheckpoint(root: string, step: number, write: (dir: string) => void, keepLast?: number): string {
  const target = join(root, `step-${String(step).padStart(8, '0')}`);
  publishFolder(target, write);
  const entries = readdirSync(root);
  // hidden leftovers of saves or removals that a crash interrupted (not this process's: it has none left)
  for (const e of entries) if (e.startsWith('.tmp-') || e.startsWith('.old-') || e.startsWith('.del-')) rmSync(join(root, e), { recursive: true, force: true });
  if (keepLast !== undefined) {
    const steps = entries.filter((e) => STEP_DIR.test(e)).sort();
    for (const e of steps.slice(0, Math.max(0, steps.length - keepLast))) {
      const hidden = join(root, `.del-${e}-${process.pid}-${counter++}`);
      renameSync(join(root, e), hidden);
      rmSync(hidden, { recursive: true, force: true });
    }
  }
  return target;
}

export interface CheckpointEntry {
  dir: string;
  /** The trainer step it was saved at (null when its optimizer.json cannot be read). */
  step: number | null;
  kind: 'periodic' | 'interrupted' | 'best';
}

function trainerStep(dir: string): number | null {
  try {
    const meta = JSON.parse(readFileSync(join(dir, 'optimizer.json'), 'utf8')) as { extra?: { trainer?: { step?: unknown } } };
    const s = meta.extra?.trainer?.step;
    return typeof s === 'number' ? s : null;
  } catch {
    return null;
  }
}

/** The published checkpoints of a run folder: periodic (by step), interrupted, best. */
export function listCheckpoints(outDir: string): CheckpointEntry[] {
  const out: CheckpointEntry[] = [];
  const root = join(outDir, CHECKPOINTS);
  if (existsSync(root))
    for (const e of readdirSync(root).sort()) {
      const m = STEP_DIR.exec(e);
      if (m) out.push({ dir: join(root, e), step: Number(m[1]), kind: 'periodic' });
    }
  for (const [name, kind] of [[INTERRUPTED, 'interrupted'], [BEST, 'best']] as const) if (existsSync(join(outDir, name))) out.push({ dir: join(outDir, name), step: trainerStep(join(outDir, name)), kind });
  return out;
}

/** The checkpoint `--resume` continues from: the newest periodic or interrupted one (null when there is none). */
export function newestCheckpoint(outDir: string): CheckpointEntry | null {
  let best: CheckpointEntry | null = null;
  for (const c of listCheckpoints(outDir)) {
    if (c.kind === 'best') continue;
    if (c.kind === 'interrupted' && c.step === null) return c; // unreadable: loading it reports what is wrong
    if (best === null || (c.step ?? -1) > (best.step ?? -1)) best = c;
  }
  return best;
}

/** Seed and call count of every dropout generator in the model (layers and attention), by module path. */
export function dropoutState(model: Module): Record<string, { seed: number; calls: number }> {
  const out: Record<string, { seed: number; calls: number }> = {};
  for (const [path, m] of model.namedModules()) {
    if (m instanceof Dropout) out[path] = { seed: m.seed, calls: m.calls };
    else {
      const a = m as unknown as { dropoutSeed?: unknown; dropoutCalls?: unknown };
      if (typeof a.dropoutSeed === 'number' && typeof a.dropoutCalls === 'number') out[path] = { seed: a.dropoutSeed, calls: a.dropoutCalls };
    }
  }
  return out;
}

/** Restores what dropoutState recorded (paths the model does not have are ignored). */
export function restoreDropoutState(model: Module, state: unknown): void {
  if (state === null || typeof state !== 'object') return;
  const s = state as Record<string, { seed?: unknown; calls?: unknown }>;
  for (const [path, m] of model.namedModules()) {
    const v = s[path];
    if (!v || typeof v.seed !== 'number' || typeof v.calls !== 'number') continue;
    if (m instanceof Dropout) {
      m.seed = v.seed;
      m.calls = v.calls;
    } else {
      const a = m as unknown as { dropoutSeed: number; dropoutCalls: number };
      if (typeof a.dropoutSeed === 'number') {
        a.dropoutSeed = v.seed;
        a.dropoutCalls = v.calls;
      }
    }
  }
}
