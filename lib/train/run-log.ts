/** A run's summary (run.json) and its JSONL log: truncated on resume, read back for reports. */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';

import { writeFilesAtomic } from '../util/atomic.js';
import type { RunResult } from './run-config.js';
import type { TrainerEvent } from './trainer.js';

export interface RunSummary {
  name: string;
  steps: number;
  monitor: string;
  final: number | undefined;
  best: { value: number; step: number } | null;
  msPerStep: number;
  diverged: boolean;
  interrupted: boolean;
  stoppedEarly: boolean;
  clipRate: number | undefined;
}

export function runSummary(r: RunResult): RunSummary {
  const steps = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'step' }> => e.kind === 'step');
  const evals = r.fit.history.filter((e): e is Extract<TrainerEvent, { kind: 'eval' }> => e.kind === 'eval');
  const last = evals.at(-1);
  const value = (e: Extract<TrainerEvent, { kind: 'eval' }>) => (r.monitor === 'loss' ? e.loss : e.metrics[r.monitor]!);
  const timed = steps.filter((s) => s.ms > 0);
  const tele = steps.at(-1)?.optimizer as { clipRate?: number } | undefined;
  return {
    name: r.name,
    steps: r.fit.state.step,
    monitor: r.monitor,
    final: last ? value(last) : undefined,
    best: r.fit.state.best,
    msPerStep: timed.length ? timed.reduce((s, e) => s + e.ms, 0) / timed.length : NaN,
    diverged: r.fit.diverged,
    interrupted: r.fit.interrupted,
    stoppedEarly: r.fit.stoppedEarly,
    clipRate: !['kfac', 'shampoo', 'soap'].includes(r.config.optimizer) || r.config.newtonClip === 'off' ? undefined : tele?.clipRate,
  };
}

/** Keeps the log lines of steps up to `step` (a resumed run logs the later ones again); a torn last line is dropped. */
export function truncateLog(file: string, step: number): void {
  if (!existsSync(file)) return;
  const kept = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => {
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false;
      }
    });
  writeFilesAtomic(dirname(file), [{ name: basename(file), bytes: new TextEncoder().encode(kept.map((l) => l + '\n').join('')) }]);
}

/** Reads a run's JSONL log back (for reports). */
export function readLog(file: string): TrainerEvent[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TrainerEvent);
}
