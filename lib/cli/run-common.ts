/** Pieces shared by `train`, `compare` and `demo`: the output folder rule and the closing lines. */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { FormatError } from '../errors.js';

import { UsageError } from './args.js';

/** A fresh default output folder name under ./runs. */
export function defaultOutDir(kind: string): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `runs/${kind}-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** Refuses to write into a non-empty folder unless asked to (--overwrite, or --resume for train). */
export function checkOutDir(out: string, o: { overwrite?: boolean; resume?: boolean }): void {
  if (!existsSync(out)) {
    if (o.resume) throw new UsageError(`--resume: ${out} does not exist`);
    return;
  }
  if (!statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a file`);
  if (o.resume || o.overwrite) return;
  if (readdirSync(out).length > 0) throw new UsageError(`--out ${out} is not empty (pass --overwrite to write into it, or --resume to continue a run)`);
}

/**
 * The configuration a run wrote into `out` (config.json), parsed but not yet checked (`resumedRun`
 * checks it); undefined when the folder has none, as a run's folder written before it did.
 */
export function savedRunConfig(out: string): { config: unknown; file: string } | undefined {
  const file = join(out, 'config.json');
  if (!existsSync(file)) return undefined;
  try {
    return { config: JSON.parse(readFileSync(file, 'utf8')) as unknown, file };
  } catch (e) {
    throw new FormatError(file, `not a run configuration: ${(e as Error).message}`);
  }
}
